"""What takes an envelope photo's fit off the truth: the same true setup photographed five ways, each fitted.

    python bench/envelope_sources.py --photo 1 [--photo 3] [--family "100 mm"] [--size 640x480] [--seeds 12] \
        [--way png ...] [--out bench/results/envelope_sources.md]

The true setup is ``bench/chart_envelope.py``'s photo k of the family (drawn with seed 1000 + k), rendered by
``predistort.trace`` as there. Its linear radiance is made into a photo five ways:

- ``png``: sRGB, 8 bits, no noise, a PNG (what the fit's optics and 8 bits alone leave);
- ``png-noise``: the bench's shot and read noise (``bench/cycles.py``'s ``phone``), a PNG;
- ``jpeg-444``: that, saved as JPEG 80 without chroma subsampling;
- ``jpeg``: that, saved as JPEG 80 as phones and Pillow save it (4:2:0): ``bench/chart_envelope.py``'s photo;
- ``jpeg-unbiased``: that photo with the JPEG's expected bias taken off its linear light, at the work size and
  at full size: E[JPEG] − E[no JPEG] over ``--seeds`` noise seeds (an oracle: it knows the radiance and the
  noise; no fit could).

Each is calibrated against the family's nominal scene with the focal length EXIF would state (whole mm); the
camera, ball (mm) and IOR errors against the truth are reported. Limits: one noise seed per photo (the fit's
spread over seeds is not measured here); the trace's optics.
"""
import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import calibrate_phone  # noqa: E402  (bench/calibrate_phone.py)
from chart_envelope import FAMILIES, AtSize, draw, errors, nominal_for  # noqa: E402
from cycles import phone_codes  # noqa: E402  (bench/cycles.py)
from predistort import calibrate as calib, chart  # noqa: E402

WAYS = ("png", "png-noise", "jpeg-444", "jpeg", "jpeg-unbiased")


def saved(rgb, subsampling=None):
    """`rgb` as file bytes: a PNG (`subsampling` None) or a JPEG 80 with that chroma subsampling (-1: Pillow's)."""
    buffer = io.BytesIO()
    if subsampling is None:
        Image.fromarray(rgb).save(buffer, format="PNG")
    else:
        options = {} if subsampling < 0 else {"subsampling": subsampling}
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=80, **options)
    return buffer.getvalue()


def jpeg_bias(linear, exposure, seeds):
    """(work size, full size) E[JPEG] − E[no JPEG] of the photo's linear light over `seeds` noise seeds."""
    def read(data):
        photo = calib.read_photo(data)
        return photo.linear, photo.linear_full.astype(np.float64)
    through = [read(saved(phone_codes(linear, exposure, seed=1000 + s), -1)) for s in range(seeds)]
    without = [read(saved(phone_codes(linear, exposure, seed=1000 + s))) for s in range(seeds)]
    return tuple(np.mean([t[i] for t in through], 0) - np.mean([w[i] for w in without], 0) for i in range(2))


def fitted(nominal, true, data, focal_mm, bias=None):
    """`data` calibrated against `nominal` (with `bias` taken off its linear light): errors against `true`."""
    read_photo = calib.read_photo
    if bias is not None:
        def unbiased(source, focal=None):
            photo = read_photo(source, focal)
            photo.linear = photo.linear - bias[0]
            photo.linear_full = (photo.linear_full - bias[1]).astype(np.float32)
            return photo
        calib.read_photo = unbiased
    start = time.perf_counter()
    try:
        fit = calib.calibrate(nominal, data, focal_mm=focal_mm)
    except calib.CalibrationError as e:
        return f"refused: {e}"
    finally:
        calib.read_photo = read_photo
    camera, ball, ior, right = errors(fit.scene, true)
    return (f"{camera:.2f} / {ball:.2f}, {ior:.4f}{' (within)' if right else ''} "
            f"({time.perf_counter() - start:.0f} s{', warned' if fit.warnings else ''})")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photo", type=int, action="append", help="chart_envelope.py's photo number (repeatable)")
    p.add_argument("--family", default="100 mm", choices=tuple(FAMILIES))
    p.add_argument("--size", default="640x480")
    p.add_argument("--seeds", type=int, default=12, help="noise seeds for the JPEG's expected bias")
    p.add_argument("--way", action="append", choices=WAYS)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "envelope_sources.md"))
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    ways = args.way or list(WAYS)
    calibrate_phone.RAYS = 3
    nominal = nominal_for(args.family, width, height)
    texture = chart.make_chart(nominal)
    rows = []
    for k in args.photo or [1]:
        true, perturbation, focal = draw(nominal, args.family, k, width, height)
        linear = calibrate_phone.render_by_trace(AtSize(true, (width, height)), texture)
        exposure, focal_mm = perturbation["exposure"], int(round(focal))
        noisy = phone_codes(linear, exposure, seed=k)               # chart_envelope.py's noise seed for photo k
        cells = []
        for way in ways:
            if way == "png":
                cell = fitted(nominal, true, saved(phone_codes(linear, exposure, seed=None)), focal_mm)
            elif way == "png-noise":
                cell = fitted(nominal, true, saved(noisy), focal_mm)
            elif way == "jpeg-444":
                cell = fitted(nominal, true, saved(noisy, 0), focal_mm)
            elif way == "jpeg":
                cell = fitted(nominal, true, saved(noisy, -1), focal_mm)
            else:
                cell = fitted(nominal, true, saved(noisy, -1), focal_mm, jpeg_bias(linear, exposure, args.seeds))
            cells.append(cell)
            print(f"photo {k} {way}: {cell}", flush=True)
        rows.append(f"| {k} | {true.fov:.0f} | " + " | ".join(cells) + " |")
    text = ("# What takes an envelope photo's fit off the truth\n\n"
            f"`python bench/envelope_sources.py {' '.join(sys.argv[1:])}`, {time.strftime('%Y-%m-%d')}: the "
            f"*{args.family}* family, {width} × {height}. Camera / ball (mm), IOR; within bounds: camera ≤ 2 mm, "
            "ball ≤ 0.5 mm, IOR ≤ 0.005.\n\n| photo | lens (°) | " + " | ".join(ways) + " |\n|---:|---:|"
            + "---|" * len(ways) + "\n" + "\n".join(rows) + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
