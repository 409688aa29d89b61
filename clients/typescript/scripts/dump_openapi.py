"""Writes the gateway's OpenAPI document as JSON, from the app itself: no server, no Redis, no mesh.

.venv/bin/python clients/typescript/scripts/dump_openapi.py [OUT.json]   (default: stdout)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import redis.asyncio as aioredis

from gateway.app import create_app
from services.common.config import Settings


def openapi_document() -> dict:
    """The document FastAPI serves at /openapi.json (the app is built, never started)."""
    # Keys and CORS origins change nothing in the document; fixing them keeps a stray environment out.
    settings = Settings(gateway_api_keys_file="", gateway_cors_origins=[])
    return create_app(settings, aioredis.Redis()).openapi()


def main(argv: list[str]) -> int:
    """Writes the document to argv[1], or to stdout."""
    text = json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
    if len(argv) > 1:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
