"""What file responses carry: content types, Content-Disposition, ETags and conditional requests."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

from services.exports import MEDIA_TYPES

# Already compressed: gzip would spend CPU for nothing.
INCOMPRESSIBLE_TYPES = ("image/png", MEDIA_TYPES["zip"], MEDIA_TYPES["pptx"])


def etag(*parts: str, weak: bool = False) -> str:
    """An ETag from what identifies the bytes (for immutable job files: the job, the file, the manifest digest).

    Weak for bodies the gateway may gzip, since a strong tag names exact bytes.
    """
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    return f'W/"{digest}"' if weak else f'"{digest}"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names `tag` (weak comparison, as RFC 9110 asks for GET)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = tag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == bare for candidate in if_none_match.split(","))


def download_name(source_filename: str, suffix: str) -> str:
    """A safe download name from the uploaded file's stem, e.g. "summer-poster.psd"."""
    stem = source_filename.rsplit("/", 1)[-1].split("#", 1)[0].rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "poster"
    return f"{stem[:80]}{suffix}"


def content_disposition(filename: str, inline: bool = False) -> str:
    """Content-Disposition with an ASCII fallback and the RFC 5987 UTF-8 name."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename) or "download"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"
