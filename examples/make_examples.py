"""Draw the example textures: six 256×256 RGB PNGs, made here from Pillow shapes and seeded noise.

    python examples/make_examples.py [OUT_DIR]      # OUT_DIR defaults to this folder

Deterministic: no clock, no unseeded randomness, Pillow's bundled font; running it again writes the same
bytes (with the same Pillow and zlib). Each picture stresses the pre-distortion differently: straight
edges (checker), fine detail that must stay legible (text), radial structure centred on the sphere (rings),
flat saturated colours (bars), a photo-like scene (landscape), random shapes (shapes).
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = 256
SEED = 2024


def checker():
    """An 8×8 checkerboard with a coloured dot in each corner, so that flips and rotations show."""
    im = Image.new("RGB", (SIZE, SIZE), (235, 232, 220))
    d = ImageDraw.Draw(im)
    n = 8
    s = SIZE // n
    for i in range(n):
        for j in range(n):
            if (i + j) % 2:
                d.rectangle([j * s, i * s, (j + 1) * s - 1, (i + 1) * s - 1], fill=(35, 40, 60))
    for (cx, cy), colour in zip([(0, 0), (n - 1, 0), (0, n - 1), (n - 1, n - 1)],
                                [(220, 40, 40), (40, 170, 60), (40, 90, 220), (240, 200, 30)]):
        x, y = cx * s + s // 2, cy * s + s // 2
        d.ellipse([x - 10, y - 10, x + 10, y + 10], fill=colour)
    return im


def text():
    """The word "predistort" and a short line, black on white: distortion shows first in letters."""
    im = Image.new("RGB", (SIZE, SIZE), "white")
    d = ImageDraw.Draw(im)
    big = ImageFont.load_default(size=46)
    small = ImageFont.load_default(size=19)
    d.text((SIZE // 2, 92), "predistort", fill=(20, 20, 20), font=big, anchor="mm")
    d.text((SIZE // 2, 150), "seen through a glass sphere", fill=(40, 40, 140), font=small, anchor="mm")
    d.text((SIZE // 2, 180), "ABC xyz 0123456789", fill=(140, 30, 30), font=small, anchor="mm")
    d.line([(24, 120), (SIZE - 24, 120)], fill=(20, 20, 20), width=3)
    return im


def rings():
    """Concentric rings in alternating colours, crossed by twelve spokes."""
    im = Image.new("RGB", (SIZE, SIZE), "white")
    d = ImageDraw.Draw(im)
    c = SIZE / 2
    colours = [(200, 40, 50), (250, 240, 230), (30, 60, 150), (250, 240, 230)]
    for k, r in enumerate(range(int(c * 1.42), 0, -12)):         # largest first, so smaller ones sit on top
        d.ellipse([c - r, c - r, c + r, c + r], fill=colours[k % len(colours)])
    for a in np.arange(12) * np.pi / 6:
        d.line([(c, c), (c + 190 * np.cos(a), c + 190 * np.sin(a))], fill=(20, 20, 20), width=2)
    return im


def bars():
    """Eight saturated colour bars above a gray ramp from black to white."""
    im = Image.new("RGB", (SIZE, SIZE), "black")
    d = ImageDraw.Draw(im)
    colours = [(255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0),
               (255, 0, 255), (255, 0, 0), (0, 0, 255), (0, 0, 0)]
    w = SIZE // len(colours)
    for i, colour in enumerate(colours):
        d.rectangle([i * w, 0, (i + 1) * w - 1, 175], fill=colour)
    ramp = np.repeat(np.linspace(0, 255, SIZE).round().astype(np.uint8)[None, :], SIZE - 184, axis=0)
    im.paste(Image.fromarray(ramp).convert("RGB"), (0, 184))
    return im


def smooth_noise(rng, size, cells):
    """Value noise in [0, 1]: a coarse random grid smoothly (bicubic) enlarged to size × size."""
    coarse = (rng.random((cells, cells)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)) / 255.0


def landscape(rng):
    """A photo-like scene: sky gradient with soft clouds, a sun, two rows of hills, a house and a tree."""
    y = np.linspace(0, 1, SIZE)[:, None, None]
    sky = (1 - y) * np.array([70, 130, 210]) + y * np.array([190, 220, 245])
    clouds = np.clip(smooth_noise(rng, SIZE, 6) * 1.6 - 0.8, 0, 1)[:, :, None]
    sky = sky * (1 - clouds) + 250 * clouds
    im = Image.fromarray(np.broadcast_to(sky, (SIZE, SIZE, 3)).round().astype(np.uint8))
    d = ImageDraw.Draw(im)
    d.ellipse([178, 28, 222, 72], fill=(255, 220, 90))

    x = np.arange(SIZE)
    grass = smooth_noise(rng, SIZE, 16)[:, :, None] * 40 - 20    # darker and lighter patches
    for base, amp, phase, colour in [(150, 18, 0.6, (90, 150, 80)), (185, 14, 2.1, (60, 120, 50))]:
        ridge = base - amp * np.sin(x / SIZE * 2 * np.pi * 1.3 + phase)
        mask = np.arange(SIZE)[:, None] >= ridge[None, :]
        a = np.asarray(im).astype(np.float64)
        hill = np.clip(np.array(colour) + grass, 0, 255)
        a[mask] = hill[mask]
        im = Image.fromarray(a.round().astype(np.uint8))
        d = ImageDraw.Draw(im)

    d.rectangle([60, 170, 120, 220], fill=(200, 170, 130), outline=(90, 60, 40))   # house
    d.polygon([(52, 172), (90, 140), (128, 172)], fill=(160, 50, 40))              # roof
    d.rectangle([82, 192, 98, 220], fill=(100, 60, 35))                             # door
    d.rectangle([66, 180, 78, 192], fill=(170, 210, 240), outline=(90, 60, 40))     # window
    d.rectangle([104, 180, 116, 192], fill=(170, 210, 240), outline=(90, 60, 40))
    d.rectangle([181, 175, 189, 215], fill=(110, 75, 45))                           # tree
    d.ellipse([160, 135, 210, 185], fill=(45, 110, 45))
    return im


def shapes(rng):
    """Forty random circles, boxes and triangles in random colours on a pale background."""
    im = Image.new("RGB", (SIZE, SIZE), (245, 242, 235))
    d = ImageDraw.Draw(im)
    for _ in range(40):
        kind = rng.integers(3)
        x, y = rng.integers(0, SIZE, 2)
        r = int(rng.integers(8, 36))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if kind == 0:
            d.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        elif kind == 1:
            d.rectangle([x - r, y - r // 2, x + r, y + r // 2], fill=colour)
        else:
            d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
    return im


def main(out_dir=None):
    out = Path(out_dir) if out_dir else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)                 # one seeded stream, consumed in a fixed order
    images = {"checker": checker(), "text": text(), "rings": rings(), "bars": bars(),
              "landscape": landscape(rng), "shapes": shapes(rng)}
    for name, im in images.items():
        assert im.size == (SIZE, SIZE) and im.mode == "RGB", name
        im.save(out / f"{name}.png", optimize=True)
        print(out / f"{name}.png")
    return sorted(out / f"{name}.png" for name in images)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
