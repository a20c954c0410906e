r"""Attachments (photos, audio, PDF): safe names, type sniffed from the bytes, EXIF GPS removal, durable writes.

Accepted types, recognised by their first bytes (the file name's extension must agree):

==========  ======================  =====================================
type        media type              magic bytes
==========  ======================  =====================================
.jpg/.jpeg  image/jpeg              ``FF D8 FF``
.png        image/png               ``89 50 4E 47 0D 0A 1A 0A``
.webp       image/webp              ``RIFF....WEBP``
.mp3        audio/mpeg              ``ID3`` or an MPEG frame sync ``FF Ex/Fx``
.m4a        audio/mp4               ``....ftyp`` (ISO media)
.pdf        application/pdf         ``%PDF-``
==========  ======================  =====================================

Anything else (an HTML page named ``.jpg``, an executable) is a :class:`MediaTypeError` (HTTP
415). Zip files are not accepted, so zip bombs do not arise.

**Names.** A name is the last part of what the client sent; names with a folder part
(``../../x.jpg``, ``a/b.jpg``, ``C:\\x.jpg``), control characters or over 128 characters are
refused (:class:`InputError`, HTTP 400) rather than silently renamed, so the submission's answer
and the stored file never disagree.

**EXIF.** JPEG photos lose their APP1 segments (EXIF, with GPS position and device, and XMP)
unless the form keeps them for that question; the image data itself is copied byte for byte.
PNG ``eXIf`` chunks are dropped the same way. WebP files (a RIFF container: ``RIFF`` <size>
``WEBP`` then chunks of FourCC, little-endian size, payload, a pad byte when the size is odd;
developers.google.com/speed/webp/docs/riff_container) lose their ``EXIF`` and ``XMP `` chunks;
the ``VP8X`` header's EXIF (0x08) and XMP (0x04) flags are cleared and the RIFF size rewritten,
every other chunk (``VP8``/``VP8L`` image data, ``ALPH``, ``ICCP``, animation frames) is copied
byte for byte, so nothing is re-encoded. A WebP whose chunks run past its end is refused
(:class:`InputError`) rather than stored with its metadata possibly left in.

**Durability.** :func:`stage_attachment` writes to a temporary file in the attachments folder,
fsyncs it, renames it to its content address (``ab/<sha256>``) and fsyncs the folder; only then
may the database row referring to it be committed. A crash in between leaves at worst an
unreferenced file, which :meth:`IntakeStore.gc` deletes; never a row without its file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import tempfile
import time
from collections.abc import Set
from pathlib import Path

from civicmap.errors import InputError, MediaTypeError, TooLargeError
from civicmap.intake.base import StagedAttachment

log = logging.getLogger(__name__)

__all__ = [
    "MEDIA_TYPES",
    "check_attachment",
    "delete_unreferenced",
    "safe_name",
    "sniff_media_type",
    "stage_attachment",
    "strip_exif",
]

#: Extension -> media type of every accepted attachment.
MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".pdf": "application/pdf",
}
_WEBP_EXIF_FLAG = 0x08
_WEBP_XMP_FLAG = 0x04
_NAME = re.compile(r"^[^\x00-\x1f/\\:*?\"<>|]{1,128}$")


def safe_name(name: str | None) -> str:
    """``name`` if it is a plain file name with an accepted extension; :class:`InputError` otherwise."""
    if not name or not _NAME.match(name) or name in (".", "..") or name.startswith(".") or ".." in name:
        raise InputError(
            f"attachment name {name!r} is not a plain file name (no folders, '..', control characters; "
            "at most 128 characters); send the file under the name the form answer refers to"
        )
    if Path(name).suffix.lower() not in MEDIA_TYPES:
        raise MediaTypeError(
            f"attachment {name!r}: extension not accepted; expected one of {', '.join(sorted(MEDIA_TYPES))}"
        )
    return name


def sniff_media_type(data: bytes) -> str | None:
    """The media type the bytes really are (see the module table), or None."""
    checks = (
        ("image/jpeg", data.startswith(b"\xff\xd8\xff")),
        ("image/png", data.startswith(b"\x89PNG\r\n\x1a\n")),
        ("image/webp", data[:4] == b"RIFF" and data[8:12] == b"WEBP"),
        ("audio/mpeg", data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)),
        ("audio/mp4", data[4:8] == b"ftyp"),
        ("application/pdf", data.startswith(b"%PDF-")),
    )
    return next((kind for kind, hit in checks if hit), None)


def check_attachment(name: str, data: bytes, *, max_bytes: int) -> str:
    """The media type of an acceptable attachment; the size, name or content error otherwise."""
    name = safe_name(name)
    if len(data) > max_bytes:
        raise TooLargeError(f"attachment {name!r} is {len(data)} bytes; the limit is {max_bytes} bytes")
    if not data:
        raise InputError(f"attachment {name!r} is empty (0 bytes); send the file again")
    expected = MEDIA_TYPES[Path(name).suffix.lower()]
    actual = sniff_media_type(data)
    if actual != expected:
        raise MediaTypeError(
            f"attachment {name!r}: its content is {actual or 'not an accepted type'}, not {expected} as its name says"
        )
    return expected


def strip_exif(data: bytes, media_type: str) -> bytes:
    """JPEG without APP1 (EXIF/XMP) segments, PNG without ``eXIf``, WebP without ``EXIF``/``XMP ``; others unchanged."""
    if media_type == "image/jpeg":
        return _strip_jpeg_app1(data)
    if media_type == "image/png":
        return _strip_png_exif(data)
    if media_type == "image/webp":
        return _strip_webp_metadata(data)
    return data


def _strip_jpeg_app1(data: bytes) -> bytes:
    out = bytearray(data[:2])
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the rest is image data
            break
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker != 0xE1:
            out += data[pos : pos + 2 + length]
        pos += 2 + length
    return bytes(out + data[pos:])


def _strip_png_exif(data: bytes) -> bytes:
    out = bytearray(data[:8])
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 12 + length
        if data[pos + 4 : pos + 8] != b"eXIf":
            out += data[pos:end]
        pos = end
    return bytes(out + data[pos:])


def _strip_webp_metadata(data: bytes) -> bytes:
    """The WebP without ``EXIF``/``XMP `` chunks, ``VP8X`` flags cleared, RIFF size fixed (module docstring)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise InputError("attachment is not a RIFF/WEBP file; send the photo as the camera saved it")
    (riff_size,) = struct.unpack("<I", data[4:8])
    end = 8 + riff_size
    if end > len(data) or riff_size < 4:
        raise InputError(
            f"WebP attachment is truncated: its RIFF header says {end} bytes, the file has {len(data)}; send it again"
        )
    chunks = bytearray()
    pos = 12
    while pos < end:
        if pos + 8 > end:
            raise InputError(f"WebP attachment is malformed: {end - pos} stray bytes at offset {pos}; send it again")
        kind = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        stop = pos + 8 + size + (size & 1)
        if pos + 8 + size > end:
            raise InputError(
                f"WebP attachment is malformed: chunk {kind!r} at offset {pos} claims {size} bytes past the end; "
                "send the photo again"
            )
        if kind not in (b"EXIF", b"XMP "):  # a missing last pad byte is added
            chunks += data[pos : min(stop, end)].ljust(stop - pos, b"\0")
        pos = stop
    if chunks[:4] == b"VP8X" and len(chunks) > 8:
        chunks[8] &= ~(_WEBP_EXIF_FLAG | _WEBP_XMP_FLAG) & 0xFF
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + bytes(chunks)


