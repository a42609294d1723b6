"""Images in and out: turn anything a user uploads into a clean float texture, and back.

Strangers upload whatever they have: phone photos lying on their side, CMYK JPEGs from a print shop,
16-bit PNGs, transparent logos, animated GIFs, files cut short by a bad connection, a 1×1 pixel, a
"decompression bomb" that claims to be 100 000 × 100 000 pixels. This module accepts what it can, refuses
what it cannot with an :class:`ImageError` whose message says what is wrong and what to do, and never
changes a picture silently: :func:`prepare_texture` returns, with the texture, a plain-English note for
every transformation it made.

    load_image(source)                   -> upright 8-bit RGB PIL image
    prepare_texture(source, res, fit)    -> (float32 tensor [res, res, 3] in [0, 1], notes)
    to_pil(t), save_png(t, path)         tensor [H, W, 3] -> 8-bit image / PNG file
    l1(a, b), psnr(a, b)                 mean absolute error; peak signal-to-noise ratio in dB (peak 1.0)
    side_by_side(images, titles, ...)    a labelled comparison strip (comparison.png)

Texture values are the stored 8-bit values divided by 255, with no gamma conversion: the project treats
them as reflectance, as Mitsuba's tutorial does (``mi.Bitmap(...).convert(..., srgb_gamma=False)``).

Memory. Pillow opens files lazily: ``Image.open`` reads only the header (a HEIC's too: pillow-heif's plugin
reads the size from the container's boxes, libheif decodes nothing before ``load``). The size is checked there, before
any pixel is decoded; above :data:`MAX_PIXELS` the picture is refused. JPEGs are then decoded at 1/2, 1/4
or 1/8 scale when the texture needs no more (``Image.draft``: the decoder skips the fine DCT detail, so a
40-megapixel photo costs about as much as a 0.6-megapixel one). Other formats are decoded in full (at most
4 bytes a pixel: 200 MB at MAX_PIXELS, plus a copy or two while converting) and reduced by an integer factor
(``Image.reduce``) before the remaining conversions. :func:`load_image` alone keeps the full size.
Colour profiles (ICC) are not applied: pixel values are read as they are stored.
"""
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

try:                          # HEIF/HEIC (iPhones' photos): Pillow opens them through pillow-heif's plugin
    import pillow_heif
    pillow_heif.register_heif_opener(thumbnails=False)
except ImportError:           # without it "HEIF" is not in Image.OPEN and such a file is refused as unsupported
    pillow_heif = None

MIN_SIZE = 8                  # pixels on the shorter side: below this there is no picture to speak of
MAX_PIXELS = 50_000_000       # width × height read from the header; above it the file is refused, not decoded
FITS = ("crop", "resize", "exact")
# What we decode. An allow-list, not "anything Pillow knows": some Pillow formats hand the file to outside
# programs (EPS runs Ghostscript) and none of the exotic ones is worth that risk for uploads. MPO is how
# Pillow names camera JPEGs that carry a second, preview image. HEIF is an iPhone's HEIC (pillow-heif's plugin:
# libheif reads the header, the size included, without decoding, and applies the file's rotation itself).
FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF", "TIFF", "HEIF")
SUPPORTED = "PNG, JPEG, HEIC, WebP, BMP, GIF or TIFF"
REDUCING_GAP = 2              # cheap integer downscaling stops at twice the final size; LANCZOS does the rest

# EXIF orientation tag value -> the transpose that makes the picture upright (ImageOps.exif_transpose's table).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
           6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
_ORIENTATION_TAG = 0x0112


class ImageError(ValueError):
    """The picture cannot be used; the message says why and what to do, in words meant for the user."""


# -----------------------------------------------------------------------------------------------------
# loading

