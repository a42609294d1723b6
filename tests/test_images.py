"""predistort.images: every odd or hostile upload either becomes a clean texture with a note for each change,
or is refused with an ImageError that says what is wrong. All inputs are generated here, in tmp_path."""
import io
import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, ImageOps

from common import REPO, run_python
from predistort import images
from predistort.images import (ImageError, l1, load_image, prepare_texture, psnr, save_png, side_by_side,
                               to_pil)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


# ---------------------------------------------------------------------------------------------------------
# helpers

def png_bytes(im, **kw):
    buf = io.BytesIO()
    im.save(buf, "PNG", **kw)
    return buf.getvalue()


def write_png(path, width, height, color_type=2, depth=8, rows=None, level=3):
    """Write a PNG by hand, streaming: rows(y) -> the raw row bytes (default: zeros). Nothing of size
    width × height is ever held in memory, so a 12000×12000 file costs a few MB to write."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    zero_row = b"\0" * (1 + width * channels * depth // 8)       # filter byte 0 + samples
    comp = zlib.compressobj(level)
    parts = [comp.compress(zero_row if rows is None else b"\0" + rows(y)) for y in range(height)]
    parts.append(comp.flush())

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts))
                     + chunk(b"IEND", b""))
    return path


def assert_texture(t, r):
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    assert tuple(t.shape) == (r, r, 3)
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


def rgb255(t, y, x):
    return tuple(round(float(v) * 255) for v in t[y, x])


def near(a, b, tol=6):
    return all(abs(int(p) - int(q)) <= tol for p, q in zip(a, b))


def refused(source, *words, **kw):
    """Assert that prepare_texture refuses source with an ImageError containing every word."""
    with pytest.raises(ImageError) as info:
        prepare_texture(source, kw.pop("resolution", 32), **kw)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


@pytest.fixture(scope="session")
def big_png(tmp_path_factory):
    """12000×12000 gray, one shade: 144 MB decoded (432 MB once RGB), 0.6 MB on disk."""
    return write_png(tmp_path_factory.mktemp("big") / "12000x12000.png", 12000, 12000, color_type=0)


@pytest.fixture(scope="session")
def big_jpeg(tmp_path_factory):
    """8000×6000 (48 MP, under MAX_PIXELS) JPEG: left half red, right half blue; 144 MB decoded."""
    im = Image.new("RGB", (8000, 6000), RED)
    im.paste(BLUE, (4000, 0, 8000, 6000))
    path = tmp_path_factory.mktemp("big") / "8000x6000.jpg"
    im.save(path, quality=80)
    return path


# ---------------------------------------------------------------------------------------------------------
# refused, with a clear message

@pytest.mark.parametrize("data", [b"hello, this is text", b"\x89PNG\r\n\x1a\n but not really",
                                  bytes(range(256)) * 4])
def test_non_image_bytes(data):
    refused(data, "not an image", "PNG, JPEG, HEIC, WebP, BMP, GIF or TIFF")


def test_non_image_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("just some words\n")
    refused(path, "not an image")
    refused(str(path), "not an image")


def test_format_outside_the_allow_list(tmp_path):
    path = tmp_path / "picture.ppm"                  # Pillow reads PPM, but uploads are limited to a few formats
    Image.new("RGB", (32, 32), RED).save(path)
    assert Image.open(path).format == "PPM"
    refused(path, "not an image", "unsupported")


@pytest.mark.parametrize("kind", ["path", "bytes", "file"])
def test_empty(tmp_path, kind):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    source = {"path": path, "bytes": b"", "file": io.BytesIO(b"")}[kind]
    refused(source, "empty", "0 bytes")


def test_missing_file_and_folder(tmp_path):
    refused(tmp_path / "nope.png", "no file")
    refused(tmp_path, "folder")
    refused(None, "No picture")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path, fmt):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    assert Image.open(path).size == (64, 64)         # the header is intact: only decoding can tell
    refused(path, "damaged or incomplete", "cut short")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # refused by detection, not by a changed global


def test_wrong_size_refused_before_decoding(tmp_path):
    # A truncated 64×64 file with fit="exact" at 32: the size is refused from the header, so the message is
    # about the size, not about the damage that a decode would hit.
    data = png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)))
    refused(data[: len(data) // 2], "64×64", "exactly 32×32", fit="exact")


@pytest.mark.parametrize("size", [(1, 1), (7, 100), (100, 7)])
def test_too_small(size):
    refused(png_bytes(Image.new("RGB", size, RED)), f"{size[0]}×{size[1]}", "at least 8 pixels")


def test_smallest_allowed():
    t, notes = prepare_texture(png_bytes(Image.new("RGB", (8, 8), RED)), 8, fit="exact")
    assert_texture(t, 8)
    assert notes == [] and rgb255(t, 3, 3) == RED


def test_huge_png_refused_from_its_header(big_png, recwarn):
    message = refused(big_png, "12000×12000", "144.0 megapixels", "50 megapixel limit")
    assert "Shrink it" in message
    # 144 MP is past Pillow's own warning threshold (89 MP): no DecompressionBombWarning may leak out.
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_decompression_bomb_header(tmp_path):
    # A PNG whose header claims 100000×100000 (10 gigapixels) with almost no data: Pillow's own bomb check
    # raises while opening; it must come out as an ImageError.
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    data = b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
        for k, d in [(b"IHDR", ihdr), (b"IDAT", idat), (b"IEND", b"")])
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    refused(data, "far too large", "megapixels")


def test_max_pixels_is_the_limit(monkeypatch):
    data = png_bytes(Image.new("RGB", (100, 50), RED))
    monkeypatch.setattr(images, "MAX_PIXELS", 4999)
    refused(data, "100×50", "megapixel limit")
    monkeypatch.setattr(images, "MAX_PIXELS", 5000)
    assert_texture(prepare_texture(data, 16)[0], 16)


# ---------------------------------------------------------------------------------------------------------
# memory

MEMORY_PROBE = r"""
import io, json, sys
from PIL import Image
from predistort.images import ImageError, load_image, prepare_texture

