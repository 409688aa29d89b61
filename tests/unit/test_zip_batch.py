"""ZIP uploads as batches: hostile archives built here, byte by byte where zipfile would not write them."""

from __future__ import annotations

import io
import stat
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import pytest

from services.common.config import Settings
from services.common.errors import InvalidInput
from services.common.images import encode_png
from services.common.zip_batch import (
    ZipLimits,
    ZipRefused,
    display_name,
    is_zip,
    looks_like_zip,
    open_zip_batch,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIB = 1 << 30


def png(seed: int = 0) -> bytes:
    image = np.full((32, 48, 3), seed * 40 % 256, np.uint8)
    image[8:20, 10:30] = 255 - seed
    return encode_png(image)


@dataclass
class Entry:
    """One member of a hand-built archive: the bytes as stored and what the headers claim."""

    name: str | bytes
    stored: bytes  # compressed (or stored) bytes
    file_size: int
    crc: int = 0
    method: int = zipfile.ZIP_STORED
    flags: int = 0
    external_attr: int = 0
    create_system: int = 3  # Unix

    @classmethod
    def plain(cls, name: str | bytes, data: bytes, **fields) -> Entry:
        return cls(name, data, len(data), zlib.crc32(data), **fields)


def raw_zip(entries: list[Entry], zip64: bool = False) -> bytes:
    """An archive with exactly the headers given: sizes, flags, attributes and names are not checked.

    zip64: the counts and the directory's place are in a ZIP64 end record (the usual one says "see there").
    """
    out = io.BytesIO()
    directory = io.BytesIO()
    for entry in entries:
        name = entry.name.encode() if isinstance(entry.name, str) else entry.name
        flags = entry.flags | (0x800 if isinstance(entry.name, str) else 0)
        offset = out.tell()
        out.write(
            struct.pack(
                "<4s5H3L2H", b"PK\x03\x04", 20, flags, entry.method, 0, 0x21, entry.crc,
                len(entry.stored), entry.file_size, len(name), 0,
            )
        )  # fmt: skip
        out.write(name + entry.stored)
        directory.write(
            struct.pack(
                "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, entry.create_system, 20, 0, flags, entry.method, 0, 0x21,
                entry.crc, len(entry.stored), entry.file_size, len(name), 0, 0, 0, 0, entry.external_attr, offset,
            )
        )  # fmt: skip
        directory.write(name)
    start = out.tell()
    out.write(directory.getvalue())
    count, size = len(entries), len(directory.getvalue())
    if zip64:
        record = out.tell()
        out.write(struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, start))
        out.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, record, 1))
        count, size, start = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, size, start, 0))
    return out.getvalue()


