"""API keys: stored only as SHA-256 hashes, looked up in memory.

A key is 256 random bits, so a plain SHA-256 is enough to make the stored form useless to a
thief (a slow password hash protects guessable secrets, and would cost every request).
The keys file is a JSON list of {"id": "alice", "plan": "pro", "sha256": "<hex>"};
`python -m gateway.keys new --id alice --plan pro` prints a fresh key and its entry.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

KEY_PREFIX = "pl_"


@dataclass(frozen=True)
class ApiKey:
    """Who a key belongs to and which plan its quota follows."""

    id: str
    plan: str


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """The configured keys by hash. Empty means local mode: no key needed."""

    def __init__(self, keys: dict[str, ApiKey] | None = None) -> None:
        self._by_hash = dict(keys or {})

    @property
    def required(self) -> bool:
        """True when keys are configured, so every API call must present one."""
        return bool(self._by_hash)

    def lookup(self, presented: str) -> ApiKey | None:
        """The key's owner, or None for an unknown key."""
        return self._by_hash.get(hash_key(presented))

    @classmethod
    def from_file(cls, path: str, plans: dict[str, int]) -> KeyRing:
        """Loads a keys file; a malformed entry or an unknown plan is an error naming it."""
        if not path:
            return cls()
        try:
            entries = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read the API keys file {path}: {error}") from error
        if not isinstance(entries, list):
            raise ValueError(f"the API keys file {path} must hold a JSON list of key entries")
        keys: dict[str, ApiKey] = {}
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict) or not {"id", "plan", "sha256"} <= entry.keys():
                raise ValueError(f"{path}: entry {position} needs id, plan and sha256")
            digest = str(entry["sha256"]).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"{path}: entry {position} ({entry['id']}): sha256 must be 64 hex digits")
            if entry["plan"] not in plans:
                raise ValueError(
                    f"{path}: entry {position} ({entry['id']}): unknown plan {entry['plan']!r}; "
                    f"configured plans: {', '.join(sorted(plans))}"
                )
            keys[digest] = ApiKey(id=str(entry["id"]), plan=str(entry["plan"]))
        return cls(keys)


def main(argv: list[str] | None = None) -> int:
    """`python -m gateway.keys new --id NAME --plan PLAN`: a new key (shown once) and its file entry."""
    parser = argparse.ArgumentParser(prog="python -m gateway.keys", description="make an API key")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("new", help="print a new key and the entry to add to the keys file")
    make.add_argument("--id", required=True, help="who the key is for")
    make.add_argument("--plan", default="free", help="quota plan (default free)")
    args = parser.parse_args(argv)
    key = new_key()
    print(f"key (give it to {args.id}; it is not stored anywhere): {key}")
    print(json.dumps({"id": args.id, "plan": args.plan, "sha256": hash_key(key)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
