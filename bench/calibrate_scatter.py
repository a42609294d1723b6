"""How far a photo's noise and its JPEG move the fit: one render, photographed again with other noise, saved
several ways, fitted with and without following its pixels.

    python bench/calibrate_scatter.py [--setup 4:3 setup4 ...] [--seeds 4] [--encodings png q95 q80]
                                      [--follow 0 2] [--render mitsuba|trace] [--out bench/results/calibrate_scatter.md]

Why: the ball's error on one photo (``tests/test_calibrate.py``'s 4:3 photo: 0.07 mm as shipped, 1.31 mm with
the pixels chosen again where the fit converges, ``predistort.calibrate.FOLLOW``) says little alone. Here each
setup is rendered once, then photographed with ``--seeds`` noise draws (``tests/photos.photograph``: the same
exposure, 1 % linear noise, sRGB) and saved as PNG (lossless) or as a JPEG at quality 95 or 80 with the 4:2:0
chroma that phones and Pillow use. The spread over the seeds, per encoding, is what the noise and the JPEG
leave in the fit; the PNG's mean error is the model's own bias against the renderer.

Setups: ``4:3`` and ``16:9`` (``tests/test_calibrate.py``'s, exposure 1.3 and 0.7, 640 × 480 and 640 × 360),
``setup1``..``setup5`` (``bench/calibrate.py``'s, 960 × 720). ``--render mitsuba`` (default: the project's
renderer, 128 samples a pixel, as the tests) or ``trace`` (the fit's own optics, ``bench/calibrate_big.render``:
a photo the model explains exactly, but for its noise and file).

Reported per setup, encoding and follow: the ball's and the camera's error over the seeds (mean, standard
deviation, largest), and the ball's σ the fit reports (its covariance, mean over the seeds): an honest σ is
about the standard deviation.

``--pull``: also, for the first seed of each encoding, *what pulls the ball off the truth*: the fit's model
(its aligned points, and pixels chosen at the true setup, the JPEG's bias with them) evaluated at the true
setup, and the Gauss–Newton step from there split by the residuals that ask for it: the print's points, the
colours inside the ball, those beside it, the priors. The parts add up to the step (mm of the ball's centre
along x, y and z, z towards the camera's side of the print: ``print distance`` in the report). A model that
explains the photo asks for no step beyond its noise.
"""
import argparse
import io
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(BENCH)]

import calibrate as bench_calibrate  # noqa: E402  (bench/calibrate.py)
from calibrate_big import render as render_by_trace  # noqa: E402
from photos import perturbed, render  # noqa: E402
from predistort import calibrate as calibration  # noqa: E402
from predistort import chart, photofit, trace  # noqa: E402
from predistort.encoding import linear_to_srgb  # noqa: E402

EXPOSURE = {"4:3": 1.3, "16:9": 0.7}   # tests/test_calibrate.py's photos' exposures (16:9 here without EXIF)


def setup(name):
    """``(nominal, true, exposure, seed of the render)`` of setup `name`."""
    if name in EXPOSURE:
        import test_calibrate
        return test_calibrate.NOMINAL[name], test_calibrate.TRUE[name], EXPOSURE[name], 0
    k = int(name.removeprefix("setup")) - 1
    base = bench_calibrate.nominal(960, 720)
    cam, turn, ball, ior, fov = bench_calibrate.SETUPS[k]
    return base, perturbed(base, camera_mm=cam, turn_deg=turn, ball_mm=ball, ior=ior, fov=fov), 0.75 + 0.1 * k, k


def encoded(linear, exposure, seed, encoding):
    """The file's bytes: `linear` × `exposure` with 1 % noise (seed `seed`), clipped, sRGB, as `encoding`."""
    rng = np.random.default_rng(seed)
    light = np.clip(linear * exposure + rng.normal(0, 0.01, linear.shape), 0, 1)
    picture = Image.fromarray((linear_to_srgb(light) * 255 + 0.5).astype(np.uint8))
    out = io.BytesIO()
    if encoding == "png":
        picture.save(out, "PNG")
    else:                                              # "qNN": Pillow's JPEG, 4:2:0 as phones save it
        picture.save(out, "JPEG", quality=int(encoding[1:]), subsampling=2)
    return out.getvalue()


def ball_sigma(fit):
    """The ball centre's σ the fit reports, mm (its three coordinates' σ in quadrature)."""
    rows = {q["name"]: q["uncertainty"] for q in fit.quantities}
    return float(np.sqrt(sum(rows[n] ** 2 for n in ("ball x (right)", "ball y (up)",
                                                     "print distance (ball centre to print)"))))


def true_theta(model, true, like):
    """θ of the true setup `true` in `model`'s coordinates (its starting camera's frame, its focal length's log),
    the gains of `like` (a fitted θ) brought to the photo's level, k1 and the vignette 0."""
    theta = like.clone()
    origin = torch.tensor(true.camera_origin, dtype=torch.float64)
    rotation = trace.look_at_rotation(origin, torch.tensor(true.camera_target, dtype=torch.float64),
                                      torch.tensor(true.camera_up, dtype=torch.float64))
    turn, _ = cv2.Rodrigues((model.rotation0.T @ rotation).numpy())
    theta[0:3], theta[3:6] = origin, torch.from_numpy(turn.ravel())
    theta[6] = np.log(model.tan_x0 / np.tan(np.radians(true.fov) / 2))
    theta[7:10], theta[10] = torch.tensor(true.sphere_center, dtype=torch.float64), true.sphere_ior
    theta[14] = theta[15] = 0.0
    return model.exposed(theta)