def status_mb(key):
    line = next(l for l in open("/proc/self/status") if l.startswith(key + ":"))
    return int(line.split()[1]) / 1024

def reset_peak():                    # Linux: writing 5 to clear_refs resets VmHWM (peak RSS) to the current RSS
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status_mb("VmRSS")

def rise_mb(base):                   # how far the peak rose above the RSS at the reset
    return status_mb("VmHWM") - base

big_png, big_jpeg = sys.argv[1], sys.argv[2]
warm = io.BytesIO(); Image.new("RGB", (300, 200)).save(warm, "JPEG")
prepare_texture(warm.getvalue(), 64)          # warm-up: plugins imported, first torch allocations done
out = {}
base = reset_peak()
try:
    load_image(big_png)
    out["refused"] = False
except ImageError:
    out["refused"] = True
out["png"] = rise_mb(base)
base = reset_peak()
texture, notes = prepare_texture(big_jpeg, 128)
out["jpeg"], out["notes"] = rise_mb(base), notes
del texture
base = reset_peak()
im = Image.open(big_jpeg); im.load()          # control: a full decode, which the probe must see
out["full_decode"] = rise_mb(base)
print(json.dumps(out))
"""


def test_peak_memory_of_huge_inputs(big_png, big_jpeg):
    """Bound: reading either file may raise the process's peak memory by at most 40 MB, against 144 MB for a
    full decode of the 12000×12000 PNG (432 MB as RGB) and 144 MB for the 8000×6000 JPEG. The same probe must see a full
    decode of that JPEG (> 100 MB), so a bound that holds is not a probe that sees nothing. Measured in a
    fresh process, with the kernel's peak-RSS counter reset before each step."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as e:
        pytest.skip(f"cannot reset the peak-RSS counter here ({e})")
    proc = run_python(["-c", MEMORY_PROBE, str(big_png), str(big_jpeg)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert m["refused"] is True
    assert m["png"] < 40, m
    assert m["jpeg"] < 40, m
    assert m["full_decode"] > 100, m
    assert m["notes"][0] == "downscaled from 8000×6000 to 500×375 while reading", m


def test_big_jpeg_is_downscaled_while_reading(big_jpeg):
    t, notes = prepare_texture(big_jpeg, 128, fit="resize")
    assert_texture(t, 128)
    assert notes == ["downscaled from 8000×6000 to 500×375 while reading",
                     "resized 500×375 to 128×128 (aspect ratio not kept)"]
    assert near(rgb255(t, 64, 10), RED, 12) and near(rgb255(t, 64, 117), BLUE, 12)


# ---------------------------------------------------------------------------------------------------------
# accepted, with a note for every change

def test_grayscale():
    im = Image.new("L", (32, 32), 77)
    t, notes = prepare_texture(png_bytes(im), 32, fit="exact")
    assert_texture(t, 32)
    assert notes == ["converted from grayscale"]
    assert rgb255(t, 5, 5) == (77, 77, 77)


def test_grayscale_alpha_on_white():
    im = Image.new("LA", (32, 32), (0, 0))              # black, fully transparent
    im.paste((40, 255), (8, 8, 24, 24))                 # an opaque dark square
    t, notes = prepare_texture(png_bytes(im), 32, fit="exact")
    assert_texture(t, 32)
    assert notes == ["transparent areas put on white", "converted from grayscale"]
    assert rgb255(t, 0, 0) == WHITE and rgb255(t, 16, 16) == (40, 40, 40)


def test_rgba_on_white():
    im = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (0, 0, 16, 32))          # left half opaque red
    im.paste((0, 0, 255, 128), (16, 0, 32, 32))         # right half half-transparent blue
    t, notes = prepare_texture(png_bytes(im), 32, fit="exact")
    assert_texture(t, 32)
    assert notes == ["transparent areas put on white"]
    assert rgb255(t, 5, 5) == RED
    assert near(rgb255(t, 5, 25), (127, 127, 255), 2)   # blue at alpha 1/2 over white


def test_opaque_rgba_needs_no_note():
    t, notes = prepare_texture(png_bytes(Image.new("RGBA", (32, 32), (10, 20, 30, 255))), 32, fit="exact")
    assert notes == [] and rgb255(t, 0, 0) == (10, 20, 30)


def test_palette():
    im = Image.new("P", (32, 32), 0)
    im.putpalette([200, 30, 10, 20, 90, 220] + [0] * 762)
    im.paste(1, (0, 16, 32, 32))
    t, notes = prepare_texture(png_bytes(im), 32, fit="exact")
    assert_texture(t, 32)
    assert notes == ["converted from palette colours"]
    assert rgb255(t, 0, 0) == (200, 30, 10) and rgb255(t, 31, 31) == (20, 90, 220)


def test_palette_with_transparency_on_white():
    im = Image.new("P", (32, 32), 0)
    im.putpalette([200, 30, 10, 20, 90, 220] + [0] * 762)
    im.paste(1, (0, 16, 32, 32))
    buf = io.BytesIO()
    im.save(buf, "GIF", transparency=0)
    t, notes = prepare_texture(buf.getvalue(), 32, fit="exact")
    assert "transparent areas put on white" in notes and "converted from palette colours" in notes
    assert rgb255(t, 0, 0) == WHITE and rgb255(t, 31, 31) == (20, 90, 220)


def test_16_bit_gray_png_is_scaled_not_clipped():
    ramp = np.round(np.linspace(0, 65535, 256)).astype(np.uint16)
    im = Image.fromarray(np.tile(ramp, (16, 1)))
    data = png_bytes(im)
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    t, notes = prepare_texture(data, 256, fit="resize")  # squashed 256×16 -> 256×256: the ramp runs along x
    assert_texture(t, 256)
    assert notes[:2] == ["16-bit image reduced to 8 bits", "converted from grayscale"]
    row = np.array([rgb255(t, 128, x)[0] for x in range(256)])
    assert row[0] == 0 and row[-1] == 255
    assert len(set(row.tolist())) > 200                 # clipping (Pillow's own I;16 -> L) leaves ~1 level
    assert rgb255(t, 128, 128)[0] == round(int(ramp[128]) * 255 / 65535)


def test_16_bit_rgb_png(tmp_path):
    # Pillow reads 48-bit RGB PNGs as 8-bit RGB by itself; the reduction must still be reported.
    ramp = np.round(np.linspace(0, 65535, 64)).astype(">u2")
    row = np.repeat(ramp[:, None], 3, axis=1).tobytes()
    path = write_png(tmp_path / "rgb16.png", 64, 64, color_type=2, depth=16, rows=lambda y: row)
    t, notes = prepare_texture(path, 64, fit="exact")
    assert_texture(t, 64)
    assert notes == ["16-bit image reduced to 8 bits"]
    assert rgb255(t, 0, 0) == (0, 0, 0) and rgb255(t, 0, 63) == WHITE


def test_cmyk_jpeg():
    buf = io.BytesIO()
    Image.new("CMYK", (48, 32), (0, 255, 255, 0)).save(buf, "JPEG", quality=95)
    assert Image.open(io.BytesIO(buf.getvalue())).mode == "CMYK"
    t, notes = prepare_texture(buf.getvalue(), 32)
    assert_texture(t, 32)
    assert notes[0].startswith("converted from CMYK") and "cropped 48×32 to the centre 32×32" in notes
    assert near(rgb255(t, 16, 16), RED, 8)


def exif_rotated_jpeg(path):
    """Stored 40 wide × 24 tall, blue with a red square at the stored top-left; EXIF orientation 6 says
    "rotate 90° clockwise to view", so the upright picture is 24 × 40 with the red square at its top-right."""
    im = Image.new("RGB", (40, 24), BLUE)
    im.paste(RED, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(path, quality=95, exif=exif.tobytes())
    return path


def test_exif_rotated_jpeg_is_upright(tmp_path):
    path = exif_rotated_jpeg(tmp_path / "phone.jpg")
    assert Image.open(path).size == (40, 24)
    im = load_image(path)
    assert im.mode == "RGB" and im.size == (24, 40)
    assert near(im.getpixel((24 - 5, 4)), RED, 30) and near(im.getpixel((4, 4)), BLUE, 30)
    t, notes = prepare_texture(path, 24, fit="resize")
    assert_texture(t, 24)
    assert notes == ["rotated upright from EXIF orientation 6", "resized 24×40 to 24×24 (aspect ratio not kept)"]
    assert near(rgb255(t, 2, 21), RED, 30) and near(rgb255(t, 2, 2), BLUE, 30)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(orientation):
    im = Image.fromarray(np.random.default_rng(orientation).integers(0, 256, (10, 16, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = png_bytes(im, exif=exif.tobytes())          # lossless, so the comparison can be exact
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    got = load_image(data)
    assert got.size == expected.size and np.array_equal(np.asarray(got), np.asarray(expected))
    assert (got.size == (10, 16)) == (orientation >= 5)


@pytest.mark.parametrize("fmt", ["GIF", "PNG"])
def test_animation_first_frame(fmt):
    frames = [Image.new("RGB", (40, 40), c) for c in (RED, GREEN, BLUE)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    t, notes = prepare_texture(buf.getvalue(), 40, fit="exact")
    assert_texture(t, 40)
    assert notes[0] == "used the first of 3 animation frames"
    assert rgb255(t, 20, 20) == RED


def test_float_tiff():
    ramp = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "TIFF")
    assert Image.open(io.BytesIO(buf.getvalue())).mode == "F"
    t, notes = prepare_texture(buf.getvalue(), 32, fit="exact")
    assert_texture(t, 32)
    assert notes == ["floating-point image converted to 8 bits", "converted from grayscale"]
    assert rgb255(t, 0, 0)[0] == 0 and rgb255(t, 0, 31)[0] == 255 and rgb255(t, 0, 16)[0] == round(16 / 31 * 255)


def test_float_tiff_outside_0_1_is_rescaled():
    buf = io.BytesIO()
    Image.fromarray(np.tile(np.linspace(-10, 1000, 32, dtype=np.float32), (32, 1))).save(buf, "TIFF")
    t, notes = prepare_texture(buf.getvalue(), 32, fit="exact")
    assert notes[0] == "floating-point values from -10 to 1000 rescaled to 0–1"
    assert rgb255(t, 0, 0)[0] == 0 and rgb255(t, 0, 31)[0] == 255


def test_black_and_white():
    im = Image.new("1", (32, 32), 0)
    im.paste(1, (0, 0, 16, 32))
    t, notes = prepare_texture(png_bytes(im), 32, fit="exact")
    assert notes == ["converted from black and white"]
    assert rgb255(t, 0, 0) == WHITE and rgb255(t, 0, 31) == (0, 0, 0)


def test_webp_and_bmp():
    for fmt in ("WEBP", "BMP"):
        buf = io.BytesIO()
        Image.new("RGB", (32, 32), (30, 160, 90)).save(buf, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        t, notes = prepare_texture(buf.getvalue(), 32, fit="exact")
        assert notes == [] and rgb255(t, 10, 10) == (30, 160, 90), fmt



def heic_bytes(rgb, orientation=None, focal=None):
    """HEIC bytes of upright `rgb`, lossless (RGB kept as RGB, 4:4:4: the pixels come back exact), stored turned
    with EXIF `orientation` 6 when asked (pillow-heif writes it as the file's rotation, as an iPhone does)."""
    picture, exif = Image.fromarray(rgb), Image.Exif()
    if orientation:
        picture = picture.transpose(Image.Transpose.ROTATE_90)
        exif[0x0112] = orientation
    if focal:
        exif.get_ifd(0x8769)[0xA405] = focal
    buf = io.BytesIO()
    picture.save(buf, "HEIF", quality=-1, chroma=444, matrix_coefficients=0, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("orientation", [None, 6])
def test_heic_reads_as_the_png_does(tmp_path, orientation):
    """An iPhone's HEIC: read upright, pixel for pixel the PNG of the same picture, from bytes and from a path."""
    rgb = np.random.default_rng(3).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    data = heic_bytes(rgb, orientation)
    assert Image.open(io.BytesIO(data)).format == "HEIF"
    path = tmp_path / "photo.HEIC"
    path.write_bytes(data)
    for source in (data, path):
        image = load_image(source)
        assert image.size == (40, 24) and np.array_equal(np.asarray(image), np.asarray(load_image(png_bytes(
            Image.fromarray(rgb)))))
    t, notes = prepare_texture(data, 24)
    assert notes == ["cropped 40×24 to the centre 24×24"]


def test_heic_over_the_pixel_cap_gets_the_sentence(monkeypatch):
    """The size is read from the HEIC's header and refused before anything is decoded."""
    data = heic_bytes(np.zeros((50, 100, 3), np.uint8))
    monkeypatch.setattr(images, "MAX_PIXELS", 4999)
    from pillow_heif.as_plugin import HeifImageFile
    decode, decoded = HeifImageFile.load, []
    monkeypatch.setattr(HeifImageFile, "load", lambda self: decoded.append(self) or decode(self))
    refused(data, "100×50", "megapixel limit", "Shrink it")
    assert not decoded
    monkeypatch.setattr(images, "MAX_PIXELS", 5000)
    load_image(data)
    assert decoded                                     # the probe sees a decode: the assertion above can fail


# ---------------------------------------------------------------------------------------------------------
# kinds of source

def test_every_kind_of_source_gives_the_same_texture(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(path)
    data = path.read_bytes()
    with open(path, "rb") as f:
        from_file, _ = prepare_texture(f, 20)
        assert not f.closed                             # the caller's file is the caller's to close
    sources = [path, str(path), data, bytearray(data), io.BytesIO(data), Image.open(path), Image.fromarray(rgb), rgb]
    expected, notes = prepare_texture(rgb, 20)
    assert notes == ["cropped 30×20 to the centre 20×20"]
    assert torch.equal(expected, torch.from_numpy(rgb[:, 5:25].astype(np.float32) / 255))
    for source in sources:
        t, n = prepare_texture(source, 20)
        assert torch.equal(t, expected) and n == notes, type(source)
    assert torch.equal(from_file, expected)


def test_numpy_arrays():
    gray16 = np.tile(np.round(np.linspace(0, 65535, 16)).astype(np.uint16), (16, 1))
    t, notes = prepare_texture(gray16, 16, fit="exact")
    assert notes == ["16-bit image reduced to 8 bits", "converted from grayscale"]
    assert rgb255(t, 0, 15) == WHITE and rgb255(t, 0, 0) == (0, 0, 0)

    f = np.full((16, 16, 3), 0.5, dtype=np.float64)
    t, notes = prepare_texture(f, 16, fit="exact")
    assert notes == ["floating-point image converted to 8 bits"] and rgb255(t, 3, 3) == (128, 128, 128)

    t, notes = prepare_texture(np.full((16, 16, 4), 255, dtype=np.int64), 16, fit="exact")
    assert notes == [] and rgb255(t, 0, 0) == WHITE

    with pytest.raises(ImageError, match="channels first"):
        prepare_texture(np.zeros((3, 16, 16), np.uint8), 16)
    with pytest.raises(ImageError, match="0–255"):
        prepare_texture(np.full((16, 16), 300, dtype=np.int32), 16)


def test_32_bit_integer_images():
    # Pillow's "I" mode (32-bit integers) holds 16-bit data in practice; any other range is rescaled.
    ramp = np.tile(np.round(np.linspace(0, 65535, 16)).astype(np.int32), (16, 1))
    t, notes = prepare_texture(Image.fromarray(ramp), 16, fit="exact")
    assert notes == ["16-bit image reduced to 8 bits", "converted from grayscale"]
    assert rgb255(t, 0, 0)[0] == 0 and rgb255(t, 0, 15)[0] == 255
    t, notes = prepare_texture(Image.fromarray(ramp - 100_000), 16, fit="exact")
    assert notes[0] == "integer values from -100000 to -34465 rescaled to 0–255"
    assert rgb255(t, 0, 0)[0] == 0 and rgb255(t, 0, 15)[0] == 255


def test_load_image_returns_upright_rgb():
    im = load_image(png_bytes(Image.new("LA", (50, 20), (90, 255))))
    assert isinstance(im, Image.Image) and im.mode == "RGB" and im.size == (50, 20)
    assert im.getpixel((0, 0)) == (90, 90, 90)


def test_unknown_source_type_is_a_programming_error():
    with pytest.raises(TypeError):
        load_image(12345)


# ---------------------------------------------------------------------------------------------------------
# fitting to the texture's square

def three_blocks():
    """90×30: red | green | blue, 30×30 each."""
    im = Image.new("RGB", (90, 30), RED)
    im.paste(GREEN, (30, 0, 60, 30))
    im.paste(BLUE, (60, 0, 90, 30))
    return png_bytes(im)


def test_crop_keeps_the_centre():
    t, notes = prepare_texture(three_blocks(), 30, fit="crop")
    assert notes == ["cropped 90×30 to the centre 30×30"]
    assert (t == torch.tensor([0.0, 1.0, 0.0])).all()   # only the green centre is left, unresized


def test_crop_then_resize():
    t, notes = prepare_texture(three_blocks(), 15, fit="crop")
    assert_texture(t, 15)
    assert notes == ["cropped 90×30 to the centre 30×30", "resized 30×30 to 15×15"]
    assert near(rgb255(t, 7, 0), GREEN, 2) and near(rgb255(t, 7, 14), GREEN, 2)


def test_resize_squashes():
    t, notes = prepare_texture(three_blocks(), 30, fit="resize")
    assert_texture(t, 30)
    assert notes == ["resized 90×30 to 30×30 (aspect ratio not kept)"]
    assert near(rgb255(t, 15, 3), RED, 2) and near(rgb255(t, 15, 15), GREEN, 2) and near(rgb255(t, 15, 26), BLUE, 2)


def test_exact_refuses_other_sizes():
    refused(three_blocks(), "90×30", "exactly 30×30", resolution=30, fit="exact")
    t, notes = prepare_texture(png_bytes(Image.new("RGB", (30, 30), RED)), 30, fit="exact")
    assert notes == [] and rgb255(t, 0, 0) == RED


def test_enlarging_is_reported():
    t, notes = prepare_texture(png_bytes(Image.new("RGB", (16, 16), RED)), 40)
    assert_texture(t, 40)
    assert notes == ["enlarged 16×16 to 40×40"]


def test_bad_arguments():
    data = png_bytes(Image.new("RGB", (16, 16)))
    with pytest.raises(ValueError, match="fit"):
        prepare_texture(data, 16, fit="stretch")
    with pytest.raises(ValueError, match="resolution"):
        prepare_texture(data, 0)
    assert not issubclass(TypeError, ImageError)        # programmer errors are not shown as image errors


# ---------------------------------------------------------------------------------------------------------
# output and metrics

def test_to_pil_and_save_png_round_trip(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    t = torch.from_numpy(rgb.astype(np.float32) / 255)
    assert np.array_equal(np.asarray(to_pil(t)), rgb)
    path = save_png(t, tmp_path / "out.png")
    assert np.array_equal(np.asarray(Image.open(path)), rgb)
    texture, notes = prepare_texture(path, 12, fit="crop")
    assert notes == ["cropped 20×12 to the centre 12×12"]
    assert torch.equal(texture, t[:, 4:16])


def test_to_pil_clips_and_rounds():
    t = torch.tensor([[[-0.5, 1.5, 100.4 / 255], [100.6 / 255, float("nan"), 1.0]]])
    assert np.asarray(to_pil(t)).tolist() == [[[0, 255, 100], [101, 0, 255]]]
    with pytest.raises(ValueError):
        to_pil(torch.zeros(4, 4))


def test_l1_and_psnr_known_values():
    a = torch.zeros(8, 8, 3)
    assert l1(a, torch.full_like(a, 0.5)) == pytest.approx(0.5)
    assert psnr(a, torch.full_like(a, 0.5)) == pytest.approx(10 * np.log10(4), abs=1e-9)   # 6.02 dB
    assert psnr(a, torch.full_like(a, 0.1)) == pytest.approx(20.0, abs=1e-6)
    assert psnr(a, a.clone()) == float("inf")
    b = a.clone()
    b[0, 0, 0] = 1.0
    assert l1(a, b) == pytest.approx(1 / 192)
    assert psnr(a, b) == pytest.approx(10 * np.log10(192))
    # both clip the images to the displayable [0, 1] first
    assert psnr(torch.full_like(a, -1.0), a) == float("inf")
    assert l1(torch.full_like(a, -1.0), a) == 0.0
    assert l1(torch.full_like(a, 2.0), torch.full_like(a, 0.25)) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        l1(a, torch.zeros(4, 4, 3))


def test_side_by_side():
    red = torch.zeros(16, 16, 3)
    red[..., 0] = 1
    red[0, 0] = torch.tensor([0.0, 1.0, 0.0])           # one green pixel in the corner
    blue = Image.new("RGB", (16, 16), BLUE)
    out = side_by_side([red, blue], ["a", "b"], scale=3)
    assert out.mode == "RGB"
    assert out.width == 2 * 48 + 3 * images.PAD         # short titles: each panel is its 48-pixel image
    px = np.asarray(out).reshape(-1, 3)
    count = lambda c: int((px == c).all(axis=1).sum())  # noqa: E731
    assert count(RED) == 48 * 48 - 9 and count(GREEN) == 9 and count(BLUE) == 48 * 48   # NEAREST, ×3
    assert out.getpixel((0, 0)) == WHITE and out.getpixel((out.width - 1, out.height - 1)) == WHITE
    dark = (px.max(axis=1) < 100).sum()                 # the titles' letters
    assert dark > 5

    with_sub = side_by_side([red, blue], ["a", "b"], ["L1 0.1145 · PSNR 17.2 dB", ""], scale=3)
    assert with_sub.height > out.height and with_sub.width > out.width   # the subtitle is wider than 48
    wide = side_by_side([red, blue], ["a much longer title than the image", "b"], scale=3)
    assert wide.width > out.width and wide.height == out.height
    assert side_by_side([red], ["a"], scale=1).width == max(16, 0) + 2 * images.PAD
    with pytest.raises(ValueError):
        side_by_side([red, blue], ["only one title"])


# ---------------------------------------------------------------------------------------------------------
# the example textures

EXAMPLES = REPO / "examples"


def test_examples_regenerate_byte_identical(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "make_examples.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    made = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(made) == 6 and made == sorted(p.name for p in EXAMPLES.glob("*.png"))
    for name in made:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name


@pytest.mark.parametrize("name", ["checker", "text", "rings", "bars", "landscape", "shapes"])
def test_examples_are_clean_textures(name):
    path = EXAMPLES / f"{name}.png"
    assert path.stat().st_size < 60_000
    t, notes = prepare_texture(path, 256, fit="exact")
    assert_texture(t, 256)
    assert notes == []
    assert float(t.std()) > 0.1                          # a picture, not a flat colour
    t, notes = prepare_texture(path, 128)
    assert notes == ["resized 256×256 to 128×128"]
