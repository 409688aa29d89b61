"""Large bytes (uploads, layer PNGs, manifests, exports) behind an fsspec URL."""

from __future__ import annotations

import fsspec


class BlobStore:
    """Stores bytes under keys below a root URL (file:// by default, s3:// with s3fs installed, memory://)."""

    def __init__(self, root_url: str) -> None:
        self.root_url = root_url.rstrip("/")
        self._fs, self._root = fsspec.core.url_to_fs(self.root_url)

    def uri(self, key: str) -> str:
        """The URI of `key`."""
        return f"{self.root_url}/{key.lstrip('/')}"

    def _path(self, uri: str) -> str:
        if not uri.startswith(self.root_url + "/"):
            raise ValueError(f"{uri} is not inside the blob store at {self.root_url}")
        return f"{self._root}/{uri[len(self.root_url) + 1 :]}"

    def put(self, key: str, data: bytes) -> str:
        """Writes `data` at `key` (parents created) and returns its URI."""
        uri = self.uri(key)
        path = self._path(uri)
        self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self._fs.open(path, "wb") as handle:
            handle.write(data)
        return uri

    def get(self, uri: str) -> bytes:
        """Reads the bytes at `uri`."""
        with self._fs.open(self._path(uri), "rb") as handle:
            return handle.read()

    def exists(self, uri: str) -> bool:
        """Whether something is stored at `uri`."""
        return bool(self._fs.exists(self._path(uri)))

    def delete_prefix(self, key_prefix: str) -> None:
        """Removes everything under `key_prefix` (for example a failed attempt's partial outputs)."""
        path = self._path(self.uri(key_prefix))
        if self._fs.exists(path):
            self._fs.rm(path, recursive=True)