def load_image(source):
    """Load a picture as an upright 8-bit RGB PIL image.

    source: a path (str or os.PathLike), the file's bytes, a binary file-like object, a PIL image, or a
        numpy array H×W or H×W×C (C = 1, 2, 3, 4: gray, gray+alpha, RGB, RGBA) of uint8, uint16, bool,
        small integers (0–255) or floats (0–1; another range is rescaled from its minimum and maximum).
    Limits: at least MIN_SIZE pixels on each side, at most MAX_PIXELS pixels in all; formats PNG, JPEG,
        HEIC/HEIF, WebP, BMP, GIF, TIFF. Transparent areas are put on white, an animation gives its first frame,
        an EXIF orientation is applied (a HEIC's rotation by libheif while decoding: pillow-heif then reports
        orientation 1), 16-bit and float images are reduced to 8 bits (scaled, never clipped).
    The image keeps its full size (up to MAX_PIXELS); :func:`prepare_texture` also downscales while reading
    and reports what it did. A PIL image that is passed in may be moved to its first frame, nothing else.
    Raises ImageError for anything that cannot be used.
    """
    image, _ = _load(source)
    return image


def _load(source, min_side=None, exact=None):
    """load_image's work. Returns (RGB image, notes).

    min_side: if given, the picture may be downscaled while reading, by cheap integer factors, as long as
        its shorter side stays at least REDUCING_GAP × min_side.
    exact: if given, refuse (before decoding) any size other than exact × exact.
    """
    notes = []
    im, ours, owns_file = _open(source, notes)
    try:
        w, h = im.size
        _check_size(w, h)
        if exact is not None and (w, h) != (exact, exact):
            raise ImageError(f"This image is {w}×{h} pixels but must be exactly {exact}×{exact}.")

        bits16 = _stored_16_bit(im)                      # before loading, which empties im.tile
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # sizes are checked above
            try:
                # Animations and multi-page files: the first frame is the picture (n_frames comes from
                # the header for PNG/WebP; for GIF Pillow skips through the frames without decoding them).
                frames = getattr(im, "n_frames", 1)
                if frames > 1:
                    im.seek(0)
                    kind = "animation frames" if im.format in ("GIF", "PNG", "WEBP") else "images in the file"
                    notes.append(f"used the first of {frames} {kind}")
                # JPEG can decode at 1/2, 1/4 or 1/8 scale: ask for the smallest that keeps enough pixels.
                if ours and min_side and im.format in ("JPEG", "MPO"):
                    k = REDUCING_GAP * min_side / min(w, h)
                    if k < 1:
                        im.draft(None, (max(1, int(w * k + 0.999)), max(1, int(h * k + 0.999))))
                im.load()
            except MemoryError:
                raise ImageError("There is not enough memory to decode this image. Upload a smaller "
                                 "picture.") from None
            except Exception as e:  # Pillow's decoders raise OSError, SyntaxError, EOFError, ValueError...
                raise ImageError(f"This image file is damaged or incomplete ({_reason(e)}). It may have "
                                 f"been cut short while uploading or saving; save or export it again and "
                                 f"upload the new file.") from None
        orientation = exif_orientation(im)               # after load: a PNG may keep its EXIF after the pixels

        out = _to_basic_mode(im, notes, bits16)          # now L, LA, RGB or RGBA, 8 bits per channel
        if min_side:
            f = min(out.size) // (REDUCING_GAP * min_side)
            if f >= 2:
                out = out.reduce(f)                       # box filter: averages f×f blocks
        if out.size != (w, h):
            notes.append(f"downscaled from {w}×{h} to {out.width}×{out.height} while reading")
        out = _to_rgb(out, notes)
        # ImageOps.exif_transpose's table, applied here, last, to the smallest image. The tag was read from
        # the file itself: the conversions above keep no TIFF tags, so exif_transpose could not see it now.
        if orientation in UPRIGHT:
            out = out.transpose(UPRIGHT[orientation])
            verb = {3: "rotated", 6: "rotated", 8: "rotated", 2: "flipped", 4: "flipped"}.get(
                orientation, "rotated and flipped")
            notes.append(f"{verb} upright from EXIF orientation {orientation}")
        return out, notes
    finally:
        if owns_file:                                     # Image.close() also closes the file it reads
            im.close()


