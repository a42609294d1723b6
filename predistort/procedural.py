"""Procedural training images: seeded, varied, and never a photograph.

A model that pre-distorts *any* picture must learn the distortion, not the pictures. So it trains on images
drawn from simple random processes that together cover what photographs contain — smooth shading, sharp
edges at every orientation, fine periodic detail, text, flat regions near black and white — while no
photograph (the test set of :mod:`bench.datasets`) is ever among them.

Kinds (:data:`KINDS`), each a function ``(rng, resolution) -> float32 array [R, R, 3] in [0, 1]``:

    noise        fractal value noise, octaves summed with a 1/f amplitude falloff (natural images' spectrum)
    stripes      a sinusoidal or square-wave grating at a random angle and frequency, two random colours
    checkers     a rotated checkerboard of random cell size, two random colours
    glyphs       random letters and digits of random size and colour on a plain or noisy ground
    gradient     a linear or radial colour ramp
    blobs        soft Gaussian blobs of random colour, size and anisotropy
    dead_leaves  overlapping random discs and rectangles, near to far (the "dead leaves" model of natural images)
    mix          two kinds blended through a random soft mask

Determinism: ``texture(seed, resolution, kind)`` depends on its arguments only (numpy's PCG64 seeded with
``seed`` and the kind's index). Limits: square images only, ``resolution`` from 8 to 2048.
"""
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789&?!#%@"


# -- helpers -------------------------------------------------------------------------------------------------
def _grid(res):
    """Pixel-centre coordinates in [0,1): (y, x), each [R, R]."""
    c = (np.arange(res) + 0.5) / res
    return np.meshgrid(c, c, indexing="ij")


def _colour(rng):
    """A random RGB colour; a quarter of them near-grey, so that luminance-only contrast is covered too."""
    c = rng.random(3)
    if rng.random() < 0.25:
        c = np.full(3, c.mean())
    return c


def _two_colours(rng):
    """Two colours with clearly different luminance (an edge between them is visible)."""
    a, b = _colour(rng), _colour(rng)
    while abs(a.mean() - b.mean()) < 0.25:
        b = _colour(rng)
    return a, b


def _upsample(small, res):
    """Bicubic upsampling of a small [h, w] array to [res, res] (smooth value noise)."""
    im = Image.fromarray(small.astype(np.float32), mode="F")
    return np.asarray(im.resize((res, res), Image.BICUBIC), dtype=np.float32)


def _rotate(y, x, angle):
    """Coordinates rotated by `angle` (radians) around the image centre."""
    c, s = np.cos(angle), np.sin(angle)
    y, x = y - 0.5, x - 0.5
    return c * y - s * x, s * y + c * x


# -- kinds ---------------------------------------------------------------------------------------------------
def noise(rng, res):
    """Fractal value noise: octaves of random grids 2, 4, 8, ... cells wide, amplitude ~ 1/frequency^beta."""
    beta = rng.uniform(0.6, 1.4)
    channels = []
    shared = rng.random() < 0.5           # colour noise, or one luminance pattern tinted by two colours
    for _ in range(1 if shared else 3):
        img, cells = np.zeros((res, res), np.float32), 2
        while cells <= res:
            img += _upsample(rng.standard_normal((cells, cells)), res) / cells ** beta
            cells *= 2
        img = (img - img.mean()) / (img.std() + 1e-8)
        channels.append(1 / (1 + np.exp(-rng.uniform(1.0, 3.0) * img)))   # squash to (0,1), random contrast
    if shared:
        a, b = _two_colours(rng)
        return channels[0][..., None] * a + (1 - channels[0][..., None]) * b
    return np.stack(channels, -1)


def stripes(rng, res):
    """A grating: sinusoidal or square wave, 2 to res/3 periods across, any angle, two colours."""
    y, x = _grid(res)
    u, _ = _rotate(y, x, rng.uniform(0, np.pi))
    periods = np.exp(rng.uniform(np.log(2), np.log(res / 3)))
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * periods * u + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.5:
        wave = (wave > rng.uniform(0.3, 0.7)).astype(np.float32)
    a, b = _two_colours(rng)
    return wave[..., None] * a + (1 - wave[..., None]) * b


def checkers(rng, res):
    """A checkerboard rotated by a random angle, 2 to res/4 cells across."""
    y, x = _grid(res)
    u, v = _rotate(y, x, rng.uniform(0, np.pi / 2) if rng.random() < 0.6 else 0.0)
    cells = np.exp(rng.uniform(np.log(2), np.log(res / 4)))
    board = ((np.floor(u * cells) + np.floor(v * cells)) % 2).astype(np.float32)
    a, b = _two_colours(rng)
    return board[..., None] * a + (1 - board[..., None]) * b


