"""Calibrate a cylinder mirror from one photo of its chart, on photos rendered from setups the fit is not told.

    python bench/calibrate_mirror.py [--photos 4] [--spp 64] [--out bench/results/calibrate_mirror.md]
    python bench/calibrate_mirror.py --renderer cycles [--photos 5] [--spp 64] [--threads 2]
                                     # the photos by Blender Cycles (bench/cycles.py): an independent renderer

The nominal setup: ``scenes/cylinder_mirror.json`` (a 60 × 100 mm cylinder mirror on an A3 print, the camera
about 45° above) with a 4:3 film of 640 × 480 and a 24° lens. Each true setup moves the camera by 10–15 mm and
turns it by 2–4°, gives it another lens (22–30°), and moves the cylinder by 2–4 mm on the print; the chart
(``predistort.mirrorfit.mirror_chart``) is rendered there by Mitsuba (the project's renderer, ``spp``; with ``--renderer cycles`` by Blender Cycles,
:func:`bench.cycles.render_linear` on the world's meshes of ``bench/cycles_world.py``), then
made a phone's photo (exposure 0.8–1.2, noise, sRGB, JPEG 85, no EXIF). Each photo is calibrated (*fine*:
``calibrate_mirror`` as it is; *coarse*: with ``fine=False``, the fit before the fine one, for comparison on
the same photos), and:

- the camera's and the cylinder base's distances from the truth (mm), the field of view's (°);
- the score that matters: a picture pre-distorted for the *fitted* setup and for the *true* one
  (``predistort.worldsolve``), both rendered in the true setup, scored by the mirror metric (the render ÷ the
  render of a white print against the picture on the target, over the mirror's pixels that show the print);
  their ratio (≤ 1.3 is the issue's bound);
- the fit's seconds, and the σ the fine fit reports of itself; a refusal's sentence.

With ``--renderer cycles`` the results also open with the renderers' agreement on the nominal setup's chart
(:func:`agreement`: mean |Cycles − Mitsuba| over the frame, full and in 4 × 4 blocks, beside Mitsuba against
itself with another seed and against Mitsuba with the cylinder moved 0.5 mm or the camera 2 mm: what a
disagreement of that size would cost).

Limits: the scores' renders are Mitsuba's in either case (the metric of the any-object issue); one picture;
Cycles needs Blender (not a dependency of the project).
"""
import argparse
import dataclasses
import io
import math
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))                               # this checkout's predistort, not an installed one
sys.path.insert(0, str(REPO / "tests"))

from photos import photograph, render                       # noqa: E402
from predistort.calibrate import CalibrationError           # noqa: E402
from predistort.mirrorfit import calibrate_mirror, mirror_chart   # noqa: E402
from predistort.scene import SceneConfig                    # noqa: E402
from predistort.worldsolve import load_picture, predistort_world   # noqa: E402


def turn(v, axis, degrees):
    a, axis, v = math.radians(degrees), np.asarray(axis, float), np.asarray(v, float)
    return v * math.cos(a) + np.cross(axis, v) * math.sin(a) + axis * (axis @ v) * (1 - math.cos(a))


def true_setup(nominal, rng):
    """`nominal` with the camera moved 10–15 mm and turned 2–4°, another lens, the cylinder moved 2–4 mm."""
    move = rng.normal(size=3)
    move *= rng.uniform(10, 15) / np.linalg.norm(move)
    origin = np.array(nominal.camera_origin) + move
    view = np.array(nominal.camera_target) - np.array(nominal.camera_origin)
    yaw, pitch = rng.uniform(2, 4) * rng.choice([-1, 1]), rng.uniform(1.5, 3) * rng.choice([-1, 1])
    view = turn(turn(view, [0, 0, 1], yaw), np.cross(view, [0, 0, 1]) / np.linalg.norm(np.cross(view, [0, 0, 1])), pitch)
    angle = rng.uniform(0, 2 * math.pi)
    shift = rng.uniform(2, 4) * np.array([math.cos(angle), math.sin(angle), 0.0])
    solid = nominal.objects[0]
    return nominal.replace(camera_origin=tuple(origin), camera_target=tuple(origin + view), fov=rng.uniform(22, 30),
                           objects=(dataclasses.replace(solid, base=tuple(np.add(solid.base, shift))),))


