"""How a photo's pixels were encoded: the sRGB curve both ways, and its JPEG's tables, to repeat what the JPEG did.

    srgb_to_linear(x), linear_to_srgb(x)   the sRGB curve (arrays in [0, 1])
    linear_8bit(codes)                     8-bit sRGB codes → float32 linear light (one table for every reader)
    jpeg_encoding(source)                  a JPEG file's quantisation tables, chroma subsampling and EXIF
                                           orientation, or None for any other file
    jpeg_round_trip(rgb, encoding)         upright uint8 pixels as they come back from a JPEG with that encoding

A phone's JPEG is not noise: where a colour bends into its clip, a block loses the cosines that drew the bend,
and the decoded mean, turned back into linear light through the convex sRGB curve, is biased. The photo's fit
(:meth:`predistort.photofit.Model.jpeg_bias`) repeats the file's own compression on its prediction to take
that bias off.
"""
import io
import os

import numpy as np
from PIL import Image, JpegImagePlugin

from .images import UPRIGHT, exif_orientation

# The transpose that undoes each of UPRIGHT's: a quarter turn is undone by the other one, the rest by themselves.
_STORED = {Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90}


def srgb_to_linear(x):
    """sRGB-encoded values in [0, 1] → linear light."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x):
    """Linear light in [0, 1] → sRGB-encoded values."""
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


_LINEAR_8BIT = srgb_to_linear(np.arange(256) / 255).astype(np.float32)


def linear_8bit(codes):
    """uint8 sRGB `codes` (any shape) → float32 linear light, by a table of the 256 codes: the photo as the fit
    reads it, and the prediction's JPEG as :meth:`predistort.photofit.Model.jpeg_bias` reads it, the same."""
    return _LINEAR_8BIT[codes]


def jpeg_encoding(source):
    """How the JPEG file `source` (a path, bytes or PIL image) was compressed: ``{"qtables", "subsampling",
    "orientation"}`` (Pillow's quantisation tables, its chroma subsampling code, -1 when unknown, and the EXIF
    orientation, 1..8), or None for any other format, or a file that cannot be read (only its header is)."""
    try:
        if isinstance(source, Image.Image):
            return _encoding(source)
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = io.BytesIO(bytes(source))
        elif not isinstance(source, (str, os.PathLike)):
            return None
        with Image.open(source, formats=["JPEG", "MPO"]) as im:
            return _encoding(im)
    except Exception:                  # not a JPEG, or unreadable: images.load_image says what is wrong with it
        return None


def _encoding(im):
    if im.format not in ("JPEG", "MPO") or not getattr(im, "quantization", None):
        return None
    return {"qtables": dict(im.quantization), "subsampling": JpegImagePlugin.get_sampling(im),
            "orientation": exif_orientation(im)}


def jpeg_round_trip(rgb, encoding):
    """`rgb` [H, W, 3] uint8, upright, as it comes back from being saved as a JPEG with `encoding`
    (:func:`jpeg_encoding`'s) and read again upright: turned as the file stores it first, so that the 8 × 8
    blocks (16 × 16 with chroma subsampling) fall where the file's did."""
    image = Image.fromarray(np.ascontiguousarray(rgb))
    upright = UPRIGHT.get(encoding["orientation"])
    if upright is not None:
        image = image.transpose(_STORED.get(upright, upright))
    options = {"qtables": encoding["qtables"]}
    if encoding["subsampling"] >= 0:
        options["subsampling"] = encoding["subsampling"]
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    out = Image.open(buffer).convert("RGB")
    if upright is not None:
        out = out.transpose(upright)
    return np.asarray(out)