def pull(model, theta, units_mm):
    """``{part: [3] mm}``: the ball's Gauss–Newton step from `theta` split by the residuals asking for it."""
    model.choose_pixels(theta, jpeg=True)
    r = model.residuals(theta)
    free = [k for k in range(len(theta)) if k not in (12, 15)]      # green and the vignette: held (jacobian)
    w = photofit._huber_weights(r).sqrt()
    J, r = model.jacobian(theta, r)[:, free] * w[:, None], r * w
    ball = [free.index(k) for k in (7, 8, 9)]
    each = -(torch.linalg.inv(J.T @ J)[ball] @ (J * r[:, None]).T).T.numpy() * units_mm     # [R, 3]
    points, n = model.whiten.shape[0], len(model.pixels)
    colours = each[points:points + 3 * n].reshape(n, 3, 3).sum(1)
    inside = model.inside.numpy()
    return {"points": each[:points].sum(0), "inside": colours[inside].sum(0),
            "beside": colours[~inside].sum(0), "priors": each[points + 3 * n:].sum(0)}


def fit_with_model(base, photo):
    """calibrate's result and its model and last θ (caught as it profiles the focal length)."""
    caught = {}
    profile = calibration.profile_focal

    def spy(model, theta, progress=None):
        caught["theta"] = profile(model, theta, progress)
        caught["model"] = model
        return caught["theta"]
    calibration.profile_focal = spy
    try:
        return calibration.calibrate(base, photo), caught["model"], caught["theta"]
    finally:
        calibration.profile_focal = profile


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setup", nargs="+", default=["4:3", "setup4"])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--encodings", nargs="+", default=["png", "q95", "q80"])
    p.add_argument("--follow", nargs="+", type=int, default=[0, 2])
    p.add_argument("--render", choices=("mitsuba", "trace"), default="mitsuba")
    p.add_argument("--pull", action="store_true", help="what pulls the ball off the truth (the module's doc)")
    p.add_argument("--out", default=str(BENCH / "results" / "calibrate_scatter.md"))
    args = p.parse_args()
    rows, pulls = [], []
    for name in args.setup:
        base, true, exposure, render_seed = setup(name)
        texture = chart.make_chart(base)
        width, height = true.film_size
        linear = (render(true, texture, spp=128, seed=render_seed) if args.render == "mitsuba"
                  else render_by_trace(true, texture, width, height, rays=4))
        for encoding in args.encodings:
            photos = [encoded(np.asarray(linear, np.float64), exposure, seed, encoding) for seed in range(args.seeds)]
            if args.pull:
                calibration.FOLLOW = 0
                _, model, fitted = fit_with_model(base, photos[0])
                parts = pull(model, true_theta(model, true, fitted), true.units_mm)
                pulls.append(f"| {name} | {encoding} | " + " | ".join(
                    " ".join(f"{v:+.2f}" for v in parts[k]) for k in ("points", "inside", "beside", "priors"))
                    + " | " + " ".join(f"{v:+.2f}" for v in sum(parts.values())) + " |")
                print(pulls[-1], flush=True)
            for follow in args.follow:
                calibration.FOLLOW = follow
                balls, cameras, sigmas, seconds = [], [], [], []
                for photo in photos:
                    start = time.perf_counter()
                    fit = calibration.calibrate(base, photo)
                    seconds.append(time.perf_counter() - start)
                    camera, ball = bench_calibrate.errors(fit.scene, true)
                    balls.append(ball), cameras.append(camera), sigmas.append(ball_sigma(fit))
                balls, cameras = np.array(balls), np.array(cameras)
                rows.append(f"| {name} | {encoding} | {follow} | {balls.mean():.2f} | {balls.std():.2f} | "
                            f"{balls.max():.2f} | {np.mean(sigmas):.2f} | {cameras.mean():.2f} | {cameras.max():.2f} | "
                            f"{' '.join(f'{b:.2f}' for b in balls)} | {np.mean(seconds):.0f} |")
                print(rows[-1], flush=True)
    command = " ".join(["python bench/calibrate_scatter.py", *sys.argv[1:]])
    text = (f"# The fit's scatter over the photo's noise, per file encoding\n\n`{command}`, {time.strftime('%Y-%m-%d')}, "
            f"{os.cpu_count()} shared CPU cores, {args.render} renders, {args.seeds} noise seeds.\n\n"
            "| setup | file | follow | ball mean (mm) | ball sd | ball max | ball σ reported | camera mean (mm) | "
            "camera max | ball per seed | s / fit |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|\n"
            + "\n".join(rows) + "\n")
    if pulls:
        text += ("\nWhat pulls the ball off the truth (seed 0, `--pull`): its Gauss–Newton step from the true setup, "
                 "mm along x y z, by the residuals asking for it.\n\n| setup | file | points | colours inside | "
                 "colours beside | priors | step |\n|---|---|---|---|---|---|---|\n" + "\n".join(pulls) + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