def score(texture, picture, world, spp):
    """The mirror metric of `texture` rendered in `world` (Mitsuba) for `picture`."""
    from predistort.render import Renderer
    from predistort.solve import transport_for
    from predistort.target import world_target
    renderer = Renderer(world)
    target, covered = world_target(picture, world)
    pixels = covered & transport_for(world).masks()[1]
    seen = renderer.render(texture, spp=spp).cpu() / renderer.render(torch.ones_like(texture), spp=spp, seed=1).cpu()
    return float((seen.clamp_max(2) - target).abs()[pixels].mean())


def agreement(world, chart, spp, threads):
    """Cycles against Mitsuba on `world`'s photo of `chart` (module doc): ``{name: (L1, binned L1)}`` and the
    seconds of each renderer's render."""
    import cycles
    start = time.perf_counter()
    c = cycles.render_linear(world, chart, spp=spp, seed=0, threads=threads)
    seconds = {"cycles": time.perf_counter() - start}
    start = time.perf_counter()
    m = render(world, chart, spp=spp, seed=0)
    seconds["mitsuba"] = time.perf_counter() - start
    solid = world.objects[0]
    moved = np.array([0.5, 0.0, 0.0])
    wrong = {"Mitsuba, other seed": render(world, chart, spp=spp, seed=1),
             "Mitsuba, cylinder 0.5 mm right": render(world.replace(objects=(dataclasses.replace(
                 solid, base=tuple(np.add(solid.base, moved))),)), chart, spp=spp),
             "Mitsuba, camera 2 mm right": render(world.replace(
                 camera_origin=tuple(np.add(world.camera_origin, 4 * moved)),
                 camera_target=tuple(np.add(world.camera_target, 4 * moved))), chart, spp=spp)}
    out = {"Cycles": (cycles.l1_on(m, c), cycles.l1_on(cycles.binned(m), cycles.binned(c))),
           "Cycles mirrored left-right": (cycles.l1_on(m, c[:, ::-1]), None)}
    for name, image in wrong.items():
        out[name] = (cycles.l1_on(m, image), cycles.l1_on(cycles.binned(m), cycles.binned(image)))
    return out, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--spp", type=int, default=64)
    ap.add_argument("--seed", type=int, default=35)
    ap.add_argument("--picture", default=str(REPO / "examples" / "landscape.png"))
    ap.add_argument("--renderer", choices=("mitsuba", "cycles"), default="mitsuba",
                    help="who renders the photos (the scores are rendered by Mitsuba either way)")
    ap.add_argument("--threads", type=int, default=2, help="Cycles' CPU threads")
    ap.add_argument("--out", default=None, help="default bench/results/calibrate_mirror.md (calibrate_mirror_cycles"
                                                ".md with --renderer cycles)")
    args = ap.parse_args()
    cycles_photos = args.renderer == "cycles"
    args.out = args.out or str(REPO / "bench" / "results" /
                               ("calibrate_mirror_cycles.md" if cycles_photos else "calibrate_mirror.md"))
    if cycles_photos:
        import cycles
    nominal = SceneConfig.load(REPO / "scenes" / "cylinder_mirror.json").replace(
        resolution=1024, film_width=640, film_height=480, fov=24.0)
    chart, _ = mirror_chart(nominal)
    picture = load_picture(args.picture)
    rng = np.random.default_rng(args.seed)
    rows, check = [], None
    if cycles_photos:
        check = agreement(nominal, chart, args.spp, args.threads)
        print("agreement on the nominal setup:", check, flush=True)
    for k in range(args.photos):
        true = true_setup(nominal, rng)
        start = time.perf_counter()
        if cycles_photos:
            linear = cycles.render_linear(true, chart, spp=args.spp, seed=k, threads=args.threads)
        else:
            linear = render(true, chart, spp=args.spp, seed=k)
        render_s = time.perf_counter() - start
        photo = photograph(linear, exposure=rng.uniform(0.8, 1.2), noise=0.01, quality=85, seed=k)
        small = dict(resolution=512, film_width=true.film_size[0], film_height=true.film_size[1])
        judge = true.replace(**small)
        true_texture = predistort_world(picture, judge, spp=4).predistorted
        s_true = score(true_texture, picture, judge, args.spp)
        for fine in (True, False):
            start = time.perf_counter()
            try:
                fit = calibrate_mirror(nominal, io.BytesIO(photo), fine=fine)
            except CalibrationError as e:
                rows.append((k, fine, None, str(e)))
                print(f"photo {k} ({'fine' if fine else 'coarse'}): refused: {e}", flush=True)
                continue
            seconds = time.perf_counter() - start
            camera = float(np.linalg.norm(np.subtract(fit.scene.camera_origin, true.camera_origin)))
            base = float(np.linalg.norm(np.subtract(fit.scene.objects[0].base, true.objects[0].base)))
            fitted_texture = predistort_world(picture, fit.scene.replace(**small), spp=4).predistorted
            s_fit = score(fitted_texture, picture, judge, args.spp)
            row = dict(camera=camera, base=base, fov=fit.fov - true.fov, radius=fit.radius_mm - true.objects[0].radius,
                       s_fit=s_fit, s_true=s_true, ratio=s_fit / s_true, seconds=seconds, markers=fit.markers,
                       sigma=(fit.sigma_camera_mm, fit.sigma_base_mm), warnings=fit.warnings, render_s=render_s)
            rows.append((k, fine, row, None))
            print(f"photo {k} ({'fine' if fine else 'coarse'}): camera {camera:.2f} mm, base {base:.2f} mm, fov "
                  f"{row['fov']:+.3f}°, radius {row['radius']:+.2f} mm; score {s_fit:.4f} (true {s_true:.4f}, "
                  f"×{s_fit / s_true:.2f}); {seconds:.1f} s (render {render_s:.1f} s), {fit.markers} markers {fit.warnings or ''}", flush=True)
    who = ("Blender Cycles (an independent renderer: `bench/cycles.py`, the world's meshes of "
           "`bench/cycles_world.py`)" if cycles_photos else "the project (Mitsuba)")
    command = f"python bench/calibrate_mirror.py --photos {args.photos} --spp {args.spp}" + (
        f" --renderer cycles --threads {args.threads}" if cycles_photos else "")
    lines = ["# Calibrating a cylinder mirror from one photo (`bench/calibrate_mirror.py`)", "",
             f"`{command}`, this machine (2 cores, shared with other work), {date.today()}. Photos rendered by "
             f"{who} from setups the fit is not told (see the script's docstring); the scores' renders are "
             f"Mitsuba's; bounds: camera ≤ 2 mm, base ≤ 1 mm, score ratio ≤ 1.3, ≤ 60 s. *fine*: "
             f"calibrate as it is (the camera from the markers' edges, the base and radius from the cap's rim); "
             f"*coarse*: `calibrate_mirror(..., fine=False)`, the fit before it (the markers' corners, the cap's "
             f"outline by a threshold), on the same photos. σ: what the fine fit reports of itself (camera, base). "
             f"seconds: the fit's; render: the photo's render.", ""]
    if check:
        l1, render_seconds = check
        lines += [f"The renderers on the nominal setup's chart ({nominal.film_size[0]}×{nominal.film_size[1]}, "
                  f"{args.spp} spp each; Cycles {render_seconds['cycles']:.1f} s, Mitsuba "
                  f"{render_seconds['mitsuba']:.1f} s): mean |difference| of the linear images clipped to [0, 1] "
                  f"over the frame, and of their 4 × 4 block means (most render noise averaged out), against "
                  f"Mitsuba with seed 0:", "", "| against | L1 | binned L1 |", "|---|---:|---:|"]
        lines += [f"| {name} | {a:.4f} | {'' if b is None else f'{b:.4f}'} |" for name, (a, b) in l1.items()]
        lines.append("")
    lines += ["| photo | fit | camera (mm) | base (mm) | fov (°) | radius (mm) | score, fitted setup | score, true "
              "setup | ratio | seconds | render (s) | markers | σ camera, base (mm) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k, fine, r, refused in rows:
        name = "fine" if fine else "coarse"
        if r is None:
            lines.append(f"| {k} | {name} | refused: {refused} ||||||||||")
            continue
        sigma = "" if r["sigma"][0] is None else f"{r['sigma'][0]:.2f}, {r['sigma'][1]:.3f}"
        lines.append(f"| {k} | {name} | {r['camera']:.2f} | {r['base']:.2f} | {r['fov']:+.3f} | {r['radius']:+.2f} | "
                     f"{r['s_fit']:.4f} | {r['s_true']:.4f} | {r['ratio']:.2f} | {r['seconds']:.1f} | "
                     f"{r['render_s']:.1f} | {r['markers']} | {sigma} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