def _open(source, notes):
    """Open source lazily (header only). Returns (image, made here: free to change, its file ours to close).
    A caller's PIL image or file object is not ours: no draft mode set on the one, no closing of the other."""
    if source is None:
        raise ImageError("No picture was given. Upload a picture first.")
    if isinstance(source, Image.Image):
        return source, False, False
    if isinstance(source, np.ndarray):
        return _from_array(source, notes), True, False
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"There is no file at {path}. Check the path.")
        if not path.is_file():
            raise ImageError(f"{path} is a folder, not a picture. Give the path of an image file.")
        if path.stat().st_size == 0:
            raise ImageError(_EMPTY)
        fp = path
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError(_EMPTY)
        fp = io.BytesIO(source)
    elif hasattr(source, "read"):
        fp = source
        if _stream_size(fp) == 0:
            raise ImageError(_EMPTY)
    else:
        raise TypeError(f"cannot load an image from {type(source).__name__}: give a path, bytes, a file, "
                        f"a PIL image or a numpy array")

    Image.init()                                          # register Pillow's plugins (once; cheap after)
    formats = [f for f in FORMATS if f in Image.OPEN]     # WebP is missing from some Pillow builds
    with warnings.catch_warnings():
        # catch_warnings is process-wide in Python < 3.14; at worst a concurrent call lets Pillow's warning
        # print. Sizes between Pillow's warning and error limits are refused by our own check anyway.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(fp, formats=formats), True, fp is not source
        except Image.DecompressionBombError as e:
            raise ImageError(f"This image claims a size far too large to open safely ({_reason(e)}). The "
                             f"limit is {MAX_PIXELS / 1e6:g} megapixels; upload a smaller picture.") from None
        except Image.UnidentifiedImageError:
            raise ImageError(f"This file is not an image predistort can read (unknown or unsupported "
                             f"format). Upload a {SUPPORTED}.") from None
        except MemoryError:
            raise ImageError("There is not enough memory to open this image. Upload a smaller "
                             "picture.") from None
        except OSError as e:
            if isinstance(fp, Path):                       # unreadable file: permissions, I/O error
                raise ImageError(f"Cannot read {fp} ({_reason(e)}).") from None
            raise ImageError(f"This file is not an image predistort can read ({_reason(e)}). Upload a "
                             f"{SUPPORTED}.") from None
        except Exception as e:  # malformed headers raise SyntaxError, ValueError, struct.error, ...
            raise ImageError(f"This file is not an image predistort can read ({_reason(e)}). Upload a "
                             f"{SUPPORTED}.") from None


_EMPTY = "This file is empty (0 bytes). Upload the picture again: the transfer may have failed."


def _stream_size(fp):
    """Bytes in a file-like object, or None when it cannot seek (Pillow then reads it whole)."""
    try:
        pos = fp.tell()
        size = fp.seek(0, os.SEEK_END)
        fp.seek(pos)
        return size
    except (AttributeError, OSError, ValueError):
        return None


def _reason(e):
    """The short reason of a library exception, for the parentheses of a user message."""
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _check_size(w, h):
    if min(w, h) < MIN_SIZE:
        raise ImageError(f"This image is only {w}×{h} pixels: it needs at least {MIN_SIZE} pixels on each "
                         f"side. Upload a larger picture.")
    if w * h > MAX_PIXELS:
        k = (MAX_PIXELS / (w * h)) ** 0.5
        raise ImageError(f"This image is {w}×{h} ({w * h / 1e6:.1f} megapixels), more than the "
                         f"{MAX_PIXELS / 1e6:g} megapixel limit. Shrink it (to {int(w * k)}×{int(h * k)} "
                         f"or smaller) and upload it again.")


