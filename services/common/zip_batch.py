"""A ZIP of images as one batch: the archive is checked before anything in it is expanded.

The gateway and the CLI both open uploads through `open_zip_batch`. Archive-wide problems refuse
the whole ZIP (`ZipRefused`): not a readable archive, too many bytes or entries, members that would
expand past the uncompressed limit or by more than the compression-ratio limit (a zip bomb), or no
image in it at all. Member problems skip that member with a reason (`Skipped`): a name that climbs
out of the archive or is absolute, a symlink, an encrypted or nested archive, an unusual compression
method, a size over the upload limit, or contents that are not a PNG, JPEG or WebP image. Folders
and OS clutter (``__MACOSX/``, ``.DS_Store``, other hidden files) are ignored without a word.

Nothing is ever written to disk by a member's name: `ZipBatch.read` returns a member's bytes,
reading at most the upload byte limit whatever its header declares. Only stored and deflated
members are read, since zlib bounds how much one read decompresses (bzip2 and LZMA do not).
"""

from __future__ import annotations

import re
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO

from services.common.config import Settings
from services.common.errors import InvalidInput
from services.ingest.image_formats import EXTENSIONS, LABELS, describe_other, sniff_format

ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # a first local header; an empty archive is just its end record
ZIP_CONTENT_TYPES = frozenset({"application/zip", "application/x-zip-compressed", "application/x-zip"})
# Members under this size are never called bombs: short text compresses far, and such expansion is harmless.
RATIO_FLOOR_BYTES = 1024 * 1024
# Room for one central-directory entry: 46 fixed bytes plus a long name and its extra fields.
_DIRECTORY_ENTRY_BYTES = 1024
_HEAD_BYTES = 16
_READABLE_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_JUNK_NAMES = frozenset({"__macosx", "thumbs.db", "desktop.ini"})
_DRIVE = re.compile(r"[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"


@dataclass(frozen=True)
class ZipLimits:
    """What one ZIP of a batch may hold (Settings.batch_* and max_upload_bytes)."""

    max_images: int = 100  # image members, so jobs, one archive expands into
    max_entries: int = 1000  # entries of every kind: folders, OS clutter and skipped members too
    max_zip_bytes: int = 200 * 1024 * 1024
    max_uncompressed_bytes: int = 1024 * 1024 * 1024  # the declared sizes of all members together
    max_member_bytes: int = 10 * 1024 * 1024  # one image: the upload byte limit
    max_ratio: float = 100.0  # a member's declared size over its compressed size

    @classmethod
    def from_settings(cls, settings: Settings) -> ZipLimits:
        """The limits the settings configure."""
        return cls(
            max_images=settings.batch_max_files,
            max_entries=settings.batch_max_entries,
            max_zip_bytes=settings.batch_max_zip_bytes,
            max_uncompressed_bytes=settings.batch_max_uncompressed_bytes,
            max_member_bytes=settings.max_upload_bytes,
            max_ratio=settings.batch_max_ratio,
        )


class ZipRefused(InvalidInput):
    """The archive as a whole cannot be used. `code` names why; `too_large` is set when a size limit was hit."""

    def __init__(self, code: str, detail: str, too_large: bool = False) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.too_large = too_large


@dataclass(frozen=True)
class Skipped:
    """A member that is not expanded: its path in the archive, a code and a sentence that starts with the path."""

    name: str
    code: str
    detail: str


@dataclass(frozen=True)
class ImageMember:
    """An image member: one job of the batch."""

    name: str  # its path in the archive, for messages
    filename: str  # its last part: the job's file name
    format: str  # "png", "jpeg" or "webp"
    size: int  # as declared; `ZipBatch.read` checks it
    info: zipfile.ZipInfo = field(repr=False, compare=False)


def is_zip(filename: str, content_type: str | None) -> bool:
    """Whether an upload asks to be treated as a ZIP of images: its name ends in .zip, or its type says ZIP."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return filename.lower().endswith(".zip") or media_type in ZIP_CONTENT_TYPES


def looks_like_zip(head: bytes) -> bool:
    """Whether a file's first bytes are a ZIP archive's."""
    return head.startswith(ZIP_SIGNATURES)


def display_name(name: str) -> str:
    """A member path as it may appear in a message: control characters shown as '?', at most 200 characters."""
    shown = _CONTROL.sub("?", name)
    return shown if len(shown) <= 200 else shown[:199] + "…"


class ZipBatch:
    """A checked archive: its image members (archive order) and the members skipped, with reasons.

    Close it (or use it as a context manager) when done; the file it reads belongs to the caller.
    """

    def __init__(self, archive: zipfile.ZipFile, images: list[ImageMember], skipped: list[Skipped], limits: ZipLimits):
        self._archive = archive
        self.images = images
        self.skipped = skipped
        self._limits = limits

    def read(self, member: ImageMember) -> bytes:
        """The member's bytes, at most the member byte limit; InvalidInput if they are not what the header says."""
        cap = self._limits.max_member_bytes
        try:
            with self._archive.open(member.info) as stream:
                # zipfile stops at the declared size; the cap holds whatever the header says.
                data = stream.read(cap + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
            raise InvalidInput(f"{member.name}: the member is corrupt ({error}): zip the images again") from None
        if len(data) > cap:
            raise InvalidInput(f"{member.name}: the member holds more than {cap:,} bytes: zip the images again")
        if len(data) != member.size:
            raise InvalidInput(
                f"{member.name}: the member holds {len(data):,} bytes, not the {member.size:,} its header says: "
                "zip the images again"
            )
        return data

    def close(self) -> None:
        """Closes the archive (not the file under it)."""
        self._archive.close()

    def __enter__(self) -> ZipBatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_zip_batch(file: IO[bytes], size: int, label: str, limits: ZipLimits) -> ZipBatch:
    """Checks the seekable ZIP `file` of `size` bytes (named `label` in messages) and lists what it expands into.

    Raises ZipRefused when the archive as a whole cannot be used.
    """
    if size > limits.max_zip_bytes:
        raise ZipRefused(
            "too_large",
            f"{label} is {size:,} bytes; a ZIP may have at most {limits.max_zip_bytes:,}: split it and upload again",
            too_large=True,
        )
    _check_directory(file, size, label, limits)
    file.seek(0)
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as error:
        raise ZipRefused("bad_zip", f"{label} is not a readable ZIP archive ({error}): zip the images again") from None
    try:
        infos = archive.infolist()
        _check_expansion(infos, label, limits)
        images, skipped = _sort_members(archive, infos, label, limits)
    except BaseException:
        archive.close()
        raise
    return ZipBatch(archive, images, skipped, limits)


def _check_directory(file: IO[bytes], size: int, label: str, limits: ZipLimits) -> None:
    """Refuses an archive whose end record announces more entries, or a bigger directory, than allowed.

    zipfile builds an object per entry of the whole directory when it opens an archive: a few
    megabytes of tiny entries would cost gigabytes, so the count is read from the end record first.
    """
    tail_size = min(size, _EOCD_SIZE + 0xFFFF)
    file.seek(size - tail_size)
    tail = file.read(tail_size)
    # As zipfile looks for it: at the very end, else followed by an archive comment.
    at = len(tail) - _EOCD_SIZE
    if not (tail[at : at + 4] == _EOCD and tail.endswith(b"\0\0")):
        at = tail.rfind(_EOCD, 0, len(tail) - _EOCD_SIZE + 4)
    if at < 0:
        raise ZipRefused("bad_zip", f"{label} is not a ZIP archive (it has no end record): zip the images again")
    entries, directory_bytes = struct.unpack_from("<HL", tail, at + 10)
    if entries == 0xFFFF or directory_bytes == 0xFFFFFFFF:
        entries, directory_bytes = _zip64_directory(file, size - tail_size + at, label)
    if entries > limits.max_entries or directory_bytes > limits.max_entries * _DIRECTORY_ENTRY_BYTES:
        raise ZipRefused(
            "too_many_files",
            f"{label} has {entries:,} entries ({directory_bytes:,} bytes of table of contents); a ZIP may have at "
            f"most {limits.max_entries:,}: split it and upload again",
        )


def _zip64_directory(file: IO[bytes], eocd_offset: int, label: str) -> tuple[int, int]:
    """(entries, directory bytes) from the ZIP64 end record an archive's end record points to."""
    if eocd_offset < 20:
        raise ZipRefused("bad_zip", f"{label} has a damaged ZIP64 end record: zip the images again")
    file.seek(eocd_offset - 20)
    locator = file.read(20)
    if not locator.startswith(_ZIP64_LOCATOR):
        raise ZipRefused("bad_zip", f"{label} has a damaged ZIP64 end record: zip the images again")
    (record_offset,) = struct.unpack_from("<Q", locator, 8)
    file.seek(record_offset)
    record = file.read(56)
    if len(record) < 56 or not record.startswith(_ZIP64_EOCD):
        raise ZipRefused("bad_zip", f"{label} has a damaged ZIP64 end record: zip the images again")
    entries, directory_bytes = struct.unpack_from("<QQ", record, 32)
    return entries, directory_bytes


def _check_expansion(infos: list[zipfile.ZipInfo], label: str, limits: ZipLimits) -> None:
    """Refuses an archive that would expand by too much, in all or in any one member (declared sizes)."""
    if len(infos) > limits.max_entries:
        raise ZipRefused(
            "too_many_files", f"{label} has {len(infos):,} entries; a ZIP may have at most {limits.max_entries:,}"
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR_BYTES and ratio > limits.max_ratio:
            raise ZipRefused(
                "zip_bomb",
                f"{label}: {display_name(info.filename)} would expand {ratio:,.0f} times ({info.compress_size:,} to "
                f"{info.file_size:,} bytes); the limit is {limits.max_ratio:g} times, so the ZIP is refused as a "
                "possible zip bomb",
                too_large=True,
            )
    total = sum(info.file_size for info in infos)
    if total > limits.max_uncompressed_bytes:
        raise ZipRefused(
            "too_large",
            f"{label} expands to {total:,} bytes; a ZIP may expand to at most {limits.max_uncompressed_bytes:,}: "
            "split it and upload again",
            too_large=True,
        )


def _sort_members(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], label: str, limits: ZipLimits
) -> tuple[list[ImageMember], list[Skipped]]:
    images: list[ImageMember] = []
    skipped: list[Skipped] = []
    for info in infos:
        name = info.orig_filename.replace("\\", "/")
        if name.endswith("/"):  # a folder entry
            continue
        reason = _unsafe_name(info.orig_filename)
        if reason is not None:
            skipped.append(Skipped(display_name(info.orig_filename), "unsafe_name", reason))
            continue
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if any(part.startswith(".") or part.lower() in _JUNK_NAMES for part in parts):
            continue
        member = _image_member(archive, info, "/".join(parts), limits)
        if isinstance(member, Skipped):
            skipped.append(member)
        else:
            images.append(member)
    if not images:
        reasons = "; ".join(item.detail for item in skipped[:5]) or "it holds nothing but folders and hidden files"
        raise ZipRefused("no_images", f"{label} holds no PNG, JPEG or WebP image ({reasons})")
    if len(images) > limits.max_images:
        raise ZipRefused(
            "too_many_files",
            f"{label} holds {len(images):,} images; a batch may have at most {limits.max_images:,}: "
            "split it and upload again",
        )
    return images, skipped


def _unsafe_name(raw: str) -> str | None:
    """Why a member's name could write outside a folder if extracted, or None; a backslash counts as a slash."""
    shown = display_name(raw)
    name = raw.replace("\\", "/")
    if "\x00" in name:
        return f"{shown}: the name holds a NUL character, so it is not extracted"
    if name.startswith("/") or _DRIVE.match(name):
        return f"{shown}: the name is an absolute path, so it is not extracted"
    if ".." in name.split("/"):
        return f"{shown}: the name climbs out of the archive ('..'), so it is not extracted"
    return None


def _image_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, limits: ZipLimits
) -> ImageMember | Skipped:
    shown = display_name(name)
    filename = name.rsplit("/", 1)[-1]
    suffix = filename[filename.rfind(".") :].lower() if "." in filename else ""
    if stat.S_ISLNK(info.external_attr >> 16):
        return Skipped(shown, "symlink", f"{shown}: the member is a symbolic link, so it is not followed")
    if info.flag_bits & 0x1:
        return Skipped(shown, "encrypted", f"{shown}: the member is encrypted: zip it again without a password")
    if suffix == ".zip":
        return Skipped(shown, "nested_zip", f"{shown}: ZIPs inside the ZIP are not opened: add their images instead")
    if suffix not in EXTENSIONS:
        return Skipped(shown, "unsupported_type", f"{shown}: not a PNG, JPEG or WebP image")
    if info.compress_type not in _READABLE_METHODS:
        return Skipped(
            shown,
            "unsupported_compression",
            f"{shown}: compressed with method {info.compress_type}; zip it again with the usual (deflate) compression",
        )
    if info.file_size == 0:
        return Skipped(shown, "empty_file", f"{shown}: the file is empty (0 bytes)")
    if info.file_size > limits.max_member_bytes:
        return Skipped(
            shown,
            "too_large",
            f"{shown}: the image is {info.file_size:,} bytes; the limit is {limits.max_member_bytes:,}: "
            "compress or downscale it",
        )
    try:
        with archive.open(info) as stream:
            head = stream.read(_HEAD_BYTES)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as error:
        return Skipped(shown, "corrupt", f"{shown}: the member is corrupt ({error})")
    found = sniff_format(head)
    if found is None:
        if looks_like_zip(head):
            return Skipped(shown, "nested_zip", f"{shown}: a ZIP inside the ZIP is not opened: add its images instead")
        what = describe_other(head)
        detail = f"not a PNG, JPEG or WebP image (it is {what})" if what else "not a PNG, JPEG or WebP image"
        return Skipped(shown, "unsupported_type", f"{shown}: {detail}")
    declared = EXTENSIONS[suffix]
    if found != declared:
        return Skipped(
            shown,
            "type_mismatch",
            f"{shown}: the name says {LABELS[declared]} but the contents are a {LABELS[found]} image: rename it",
        )
    return ImageMember(shown, filename, found, info.file_size, info)
