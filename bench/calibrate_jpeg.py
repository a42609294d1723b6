"""Calibrate with the photo's JPEG modelled (the fit as it is) against without it, in the same run.

    python bench/calibrate_jpeg.py [--photo /tmp/cycles-chart200/photo03.json ...] [--setup setup3 ...] \
        [--upscale K] [--out bench/results/calibrate_jpeg.md]

Why (``bench/calibrate_phone.py``): on over-exposed photos the JPEG at quality 80 moved the fitted ball by
~0.5 mm even when the photo was made by the fit's own optics. Where a colour bends into its clip, the JPEG's
blocks lose the cosines that drew the bend; decoded and turned back into linear light (the sRGB curve is
convex), the mean of a work pixel there is biased. The fit now models it
(:meth:`predistort.photofit.Model.jpeg_bias`: the prediction near clipped colours put through the photo's own
quantisation tables, and the bias found there taken off the photo's colours).

Each photo is fitted twice: *without* (the baseline: the fit is not told the file's JPEG encoding, as the fit
was before, ``predistort.calibrate.jpeg_encoding`` answering None) and *with* (the fit as it is).
``--photo``: a photo's JSON (``bench/cycles.py photos``: its JPEG beside it); ``--setup``: one of
``bench/calibrate.py``'s Mitsuba setups (setup1..setup5), rendered here. ``--upscale K``: each photo made K
times larger (Lanczos) and saved again as a JPEG at quality 80, for the cost on a phone-sized file (K = 4:
3840 × 2880, 11 megapixels).
"""
import argparse
import io
import json
import sys
import time
from pathlib import Path

from PIL import Image

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import calibrate as bench_calibrate  # noqa: E402  (bench/calibrate.py)
from calibrate_phone import write  # noqa: E402  (bench/calibrate_phone.py)
from predistort import calibrate as calibration  # noqa: E402
from predistort.scene import SceneConfig  # noqa: E402

ENCODING = calibration.jpeg_encoding                                   # the fit's own reading of the file


def fitted(name, base, true, photo, modelled):
    """One fit of `photo` (JPEG bytes), the JPEG `modelled` or not: a table row."""
    calibration.jpeg_encoding = ENCODING if modelled else (lambda source: None)
    start = time.perf_counter()
    label = "with" if modelled else "without"
    try:
        fit = calibration.calibrate(base, photo)
    except calibration.CalibrationError as e:
        return f"| {name} | {label} | refused: {e} | | | |"
    finally:
        calibration.jpeg_encoding = ENCODING
    camera, ball = bench_calibrate.errors(fit.scene, true)
    return (f"| {name} | {label} | {camera:.2f} | {ball:.2f} | "
            f"{abs(fit.scene.sphere_ior - true.sphere_ior):.4f} | {time.perf_counter() - start:.1f} |")


def photos(args):
    for path in args.photo or []:
        path = Path(path)
        true = SceneConfig.from_dict(json.loads(path.read_text())["scene"])
        yield f"{path.parent.name}/{path.stem}", bench_calibrate.nominal(*true.film_size), true, \
            path.with_suffix(".jpg").read_bytes()
    if args.setup:
        for name, base, true, photo in bench_calibrate.synthetic(False):
            if name in args.setup:
                yield name, base, true, photo


def upscaled(photo, k):
    """JPEG bytes of `photo` made `k` times larger (Lanczos), saved at quality 80."""
    image = Image.open(io.BytesIO(photo)).convert("RGB")
    out = io.BytesIO()
    image.resize((image.width * k, image.height * k), Image.Resampling.LANCZOS).save(out, "JPEG", quality=80)
    return out.getvalue()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photo", action="append", help="a photo's JSON (bench/cycles.py photos)")
    p.add_argument("--setup", action="append", help="a Mitsuba setup of bench/calibrate.py (setup1..setup5)")
    p.add_argument("--upscale", type=int, default=1, help="each photo made this many times larger first")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "calibrate_jpeg.md"))
    args = p.parse_args()
    rows = []
    for name, base, true, photo in photos(args):
        photo = upscaled(photo, args.upscale) if args.upscale > 1 else photo
        for modelled in (False, True):
            rows.append(fitted(name, base, true, photo, modelled))
            print(rows[-1], flush=True)
    command = " ".join(["python bench/calibrate_jpeg.py"] + [f"--photo {x}" for x in args.photo or []]
                       + [f"--setup {x}" for x in args.setup or []]
                       + ([f"--upscale {args.upscale}"] if args.upscale > 1 else []))
    text = ("# Calibrate: the photo's JPEG modelled (the fit) against without it\n\n"
            f"`{command}`, {time.strftime('%Y-%m-%d')}, this machine (2 shared cores). See the script's docstring.\n\n"
            "| photo | JPEG modelled | camera (mm) | ball (mm) | IOR | seconds |\n|---|---|---:|---:|---:|---:|\n"
            + "\n".join(rows) + "\n")
    write(args.out, text)


if __name__ == "__main__":
    main()