def glyphs(rng, res):
    """Lines of random letters and digits (text-like strokes of every orientation), random sizes and colours."""
    a, b = _two_colours(rng)
    im = Image.new("RGB", (res, res), tuple(int(255 * v) for v in b))
    draw = ImageDraw.Draw(im)
    size = int(np.clip(np.exp(rng.uniform(np.log(res / 16), np.log(res / 2.5))), 6, res))
    font = ImageFont.load_default(size=size)
    y = rng.uniform(-0.3, 0.1) * size
    while y < res:
        line = "".join(rng.choice(list(GLYPHS), size=int(res / size * 1.6) + 2))
        colour = a if rng.random() < 0.7 else _colour(rng)
        draw.text((rng.uniform(-size, 0), y), line, fill=tuple(int(255 * v) for v in colour), font=font)
        y += size * rng.uniform(0.9, 1.4)
    return np.asarray(im, dtype=np.float32) / 255.0


def gradient(rng, res):
    """A linear (random direction) or radial (random centre) ramp between two or three colours."""
    y, x = _grid(res)
    if rng.random() < 0.5:
        u, _ = _rotate(y, x, rng.uniform(0, 2 * np.pi))
        t = u + 0.5
    else:
        cy, cx = rng.uniform(0, 1, 2)
        t = np.sqrt((y - cy) ** 2 + (x - cx) ** 2) / rng.uniform(0.3, 1.0)
    t = np.clip(t, 0, 1)[..., None]
    a, b = _two_colours(rng)
    out = (1 - t) * a + t * b
    if rng.random() < 0.4:                     # a third colour in the middle
        out = out + (1 - np.abs(2 * t - 1)) * (_colour(rng) - 0.5 * (a + b))
    return out


def blobs(rng, res):
    """Soft anisotropic Gaussian blobs of random colour on a random background."""
    y, x = _grid(res)
    out = np.broadcast_to(_colour(rng), (res, res, 3)).copy()
    for _ in range(rng.integers(3, 25)):
        cy, cx = rng.uniform(-0.1, 1.1, 2)
        sy, sx = np.exp(rng.uniform(np.log(0.02), np.log(0.3), 2))
        u, v = _rotate(y - cy + 0.5, x - cx + 0.5, rng.uniform(0, np.pi))
        w = np.exp(-0.5 * ((u / sy) ** 2 + (v / sx) ** 2))[..., None] * rng.uniform(0.5, 1.0)
        out = (1 - w) * out + w * _colour(rng)
    return out


def dead_leaves(rng, res):
    """Opaque discs and rectangles dropped one over another, sizes ~ power law: piecewise-flat, edges at all scales."""
    im = Image.new("RGB", (res, res), tuple(int(255 * v) for v in _colour(rng)))
    draw = ImageDraw.Draw(im)
    for _ in range(rng.integers(30, 200)):
        r = res * np.exp(rng.uniform(np.log(0.01), np.log(0.25)))
        cy, cx = rng.uniform(-0.1, 1.1, 2) * res
        fill = tuple(int(255 * v) for v in _colour(rng))
        if rng.random() < 0.6:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.rectangle([cx - r, cy - r * rng.uniform(0.3, 1.5), cx + r, cy + r], fill=fill)
    return np.asarray(im, dtype=np.float32) / 255.0


def mix(rng, res):
    """Two other kinds blended through a soft random mask (noise thresholded): textures with regions."""
    first, second = rng.choice(len(BASE_KINDS), size=2, replace=False)
    a = BASE_KINDS[list(BASE_KINDS)[first]](rng, res)
    b = BASE_KINDS[list(BASE_KINDS)[second]](rng, res)
    mask = _upsample(rng.standard_normal((4, 4)), res)
    mask = 1 / (1 + np.exp(-rng.uniform(3, 30) * mask))[..., None]
    return mask * a + (1 - mask) * b


BASE_KINDS = {"noise": noise, "stripes": stripes, "checkers": checkers, "glyphs": glyphs,
              "gradient": gradient, "blobs": blobs, "dead_leaves": dead_leaves}
KINDS = {**BASE_KINDS, "mix": mix}


# -- public API ----------------------------------------------------------------------------------------------
def texture(seed, resolution=128, kind=None):
    """One procedural image as a float32 tensor ``[resolution, resolution, 3]`` in [0, 1].

    Parameters: ``seed`` any non-negative int (the same seed gives the same image); ``kind`` a name in
    :data:`KINDS`, or None to pick one from the seed (every kind equally likely).
    """
    if not 8 <= int(resolution) <= 2048:
        raise ValueError(f"resolution must be from 8 to 2048, got {resolution}")
    names = list(KINDS)
    if kind is None:
        kind = names[np.random.default_rng([int(seed), 7919]).integers(len(names))]
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(names)}")
    rng = np.random.default_rng([int(seed), names.index(kind)])
    image = KINDS[kind](rng, int(resolution))
    return torch.from_numpy(np.ascontiguousarray(np.clip(image, 0, 1), dtype=np.float32))


def dataset(count, resolution=128, seed=0):
    """`count` procedural images, kinds in rotation (every kind equally often), seeds ``seed, seed+1, ...``."""
    names = list(KINDS)
    return [texture(seed + i, resolution, names[i % len(names)]) for i in range(count)]