def zeros_deflated(gib: int = 1, prefix: bytes = b"") -> bytes:
    """`prefix` and `gib` GiB of zeros as raw deflate, in about a megabyte per GiB and a few milliseconds."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the same input compresses to the same bytes: one block stands for every mebibyte.
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + block * (1024 * gib) + compressor.flush()


def good_zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def open_bytes(data: bytes, limits: ZipLimits | None = None, label: str = "posters.zip"):
    return open_zip_batch(io.BytesIO(data), len(data), label, limits or ZipLimits())


def refused(data: bytes, limits: ZipLimits | None = None) -> ZipRefused:
    with pytest.raises(ZipRefused) as caught:
        open_bytes(data, limits)
    return caught.value


def test_a_zip_of_images_lists_them_and_reads_their_bytes() -> None:
    first, second, third = png(1), png(2), png(3)
    data = good_zip(**{"a.png": first, "posters/b.png": second, "c.png": third})
    with open_bytes(data) as batch:
        assert [(m.name, m.filename, m.format) for m in batch.images] == [
            ("a.png", "a.png", "png"),
            ("posters/b.png", "b.png", "png"),
            ("c.png", "c.png", "png"),
        ]
        assert batch.skipped == []
        assert [batch.read(member) for member in batch.images] == [first, second, third]


def test_os_clutter_and_folders_are_ignored_without_a_word() -> None:
    data = good_zip(
        **{
            "posters/": b"",
            "posters/a.png": png(1),
            "__MACOSX/posters/._a.png": b"\0\5\26\7 apple double",
            ".DS_Store": b"\0\0\0\1Bud1",
            "posters/.hidden.png": png(2),
            "Thumbs.db": b"thumbs",
        }
    )
    with open_bytes(data) as batch:
        assert [member.name for member in batch.images] == ["posters/a.png"]
        assert batch.skipped == []


def test_non_images_nested_zips_and_mismatched_names_are_skipped_with_a_reason() -> None:
    data = good_zip(
        **{
            "a.png": png(1),
            "notes.txt": b"just some notes",
            "fake.png": b"this is text named like an image",
            "anim.png": b"GIF89a" + bytes(20),
            "inner.zip": good_zip(**{"b.png": png(2)}),
            "hidden-zip.png": good_zip(**{"c.png": png(3)}),
            "photo.jpg": png(4),
            "empty.png": b"",
        }
    )
    with open_bytes(data) as batch:
        assert [member.name for member in batch.images] == ["a.png"]
        reasons = {item.name: (item.code, item.detail) for item in batch.skipped}
    assert reasons["notes.txt"] == ("unsupported_type", "notes.txt: not a PNG, JPEG or WebP image")
    assert reasons["fake.png"] == ("unsupported_type", "fake.png: not a PNG, JPEG or WebP image")
    assert reasons["anim.png"] == ("unsupported_type", "anim.png: not a PNG, JPEG or WebP image (it is a GIF image)")
    assert reasons["inner.zip"][0] == reasons["hidden-zip.png"][0] == "nested_zip"
    assert reasons["photo.jpg"][0] == "type_mismatch" and "contents are a PNG image" in reasons["photo.jpg"][1]
    assert reasons["empty.png"][0] == "empty_file"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../../etc/passwd.png", "climbs out"),
        ("posters/../../evil.png", "climbs out"),
        ("..\\..\\windows\\evil.png", "climbs out"),
        ("/etc/evil.png", "absolute path"),
        ("C:\\Users\\evil.png", "absolute path"),
        ("c:/evil.png", "absolute path"),
        (b"evil.png\x00.txt", "NUL character"),
    ],
)
def test_names_that_would_write_outside_a_folder_are_refused_not_extracted(name: str | bytes, why: str) -> None:
    data = raw_zip([Entry.plain(name, png(2)), Entry.plain("ok.png", png(1))])
    with open_bytes(data) as batch:
        assert [member.name for member in batch.images] == ["ok.png"]
        [item] = batch.skipped
    assert item.code == "unsafe_name" and why in item.detail
    assert "\x00" not in item.name and item.detail.startswith(item.name)


def test_symlinks_and_encrypted_members_are_skipped() -> None:
    link = Entry.plain("link.png", b"/etc/passwd", external_attr=(stat.S_IFLNK | 0o777) << 16)
    locked = Entry.plain("locked.png", png(2), flags=0x1)
    data = raw_zip([link, locked, Entry.plain("ok.png", png(1))])
    with open_bytes(data) as batch:
        assert [member.name for member in batch.images] == ["ok.png"]
        assert {item.name: item.code for item in batch.skipped} == {"link.png": "symlink", "locked.png": "encrypted"}


def test_members_over_the_upload_limit_or_in_other_compressions_are_skipped() -> None:
    big = png(1) + bytes(5000)
    bzip = Entry("old.png", b"BZh9", 100, method=zipfile.ZIP_BZIP2)
    data = raw_zip([Entry.plain("big.png", big), bzip, Entry.plain("ok.png", png(2))])
    with open_bytes(data, ZipLimits(max_member_bytes=len(big) - 1)) as batch:
        assert [member.name for member in batch.images] == ["ok.png"]
        reasons = {item.name: item.code for item in batch.skipped}
    assert reasons == {"big.png": "too_large", "old.png": "unsupported_compression"}


def test_an_honest_gigabyte_of_zeros_is_refused_as_a_bomb_without_being_expanded() -> None:
    stored = zeros_deflated(1)
    data = raw_zip([Entry("zeros.png", stored, GIB, method=zipfile.ZIP_DEFLATED), Entry.plain("ok.png", png(1))])
    started = time.perf_counter()
    error = refused(data)
    assert time.perf_counter() - started < 1.0
    assert error.code == "zip_bomb" and error.too_large and "zeros.png would expand 1,011 times" in error.detail
    # With the ratio check out of the way, the uncompressed-size limit refuses it just the same.
    over_total = refused(data, ZipLimits(max_ratio=10_000, max_uncompressed_bytes=GIB - 1))
    assert over_total.code == "too_large" and over_total.too_large and "expands to 1,073,7" in over_total.detail


def test_a_header_that_lies_about_the_size_never_yields_more_than_it_declared() -> None:
    stored = zeros_deflated(1, prefix=PNG_SIGNATURE)
    declared = 5 * 1024 * 1024
    lie = Entry("lie.png", stored, declared, crc=0, method=zipfile.ZIP_DEFLATED)
    with open_bytes(raw_zip([lie])) as batch:
        [member] = batch.images  # the first bytes are a PNG's and the declared ratio looks innocent
        started = time.perf_counter()
        with pytest.raises(InvalidInput, match=r"lie\.png: the member is corrupt"):
            batch.read(member)
        assert time.perf_counter() - started < 1.0
        # Even if the directory is changed under it, a read stops at the byte limit.
        member.info.file_size = 8 * GIB
        with pytest.raises(InvalidInput, match="more than 10,485,760 bytes"):
            batch.read(member)


def test_too_many_entries_or_images_refuse_the_archive() -> None:
    many = good_zip(**{f"{i}.txt": b"x" for i in range(12)})
    error = refused(many, ZipLimits(max_entries=10))
    assert error.code == "too_many_files" and "12 entries" in error.detail
    images = good_zip(**{f"{i}.png": png(i) for i in range(4)})
    error = refused(images, ZipLimits(max_images=3))
    assert error.code == "too_many_files" and "4 images" in error.detail


def test_an_end_record_announcing_a_huge_directory_is_refused_before_zipfile_reads_it() -> None:
    data = bytearray(good_zip(**{"a.png": png(1)}))
    struct.pack_into("<HHL", data, len(data) - 14, 60_000, 60_000, 60_000 * 100)  # entries and directory size
    error = refused(bytes(data))
    assert error.code == "too_many_files" and "60,000 entries" in error.detail


def test_zip64_end_records_are_read_for_the_entry_count() -> None:
    data = raw_zip([Entry.plain(f"{i}.png", png(i)) for i in range(3)], zip64=True)
    with open_bytes(data) as batch:
        assert [member.name for member in batch.images] == ["0.png", "1.png", "2.png"]
    error = refused(data, ZipLimits(max_entries=2))
    assert error.code == "too_many_files" and "3 entries" in error.detail
    damaged = bytearray(data)
    damaged[damaged.rfind(b"PK\x06\x07")] = ord("X")
    assert "damaged ZIP64 end record" in refused(bytes(damaged)).detail


def test_a_corrupt_empty_or_oversized_zip_is_refused_as_a_whole() -> None:
    corrupt = refused(b"PK\x03\x04" + bytes(range(256)) * 4)
    assert corrupt.code == "bad_zip" and "not a ZIP archive" in corrupt.detail and not corrupt.too_large
    truncated = good_zip(**{"a.png": png(1), "b.png": png(2)})
    assert refused(truncated[: len(truncated) // 2]).code == "bad_zip"
    empty = refused(good_zip())
    assert empty.code == "no_images" and "holds no PNG, JPEG or WebP image" in empty.detail
    only_text = refused(good_zip(**{"notes.txt": b"x"}))
    assert only_text.code == "no_images" and "notes.txt: not a PNG, JPEG or WebP image" in only_text.detail
    data = good_zip(**{"a.png": png(1)})
    too_big = refused(data, ZipLimits(max_zip_bytes=len(data) - 1))
    assert too_big.code == "too_large" and too_big.too_large


def test_detection_names_and_limits_from_settings() -> None:
    assert is_zip("Posters.ZIP", None) and is_zip("upload", "application/zip; charset=binary")
    assert not is_zip("poster.png", "image/png")
    assert looks_like_zip(good_zip()) and looks_like_zip(good_zip(**{"a.png": b"x"})) and not looks_like_zip(png())
    assert display_name("a\x00b\nc.png") == "a?b?c.png" and len(display_name("x" * 500)) == 200
    limits = ZipLimits.from_settings(Settings(max_upload_bytes=1234, batch_max_files=7, batch_max_ratio=50))
    assert (limits.max_member_bytes, limits.max_images, limits.max_ratio) == (1234, 7, 50.0)
