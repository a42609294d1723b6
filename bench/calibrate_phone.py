"""Which stage of a phone biases the calibration: photos made by the fit's own optics, one stage at a time.

    python bench/calibrate_phone.py --truth /tmp/cycles-chart200/photo03.json [--truth ...] [--drawn 12:2 ...] \
        [--stage both ...] [--out bench/results/calibrate_phone.md]

Each ``--truth`` is a photo's JSON as ``bench/cycles.py photos`` writes it (``{"scene": <the true
SceneConfig>, "perturbation": {"exposure": ...}}``). For each, the chart (``chart.make_chart`` of
``bench/calibrate.py``'s nominal scene at the photo's size) is rendered in the true setup by
:mod:`predistort.trace` itself, the optics the fit predicts with: 6 × 6 rays a pixel weighted by Mitsuba's
Gaussian pixel filter (σ 0.5 px). So the renderer cannot differ from the model, and what is left is the
phone. That render goes through ``bench/cycles.py``'s ``phone`` stage by stage and is fitted:

- *clean*: the exposure, sRGB, 8 bits, JPEG at quality 100 (no sensor noise);
- *noise*: the sensor's noise too (shot noise of 1000 electrons at white, read noise 0.002), JPEG at 100;
- *JPEG 80*: no noise, JPEG at quality 80;
- *both*: noise and JPEG 80 (as the Cycles photos are made);
- *both, ×0.8*: the same at an exposure of 0.8 (nothing clipped).

And the processing a phone does beyond the fit's model, each on top of *both* (``tests/photos.py``'s helpers on
the linear render, before the phone stage):

- *k1 −0.02*, *k1 +0.02*: a residual radial distortion (OpenCV's convention, r in focal lengths);
- *vignette −0.3*: 30 % darker at the corners (1 − 0.3 ρ²);
- *gamma 0.8*: a global tone curve (linear light ^ 0.8: shadows lifted);
- *local tone 0.3*, *local tone 0.5*: HDR-like local tone mapping (the light ÷ its blur over a tenth of the
  photo, ^ the power).

Reported: camera, ball (mm) and IOR errors, the fitted k1 and vignette, the report's first warning, the seconds
of each fit, and with ``--ratio`` the final ratio (``bench/calibrate.py``'s ``final_ratio``: the instant solve
for the fitted setup ÷ the one for the true setup, both rendered by Mitsuba in the true setup; done when ≤ 1.3).
Limits: the trace's optics only (no light bounced between the print and the ball); one noise seed per photo
(``--seed``).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

sys.path.insert(0, str(REPO / "tests"))
from calibrate import errors, final_ratio, nominal  # noqa: E402  (bench/calibrate.py)
from cycles import phone  # noqa: E402  (bench/cycles.py)
from photos import distort, local_tone, vignette  # noqa: E402  (tests/photos.py)
from predistort import chart, trace  # noqa: E402
from predistort.calibrate import CalibrationError, calibrate  # noqa: E402
from predistort.scene import SceneConfig  # noqa: E402
from predistort.target import camera_frame, film_rays  # noqa: E402

RAYS = 6                     # rays a pixel each way ...
FILTER_SIGMA = 0.5           # ... weighted by a Gaussian of this σ (px), over ±1.5 px: Mitsuba's hdrfilm default
STAGES = {                   # name: phone() arguments (the exposure: the photo's unless given)
    "clean": dict(full_well=1e12, read_noise=0.0, quality=100),
    "noise": dict(quality=100),
    "JPEG 80": dict(full_well=1e12, read_noise=0.0),
    "both": dict(),
    "both, ×0.8": dict(exposure=0.8),
    "k1 −0.02": dict(),
    "k1 +0.02": dict(),
    "vignette −0.3": dict(),
    "gamma 0.8": dict(),
    "local tone 0.3": dict(),
    "local tone 0.5": dict(),
}
PROCESSING = {               # name: what the phone does to the linear render (`true`: the true scene) first
    "k1 −0.02": lambda linear, true: distort(linear, -0.02, true.fov),
    "k1 +0.02": lambda linear, true: distort(linear, 0.02, true.fov),
    "vignette −0.3": lambda linear, true: vignette(linear, -0.3),
    "gamma 0.8": lambda linear, true: np.clip(linear, 0, None) ** 0.8,
    "local tone 0.3": lambda linear, true: local_tone(linear, 0.3),
    "local tone 0.5": lambda linear, true: local_tone(linear, 0.5),
}


def render_by_trace(config, texture):
    """Linear radiance [H, W, 3] of `texture` in `config`, by predistort.trace (see the module's docstring)."""
    width, height = config.film_size
    origin = torch.from_numpy(camera_frame(config)[0])
    centre = torch.tensor(config.sphere_center, dtype=torch.float64)
    ior = torch.tensor(config.sphere_ior, dtype=torch.float64)
    texture = torch.from_numpy(np.asarray(texture, dtype=np.float64))
    index = np.arange(width * height)
    offsets = (np.arange(RAYS) + 0.5) / RAYS * 3 - 1.5
    image, total = np.zeros((width * height, 3)), 0.0
    for dx in offsets:
        for dy in offsets:
            weight = np.exp(-(dx * dx + dy * dy) / (2 * FILTER_SIGMA ** 2))
            s = torch.from_numpy((index % width + 0.5 + dx) / width)
            t = torch.from_numpy((index // width + 0.5 + dy) / height)
            d = film_rays(config, s, t)
            d = d / d.norm(dim=1, keepdim=True)
            traced = trace.trace(origin, d, centre, config.sphere_radius, ior, config.plane_scale)
            image += weight * trace.look(texture, traced).numpy()
            total += weight
    return (image / total).reshape(height, width, 3)


def drawn(spec):
    """``{"scene", "perturbation"}`` of `spec` "SEED:K": the K-th true setup ``bench/cycles.py photos --seed SEED``
    draws (``cycles.perturb`` of ``bench/calibrate.py``'s ``nominal(960, 720)``), as its JSON would hold it."""
    from cycles import perturb
    seed, k = (int(v) for v in spec.split(":"))
    rng = np.random.default_rng(seed)
    for _ in range(k + 1):
        true, perturbation = perturb(nominal(960, 720), rng)
    return {"scene": true.to_dict(), "perturbation": perturbation}


def write(path, text):
    """Write a results table `text` to `path` (its folder made) and show it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    print(text)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--truth", action="append", default=[], help="a photo's JSON (bench/cycles.py photos)")
    p.add_argument("--drawn", action="append", default=[], metavar="SEED:K",
                   help="the true setup of `bench/cycles.py photos --seed SEED`'s photo K, drawn again (its "
                        "perturb() of bench/calibrate.py's nominal 960 × 720 scene) without Blender")
    p.add_argument("--stage", action="append", help="only these stages (default: all)")
    p.add_argument("--seed", type=int, default=5, help="the sensor noise's seed")
    p.add_argument("--ratio", action="store_true", help="also the final ratio against the true setup's solve")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "calibrate_phone.md"))
    args = p.parse_args()
    rows = []
    for path in args.truth + args.drawn:
        data = drawn(path) if path in args.drawn else json.loads(Path(path).read_text())
        name = "seed {} photo{:02d}".format(*map(int, path.split(":"))) if path in args.drawn else Path(path).stem
        true = SceneConfig.from_dict(data["scene"])
        base = nominal(*true.film_size)
        linear = render_by_trace(true, chart.make_chart(base))
        for stage, options in STAGES.items():
            if args.stage and stage not in args.stage:
                continue
            options = {"exposure": data["perturbation"]["exposure"], **options}
            processed = PROCESSING[stage](linear, true) if stage in PROCESSING else linear
            photo = phone(processed, seed=args.seed, **options)
            start = time.perf_counter()
            try:
                fit = calibrate(base, photo)
            except CalibrationError as e:
                rows.append(f"| {name} | {stage} | {options['exposure']:.2f} | refused: {e} |" + " |" * 8)
                print(rows[-1], flush=True)
                continue
            seconds = time.perf_counter() - start
            camera, ball = errors(fit.scene, true)
            ratio = f"{final_ratio(fit.scene, true)[0]:.2f}" if args.ratio else ""
            k1, vignetting = (fit.quantities[-2]["fitted"], fit.quantities[-1]["fitted"])
            warning = fit.warnings[0].split(":")[0] if fit.warnings else ""
            rows.append(f"| {name} | {stage} | {options['exposure']:.2f} | {camera:.2f} | {ball:.2f} | "
                        f"{abs(fit.scene.sphere_ior - true.sphere_ior):.4f} | {k1:+.4f} | {vignetting:+.3f} | "
                        f"{fit.residual['tone_local']:+.3f} / {fit.residual['tone_global']:+.3f} | {warning} | {ratio} | {seconds:.1f} |")
            print(rows[-1], flush=True)
    text = ("# Calibrate: which stage of a phone biases the fit\n\n"
            f"`python bench/calibrate_phone.py {' '.join(sys.argv[1:])}`, "
            f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores shared with other work (seconds are wall "
            "seconds under that load). Photos rendered by `predistort.trace` (the fit's own optics) in each "
            "true setup, then put through `bench/cycles.py`'s phone stage by stage (see the script's docstring).\n\n"
            "| photo | stage | exposure | camera (mm) | ball (mm) | IOR | k1 | vignette | tone: local / global | warning | "
            "final ratio | seconds |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n"
            + "\n".join(rows) + "\n")
    write(args.out, text)


if __name__ == "__main__":
    main()