def exif_orientation(im):
    """The EXIF orientation (1..8; 1 = already upright). A broken EXIF block counts as upright."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if value in UPRIGHT else 1
    except Exception:
        return 1


def _stored_16_bit(im):
    """True if the file stores 16 bits per channel (Pillow reads 16-bit RGB(A)/LA PNGs as 8-bit modes,
    keeping the high byte; its tile's raw mode, e.g. "RGB;16B", still tells)."""
    if im.mode.startswith("I;16"):
        return True
    for tile in getattr(im, "tile", None) or []:
        args = tile[3] if len(tile) > 3 else None
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _from_array(a, notes):
    """A numpy array H×W[×C] as an 8-bit PIL image (L, LA, RGB or RGBA)."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (2, 3, 4))):
        hint = " (channels first? use a.transpose(1, 2, 0))" if a.ndim == 3 and a.shape[0] in (1, 3, 4) else ""
        raise ImageError(f"Expected an image array of shape H×W or H×W×C with C = 1, 2, 3 or 4, got shape "
                         f"{tuple(a.shape)}{hint}.")
    _check_size(a.shape[1], a.shape[0])
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = _16_to_8(a)
        notes.append("16-bit image reduced to 8 bits")
    elif np.issubdtype(a.dtype, np.floating):
        a = _float_to_8(a, notes)
    elif np.issubdtype(a.dtype, np.integer) and a.dtype != np.uint8:
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ImageError(f"Integer pixel values must lie in 0–255 (found {a.min()}–{a.max()}); use "
                             f"uint16 for 16-bit images or floats in 0–1.")
        a = a.astype(np.uint8)
    elif a.dtype != np.uint8:
        raise ImageError(f"Cannot read an image array of type {a.dtype}: use uint8, uint16 or float.")
    return Image.fromarray(np.ascontiguousarray(a))


def _16_to_8(a):
    """16-bit values 0..65535 to 8 bits 0..255, rounded (v·255/65535; Pillow's own I;16 -> L clips)."""
    return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _float_to_8(a, notes):
    """Float values to 8 bits: 0..1 is scaled by 255; any other range is rescaled from its min and max."""
    a = a.astype(np.float32)                              # ample precision for 8-bit output, half the memory
    bad = ~np.isfinite(a)
    if bad.any():
        notes.append(f"{int(bad.sum())} undefined (NaN or infinite) values set to 0")
        a = np.where(bad, np.float32(0), a)
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        notes.append(f"floating-point values from {lo:.4g} to {hi:.4g} rescaled to 0–1")
    notes.append("floating-point image converted to 8 bits")
    return np.rint(a * 255).astype(np.uint8)


def _to_basic_mode(im, notes, bits16):
    """Any decoded Pillow image as L, LA, RGB or RGBA with 8 bits per channel."""
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        if bits16:
            notes.append("16-bit image reduced to 8 bits")
        if mode in ("L", "RGB") and "transparency" in im.info:  # a tRNS colour key: one transparent colour
            return im.convert(mode + "A" if mode == "L" else "RGBA")
        return im
    if mode.startswith("I;16"):
        notes.append("16-bit image reduced to 8 bits")
        return Image.fromarray(_16_to_8(np.asarray(im)))
    if mode == "I":                                       # 32-bit integers, in practice 16-bit data
        a = np.asarray(im)
        lo, hi = int(a.min()), int(a.max())
        if lo >= 0 and hi <= 65535:
            notes.append("16-bit image reduced to 8 bits")
            return Image.fromarray(_16_to_8(a))
        notes.append(f"integer values from {lo} to {hi} rescaled to 0–255")
        return Image.fromarray(np.rint((a.astype(np.float64) - lo) * (255 / max(hi - lo, 1))).astype(np.uint8))
    if mode == "F":
        return Image.fromarray(_float_to_8(np.asarray(im), notes))
    if mode in ("P", "PA"):
        # The palette's colours are kept exactly; a transparent palette entry becomes alpha.
        notes.append("converted from palette colours")
        alpha = mode == "PA" or "transparency" in im.info
        return im.convert("RGBA" if alpha else "RGB")
    if mode == "1":
        notes.append("converted from black and white")
        return im.convert("RGB")
    if mode == "CMYK":
        notes.append("converted from CMYK (approximate colours: the file's colour profile is not applied)")
        return im.convert("RGB")
    try:                                                  # YCbCr, LAB, RGBX, La, RGBa, ...
        out = im.convert("RGBA" if mode.endswith(("A", "a")) else "RGB")
    except (ValueError, OSError) as e:
        raise ImageError(f"This image uses the colour mode {mode}, which predistort cannot convert "
                         f"({_reason(e)}). Save it as an 8-bit RGB {SUPPORTED}.") from None
    notes.append(f"converted from {mode} colours")
    return out


def _to_rgb(im, notes):
    """L, LA, RGB or RGBA -> RGB: transparent areas put on white, gray copied to the three channels.
    An alpha channel that is fully opaque everywhere changes nothing and is dropped without a note."""
    gray = im.mode in ("L", "LA")
    if im.mode in ("LA", "RGBA") and im.getchannel("A").getextrema()[0] < 255:
        # White, not black: a logo drawn on a transparent background is meant to be seen on paper.
        im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
        notes.append("transparent areas put on white")
    if gray:
        notes.append("converted from grayscale")
    return im.convert("RGB")                              # always a new image, detached from the file


# -----------------------------------------------------------------------------------------------------
# texture

def prepare_texture(source, resolution: int, fit: str = "crop"):
    """Load a picture as a square texture. Returns (texture, notes).

    source: anything :func:`load_image` accepts.
    resolution: the side of the square texture, in pixels (the scene's resolution).
    fit: how a picture of another size becomes resolution × resolution:
        "crop"   cut the largest centred square, then resize it (LANCZOS); nothing is squashed;
        "resize" resize the whole picture to the square (LANCZOS); a non-square picture is squashed;
        "exact"  refuse (ImageError) any size other than resolution × resolution.
    texture: float32 CPU tensor [resolution, resolution, 3], values in [0, 1] = 8-bit value / 255 (no gamma).
    notes: plain-English notes, one for every transformation made (empty if none), e.g.
        "cropped 640×427 to the centre 427×427", "resized 427×427 to 128×128".
    Raises ImageError for unusable pictures, ValueError for a bad resolution or fit.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, not {fit!r}")
    if not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, not {resolution!r}")
    image, notes = _load(source, min_side=None if fit == "exact" else resolution,
                         exact=resolution if fit == "exact" else None)
    w, h = image.size
    r = resolution
    if fit == "crop" and w != h:
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        notes.append(f"cropped {w}×{h} to the centre {s}×{s}")
        # Crop first, then resize: resize(box=...) would let LANCZOS reach past the box into the cut-off
        # parts, a thin stripe of them bleeding in at the edges.
        image = image.crop(box)
        if s != r:
            image = image.resize((r, r), Image.Resampling.LANCZOS)
            notes.append(f"{'resized' if s > r else 'enlarged'} {s}×{s} to {r}×{r}")
    elif (w, h) != (r, r):                                # "exact" never gets here: _load refused it
        image = image.resize((r, r), Image.Resampling.LANCZOS)
        squash = " (aspect ratio not kept)" if w != h else ""
        notes.append(f"{'resized' if w * h > r * r else 'enlarged'} {w}×{h} to {r}×{r}{squash}")
    texture = torch.from_numpy(np.array(image, dtype=np.uint8)).to(torch.float32).div_(255)
    return texture, notes


# -----------------------------------------------------------------------------------------------------
# output

def to_pil(t):
    """A tensor [H, W, 3] (any device, float) as an 8-bit RGB PIL image: clipped to [0, 1], rounded."""
    if not (t.ndim == 3 and t.shape[2] == 3):
        raise ValueError(f"expected an image tensor [H, W, 3], got shape {tuple(t.shape)}")
    t = torch.nan_to_num(t.detach().to("cpu", torch.float32), nan=0.0)
    a = t.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return Image.fromarray(a)


def save_png(t, path):
    """Save a tensor [H, W, 3] in [0, 1] as an 8-bit RGB PNG. Returns the path."""
    to_pil(t).save(path, format="PNG")
    return Path(path)


# -----------------------------------------------------------------------------------------------------
# metrics

def _pair(a, b):
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64)


def l1(a, b) -> float:
    """Mean absolute error between two images of the same shape (e.g. [H, W, 3]), both clipped to the
    displayable [0, 1] first (as :func:`psnr`); lower is better."""
    a, b = _pair(a, b)
    return (a.clamp(0, 1) - b.clamp(0, 1)).abs().mean().item()


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB, peak 1.0, both images clipped to [0, 1] first; higher is better.
    Returns float('inf') for identical images."""
    a, b = _pair(a, b)
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).square().mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


# -----------------------------------------------------------------------------------------------------
# comparison figure

PAD = 10                      # pixels around and between panels
TITLE_SIZE = 16               # font sizes in pixels (Pillow's bundled default font, scalable)
SUBTITLE_SIZE = 14


def side_by_side(images, titles, subtitles=None, scale: int = 2):
    """A comparison strip: the images in a row on white, each with a title above and a subtitle below.

    images: tensors [H, W, 3] in [0, 1] or PIL images; sizes may differ (panels are top-aligned).
    titles: one per image. subtitles: one per image (e.g. "L1 0.1145 · PSNR 17.2 dB"; "" for none) or None.
    scale: integer upscaling of every image, NEAREST so that pixels stay visible as pixels.
    Each panel is as wide as its scaled image or its longest text, whichever is wider. Returns an RGB image.
    """
    if not images or len(titles) != len(images):
        raise ValueError("side_by_side needs at least one image and exactly one title per image")
    subtitles = list(subtitles) if subtitles is not None else [""] * len(images)
    if len(subtitles) != len(images):
        raise ValueError("side_by_side needs exactly one subtitle per image (or None)")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, not {scale!r}")

    title_font = ImageFont.load_default(size=TITLE_SIZE)
    sub_font = ImageFont.load_default(size=SUBTITLE_SIZE)
    title_h = _text_height(title_font)
    sub_h = _text_height(sub_font) if any(subtitles) else 0

    panels = []
    for im in images:
        im = im if isinstance(im, Image.Image) else to_pil(im)
        im = im.convert("RGB")
        panels.append(im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST))
    widths = [max(p.width, _text_width(title_font, t), _text_width(sub_font, s))
              for p, t, s in zip(panels, titles, subtitles)]
    image_h = max(p.height for p in panels)
    width = sum(widths) + PAD * (len(panels) + 1)
    height = PAD + title_h + PAD // 2 + image_h + (PAD // 2 + sub_h if sub_h else 0) + PAD

    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x = PAD
    for panel, w, title, sub in zip(panels, widths, titles, subtitles):
        cx = x + w // 2
        draw.text((cx, PAD), title, fill="black", font=title_font, anchor="mt")
        y = PAD + title_h + PAD // 2
        canvas.paste(panel, (cx - panel.width // 2, y))
        if sub:
            draw.text((cx, y + image_h + PAD // 2), sub, fill=(60, 60, 60), font=sub_font, anchor="mt")
        x += w + PAD
    return canvas


def _text_width(font, text):
    return int(np.ceil(font.getlength(text))) if text else 0


def _text_height(font):
    # From the top of the tallest letters to the bottom of descenders, the same for every title in a row.
    left, top, right, bottom = font.getbbox("ÁHgjy·")
    return bottom
