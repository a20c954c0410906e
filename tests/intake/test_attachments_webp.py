"""WebP photos lose their EXIF (GPS) and XMP chunks without being re-encoded; broken WebP files are refused."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import ExifTags, Image  # the dev extra: real WebP files with EXIF GPS

from civicmap.errors import InputError
from civicmap.intake import Intake
from civicmap.intake.attachments import strip_exif

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description exif:GPSLatitude="6,48.883S"/></x:xmpmeta>'


def webp_with_gps(*, lossless: bool = True, size: int = 24) -> bytes:
    """A real WebP (Pillow) with an EXIF GPS block (6 deg 48' 53" S, 39 deg 14' 43" E) and an XMP packet."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "FieldPhone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "S", (6.0, 48.0, 53.0)
    gps[ExifTags.GPS.GPSLongitudeRef], gps[ExifTags.GPS.GPSLongitude] = "E", (39.0, 14.0, 43.0)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "WEBP", lossless=lossless, exif=exif.tobytes(), xmp=XMP)
    return buf.getvalue()


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (FourCC, payload) chunks of a RIFF/WEBP file, checking the RIFF size on the way."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    out, pos = [], 12
    while pos < len(data):
        kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        out.append((kind, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    assert pos == len(data)
    return out


def test_pillow_webp_loses_exif_gps_and_xmp_without_reencoding() -> None:
    original = webp_with_gps()
    before = dict(chunks(original))
    assert {b"VP8X", b"VP8L", b"EXIF", b"XMP "} <= set(before)
    assert before[b"VP8X"][0] & 0x0C == 0x0C  # EXIF and XMP flags set
    with Image.open(io.BytesIO(original)) as im:
        assert im.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] == (6.0, 48.0, 53.0)
        pixels = np.asarray(im.convert("RGB"))

    clean = strip_exif(original, "image/webp")

    after = dict(chunks(clean))
    assert set(after) == {b"VP8X", b"VP8L"}
    assert after[b"VP8L"] == before[b"VP8L"]  # image data copied byte for byte
    assert after[b"VP8X"][0] == before[b"VP8X"][0] & ~0x0C and after[b"VP8X"][1:] == before[b"VP8X"][1:]
    removed = [p for k, p in chunks(original) if k in (b"EXIF", b"XMP ")]
    assert len(original) - len(clean) == sum(8 + len(p) + (len(p) & 1) for p in removed)
    assert b"FieldPhone" not in clean and b"GPSLatitude" not in clean
    with Image.open(io.BytesIO(clean)) as im:
        assert len(im.getexif()) == 0 and "exif" not in im.info and "xmp" not in im.info
        assert np.array_equal(np.asarray(im.convert("RGB")), pixels)
    assert strip_exif(clean, "image/webp") == clean  # nothing left to strip


def test_lossy_webp_keeps_its_vp8_bitstream() -> None:
    original = webp_with_gps(lossless=False, size=33)
    clean = strip_exif(original, "image/webp")
    assert dict(chunks(clean))[b"VP8 "] == dict(chunks(original))[b"VP8 "]
    with Image.open(io.BytesIO(clean)) as im, Image.open(io.BytesIO(original)) as was:
        assert im.size == (33, 33) and len(im.getexif()) == 0 and len(was.getexif()) > 0
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(was.convert("RGB")))


def test_simple_webp_without_metadata_is_unchanged() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (5, 3), (200, 10, 10)).save(buf, "WEBP", lossless=True)
    plain = buf.getvalue()
    assert [k for k, _ in chunks(plain)] == [b"VP8L"]
    assert strip_exif(plain, "image/webp") == plain


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (lambda d: d[:-10], "truncated"),  # RIFF size says more than the file has
        (lambda d: d[:4] + struct.pack("<I", len(d) - 8 + 3) + d[8:] + b"abc", "stray bytes"),
        (lambda d: d[:16] + struct.pack("<I", 10**6) + d[20:], "claims 1000000 bytes"),
    ],
)
def test_malformed_webp_is_refused(cut: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        strip_exif(cut(webp_with_gps()), "image/webp")  # type: ignore[operator]


def test_webp_photo_submitted_is_stored_without_gps(client: TestClient, intake: Intake) -> None:
    photo = webp_with_gps()
    sub = {
        "instance_id": "uuid:webp",
        "answers": {"category": "flooding", "severity": 1, "photo": "IMG_2.webp"},
        "location": {"type": "Point", "coordinates": [39.2401, -6.8152]},
    }
    files = {
        "submission": (None, json.dumps(sub), "application/json"),
        "IMG_2.webp": ("IMG_2.webp", photo, "image/webp"),
    }
    r = client.post("/forms/damage_report/submissions", files=files)
    assert r.status_code == 201, r.text
    [att] = intake.store.attachments("uuid:webp")
    stored = (intake.store.attachments_dir / att.path).read_bytes()
    assert att.media_type == "image/webp" and att.size == len(stored) < len(photo)
    assert stored == strip_exif(photo, "image/webp") and b"FieldPhone" not in stored
    with Image.open(io.BytesIO(stored)) as im:
        assert len(im.getexif()) == 0
