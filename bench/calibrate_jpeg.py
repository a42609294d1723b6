"""A prototype, not in the fit: the JPEG modelled as a correction of the photo's colours, against the fit as it is.

    python bench/calibrate_jpeg.py [--photo /tmp/cycles-chart200/photo03.json ...] [--setup setup3 ...] \
        [--out bench/results/calibrate_jpeg.md]

Why (``bench/calibrate_phone.py``): on over-exposed photos the JPEG at quality 80 moves the fitted ball by
~0.5 mm even when the photo is made by the fit's own optics. Where a colour bends into its clip, the JPEG's
blocks lose the cosines that drew the bend; decoded and turned back into linear light (the sRGB curve is
convex), the mean of a work pixel there is biased.

The prototype, each time :meth:`predistort.photofit.Model.choose_pixels` chooses the fitted pixels at θ: the
prediction at θ at the photo's full size (one ray a pixel, the exposure's gains, clipped at 1) is sRGB-encoded
to 8 bits, saved as a JPEG with the photo's own quantisation tables and chroma subsampling (Pillow reads them
from the file), decoded, and both it and the 8-bit prediction without JPEG are shrunk to the work size in
linear light. Their difference δ is the JPEG's bias at θ; the fit compares the photo's colours minus δ with the
prediction. Limits: no sensor noise in δ; it costs a full-size render at every choice of pixels (the focal
scan's too), so a fit takes ~1.5–2 × as long.

``--near-clip``: δ only within a JPEG colour block (16 photo pixels) of a colour the prediction puts above
:data:`predistort.photofit.CLIPPED`, zero elsewhere (where nothing clips, the noise-free one-ray δ is the
prototype's own error, not the photo's).

Each photo is fitted twice in the same run: as the fit is (the baseline), then with the correction.
``--photo``: a photo's JSON (``bench/cycles.py photos``: its JPEG beside it); ``--setup``: one of
``bench/calibrate.py``'s Mitsuba setups (setup1..setup5), rendered here.
"""
import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, JpegImagePlugin

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import calibrate as bench_calibrate  # noqa: E402  (bench/calibrate.py)
from calibrate_phone import write  # noqa: E402  (bench/calibrate_phone.py)
from predistort import photofit, trace  # noqa: E402
from predistort.calibrate import CalibrationError, calibrate, linear_to_srgb, srgb_to_linear  # noqa: E402
from predistort.scene import SceneConfig  # noqa: E402

LINEAR = srgb_to_linear(np.arange(256) / 255).astype(np.float32)      # 8-bit code → linear light
CHOOSE = photofit.Model.choose_pixels                                  # the fit's own choice


def jpeg_bias(model, theta, jpeg):
    """δ [w·h, 3]: the work-size linear colours of the prediction at θ through the photo's JPEG, minus without."""
    width, height = model.photo_size
    w, h = model.work_size
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    s = torch.from_numpy((cols.ravel() + 0.5) / width)
    t = torch.from_numpy((rows.ravel() + 0.5) / height)
    light = (trace.look(model.texture, model.rays(theta, s, t)) * theta[11:14]).clamp(0, 1).numpy()
    codes = np.round(linear_to_srgb(light.reshape(height, width, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(codes).save(buffer, format="JPEG", qtables=jpeg["qtables"], subsampling=jpeg["subsampling"])
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    through = cv2.resize(LINEAR[decoded], (w, h), interpolation=cv2.INTER_AREA)
    without = cv2.resize(LINEAR[codes], (w, h), interpolation=cv2.INTER_AREA)
    return torch.from_numpy((through - without).reshape(-1, 3).astype(np.float64))


def near_clip(model, theta, block_px=16):
    """[w·h, 1]: 1 within `block_px` photo pixels of a colour predicted above CLIPPED at θ, else 0."""
    w, h = model.work_size
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    s, t = torch.from_numpy((cols.ravel() + 0.5) / w), torch.from_numpy((rows.ravel() + 0.5) / h)
    light = trace.look(model.texture, model.rays(theta, s, t)) * theta[11:14]
    bright = (light.numpy() >= photofit.CLIPPED).any(-1).reshape(h, w).astype(np.uint8)
    side = 2 * math.ceil(block_px * w / model.photo_size[0]) + 1
    near = cv2.dilate(bright, np.ones((side, side), np.uint8)).reshape(-1, 1) > 0
    return torch.from_numpy(near.astype(np.float64))


def fitted(name, base, true, photo, corrected, only_near_clip=False):
    """One fit of `photo` (JPEG bytes), with or without the correction: a table row."""
    image = Image.open(io.BytesIO(photo))
    jpeg = {"qtables": image.quantization, "subsampling": JpegImagePlugin.get_sampling(image)}

    def choose(model, theta):
        CHOOSE(model, theta)
        if corrected:
            theta = torch.as_tensor(theta)
            delta = jpeg_bias(model, theta, jpeg)
            if only_near_clip:
                delta = delta * near_clip(model, theta)
            model.observed = model.observed - delta[model.pixels]

    photofit.Model.choose_pixels = choose
    start = time.perf_counter()
    try:
        fit = calibrate(base, photo)
    except CalibrationError as e:
        return f"| {name} | {'corrected' if corrected else 'as is'} | refused: {e} | | | |"
    finally:
        photofit.Model.choose_pixels = CHOOSE
    camera, ball = bench_calibrate.errors(fit.scene, true)
    return (f"| {name} | {'corrected' if corrected else 'as is'} | {camera:.2f} | {ball:.2f} | "
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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photo", action="append", help="a photo's JSON (bench/cycles.py photos)")
    p.add_argument("--setup", action="append", help="a Mitsuba setup of bench/calibrate.py (setup1..setup5)")
    p.add_argument("--near-clip", action="store_true", help="δ only near the colours predicted near white")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "calibrate_jpeg.md"))
    args = p.parse_args()
    rows = []
    for name, base, true, photo in photos(args):
        for corrected in (False, True):
            rows.append(fitted(name, base, true, photo, corrected, args.near_clip))
            print(rows[-1], flush=True)
    command = " ".join(["python bench/calibrate_jpeg.py"] + [f"--photo {x}" for x in args.photo or []]
                       + [f"--setup {x}" for x in args.setup or []] + (["--near-clip"] if args.near_clip else []))
    text = ("# Calibrate: the JPEG modelled (a prototype) against the fit as it is\n\n"
            f"`{command}`, {time.strftime('%Y-%m-%d')}, this machine (2 shared cores). See the script's docstring.\n\n"
            "| photo | fit | camera (mm) | ball (mm) | IOR | seconds |\n|---|---|---:|---:|---:|---:|\n"
            + "\n".join(rows) + "\n")
    write(args.out, text)


if __name__ == "__main__":
    main()