def stage_attachment(directory: Path, name: str, data: bytes, media_type: str) -> StagedAttachment:
    """Write ``data`` durably under its content address in ``directory`` (see the module docstring)."""
    digest = hashlib.sha256(data).hexdigest()
    rel = f"{digest[:2]}/{digest}"
    final = directory / rel
    if not final.exists():
        if not final.parent.is_dir():
            final.parent.mkdir(parents=True, exist_ok=True)
            _fsync_dir(directory)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)
    return StagedAttachment(name=name, sha256=digest, size=len(data), media_type=media_type, path=rel)


def delete_unreferenced(directory: Path, referenced: Set[str], *, min_age_s: float) -> int:
    """Delete files under ``directory`` not in ``referenced`` and older than ``min_age_s`` seconds; how many.

    What :meth:`IntakeStore.gc` does with the paths (``ab/<sha256>``) its rows refer to.
    """
    cutoff = time.time() - min_age_s
    removed = 0
    for file in directory.glob("*/*"):
        rel = file.relative_to(directory).as_posix()
        if rel not in referenced and file.is_file() and file.stat().st_mtime < cutoff:
            file.unlink(missing_ok=True)
            removed += 1
    log.info("intake gc: %d unreferenced attachment files removed from %s", removed, directory)
    return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
