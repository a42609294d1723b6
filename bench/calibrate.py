"""Calibrate from one photo: parameter errors, time per photo and the final ratio, on 5 perturbed glass setups.

    python bench/calibrate.py [--quick] [--photos DIR] [--focal photo|exif|exact] [--follow N] [--align-jpeg 0|1] [--local-gain SIDES]
                              [--out bench/results/calibrate.md]

The nominal setup: a 90 mm glass ball (IOR 1.5) 225 mm in front of the print (the advised distance), the
camera 200 mm from the ball, 45° across a 4:3 picture, the chart at 256 px. Each true setup moves the camera
up to 20 mm and turns it up to 5°, gives it another field of view, moves the ball up to 5 mm (the print's
distance with it) and changes the IOR by up to 0.03. The photos (960 × 720; --quick: 2 photos at 480 × 360)
are the project's Mitsuba renders of the chart (128 samples a pixel) with sensor noise, exposure off, sRGB and JPEG 80
(tests/photos.py); no EXIF (the field of view is fitted).

``--photos DIR``: other photos instead (e.g. Blender Cycles renders of the chart): ``NAME.jpg`` (or .png) with
``NAME.json`` = ``{"scene": <the true SceneConfig dict>, "nominal": <optional nominal SceneConfig dict;
default: this bench's>}``.

Reported per photo: camera position error (mm), ball centre error (mm), IOR error, field-of-view error
(degrees), time, and the final ratio: the instant solve for the fitted scene rendered by Mitsuba in the true
setup, against the ball-free view, ÷ the same for a solve made for the true setup (done when ≤ 1.3), and that
ratio as the true scene's transport predicts it. Results go to bench/results/calibrate.md.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from photos import focal_35mm, perturbed, photograph, render  # noqa: E402
from predistort import chart, photofit, printview  # noqa: E402
from predistort import calibrate as calibrate_module  # noqa: E402
from predistort.calibrate import CalibrationError, calibrate  # noqa: E402
from predistort.physical import PhysicalSetup  # noqa: E402
from predistort.scene import SceneConfig  # noqa: E402

SETUPS = [  # camera mm, turn (yaw, pitch, roll) deg, ball mm, IOR change, fov
    ((15, -10, 12), (3, -2, 2), (3, -2, 4), 0.02, 50.0),
    ((-20, 8, -10), (-4, 3, -1), (-4, 2, -3), -0.03, 41.0),
    ((10, 15, -20), (2, 4, 3), (2, 4, 5), 0.01, 48.0),
    ((-8, -18, 15), (-5, -2, -3), (-3, -4, -5), 0.03, 43.0),
    ((18, 5, 8), (1, -5, 5), (5, -1, 2), -0.02, 52.0),
]


def nominal(width, height):
    return PhysicalSetup(ior=1.5, print_distance_mm=225.0, camera_distance_mm=200.0, fov_deg=45.0,
                         resolution=256, film_width=width, film_height=height).to_scene()


def synthetic(quick):
    width, height = (480, 360) if quick else (960, 720)
    base = nominal(width, height)
    texture = chart.make_chart(base)
    for k, (cam, turn, ball, ior, fov) in enumerate(SETUPS[:2] if quick else SETUPS):
        true = perturbed(base, camera_mm=cam, turn_deg=turn, ball_mm=ball, ior=ior, fov=fov)
        yield f"setup{k + 1}", base, true, photograph(render(true, texture, spp=128, seed=k),
                                                      exposure=0.75 + 0.1 * k, seed=k)


def from_folder(folder):
    for truth in sorted(Path(folder).glob("*.json")):
        data = json.loads(truth.read_text())
        photo = next(p for p in (truth.with_suffix(".jpg"), truth.with_suffix(".png")) if p.exists())
        true = SceneConfig.from_dict(data["scene"])
        base = SceneConfig.from_dict(data["nominal"]) if "nominal" in data else nominal(*true.film_size)
        yield truth.stem, base, true, photo.read_bytes()


def errors(fitted, true):
    """The fitted scene's camera and ball centre distances from the true setup's, mm."""
    unit = true.units_mm
    return (np.linalg.norm(np.subtract(fitted.camera_origin, true.camera_origin)) * unit,
            np.linalg.norm(np.subtract(fitted.sphere_center, true.sphere_center)) * unit)


def final_ratio(fitted, true, size=(128, 96), spp=1024):
    """The instant solve made for `fitted` against the one made for `true`, both *rendered* by Mitsuba in the
    true setup (a `size` film, a texture of its width, `spp` samples a pixel, the same seed for both) and
    scored against the true camera's ball-free view, for 2 generated pictures; also the same ratio as the true
    scene's transport predicts it. Returns ``(rendered, predicted)``."""
    from predistort.probe_cache import transport_for
    from predistort.procedural import dataset
    from predistort.render import Renderer
    from predistort.solve import solve
    from predistort.target import ball_free_view
    small = dict(resolution=size[0], film_width=size[0], film_height=size[1])
    true_s, fit_s = true.replace(**small), fitted.replace(**small)
    truth_t, fit_t = transport_for(true_s), transport_for(fit_s)
    renderer = Renderer(true_s)
    rendered, predicted = [], []
    for picture in dataset(2, size[0], seed=7):
        goal_true, goal_fit = ball_free_view(picture, true_s), ball_free_view(picture, fit_s)
        made_for_fit, made_for_true = solve(goal_fit, fit_t, start=picture), solve(goal_true, truth_t, start=picture)
        seen = lambda x: renderer.render(x, spp=spp, seed=1).clamp(0, 1)            # noqa: E731
        rendered.append(float((seen(made_for_fit) - goal_true).abs().mean()) /
                        float((seen(made_for_true) - goal_true).abs().mean()))
        err = lambda x: float((truth_t.render(x).clamp(0, 1) - goal_true).abs().mean())   # noqa: E731
        predicted.append(err(made_for_fit) / err(made_for_true))
    return float(np.mean(rendered)), float(np.mean(predicted))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--photos")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "calibrate.md"))
    p.add_argument("--focal", choices=("photo", "exif", "exact"), default="photo",
                   help="photo: what the photo says (these have no EXIF); exif: the true 35 mm-equivalent focal "
                        "length in whole mm, as a phone's EXIF gives it; exact: the true one, held fixed (an "
                        "oracle: what the rest of the fit reaches when the focal length is known)")
    p.add_argument("--follow", type=int, default=calibrate_module.FOLLOW,
                   help="times the second fit chooses its pixels again where it converges (calibrate.FOLLOW: "
                        "the baseline)")
    p.add_argument("--align-jpeg", type=int, choices=(0, 1), default=int(calibrate_module.ALIGN_JPEG),
                   help="1: the print's alignment models the file's JPEG (calibrate.ALIGN_JPEG); 0: the baseline")
    p.add_argument("--local-gain", type=float, default=printview.LOCAL_GAIN,
                   help="the print's last alignment reads the exposure as a field smoothed over this many marker "
                        "sides (printview.LOCAL_GAIN); 0: one exposure, the baseline")
    args = p.parse_args()
    calibrate_module.FOLLOW = args.follow
    calibrate_module.ALIGN_JPEG = bool(args.align_jpeg)
    printview.LOCAL_GAIN = args.local_gain
    if args.focal == "exact":
        photofit.FOCAL_PRIOR, photofit.FOCAL_ROUNDING = 1e-6, 0.0
    rows = []
    for name, base, true, photo in (from_folder(args.photos) if args.photos else synthetic(args.quick)):
        start = time.perf_counter()
        try:
            focal = {"photo": None, "exif": round(focal_35mm(true)), "exact": focal_35mm(true)}[args.focal]
            fit = calibrate(base, photo, focal_mm=focal)
        except CalibrationError as e:
            rows.append(f"| {name} | refused: {e} | | | | | | | |")
            print(rows[-1], flush=True)
            continue
        seconds = time.perf_counter() - start
        camera, ball = errors(fit.scene, true)
        rendered, predicted = final_ratio(fit.scene, true)
        rows.append(f"| {name} | {camera:.2f} | {ball:.2f} | {abs(fit.scene.sphere_ior - true.sphere_ior):.4f} | "
                    f"{abs(fit.scene.fov - true.fov):.2f} | {fit.residual['markers']} | {seconds:.1f} | "
                    f"{rendered:.2f} | {predicted:.2f} |")
        print(rows[-1], flush=True)
    text = ("# Calibrate from one photo\n\n" + ("--quick: " if args.quick else "") +
            f"`python bench/calibrate.py{' --quick' if args.quick else ''}{' --photos ' + args.photos if args.photos else ''}"
            f"{' --focal ' + args.focal if args.focal != 'photo' else ''}`"
            f", {time.strftime('%Y-%m-%d')}, {os.cpu_count()} shared CPU cores. Done when: camera ≤ 2 mm, ball ≤ "
            "0.5 mm, IOR ≤ 0.005, ≤ 60 s, ratio ≤ 1.3.\n\n"
            "| photo | camera (mm) | ball (mm) | IOR | fov (°) | markers found | seconds | final ratio, rendered | "
            "predicted |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
            "Final ratio: the instant solve for the fitted scene ÷ the one for the true scene, both rendered by "
            "Mitsuba in the true setup (128 × 96, 1024 spp, the same seed) against its ball-free view; "
            "*predicted*: the same ratio by the true scene's measured transport.\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
