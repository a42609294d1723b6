"""Calibrate a phone-sized photo: seconds, peak memory and errors at 24 MP, against the same photo at 960 × 720.

    python bench/calibrate_big.py [--setup 1] [--render 2000x1500] [--big 5712x4284] [--quality 90] \
        [--baseline-rev fcae9ae] [--cache /tmp/calibrate_big] [--out bench/results/calibrate_big.md]
    python bench/calibrate_big.py --renderer cycles [--spp 32] [--tone local] --out bench/results/calibrate_big_cycles.md

The photo. The chart of ``bench/calibrate.py``'s nominal scene (what the fit is given) is rendered in a true setup
the fit is not told (``bench/calibrate.py``'s ``SETUPS[k]``: the camera 15-20 mm and 2-5° off, another lens, the
ball 4-5 mm off, its IOR 0.02-0.03 off) by :mod:`predistort.trace`, the fit's own optics (``--render`` pixels, 3 × 3
rays a pixel under Mitsuba's Gaussian pixel filter, as ``bench/calibrate_phone.render_by_trace``) or, with
``--renderer cycles``, by Blender Cycles (an independent renderer: ``bench/cycles.py``'s ``render_linear`` at
``--render`` pixels and ``--spp`` samples a pixel; needs Blender), then:

- *960 × 720*: that render shrunk (area average, linear light) to 960 × 720, then the phone: exposure, shot and
  read noise, sRGB, 8 bits (``bench/cycles.py``'s ``phone`` model), JPEG at ``--quality``, no EXIF. The baseline:
  the size every earlier bound was measured at.
- *24 MP JPEG*: the render upsampled (Lanczos, linear light) to ``--big`` (an iPhone 15's 5712 × 4284), the same
  phone (noise drawn at full size), JPEG at ``--quality``, no EXIF (a browser's upload strips it).
- *24 MP HEIC*: the same 8-bit pixels saved as HEIC at ``--quality`` (pillow-heif, x265), in 512 × 512 tiles as an
  iPhone stores it.

``--tone local`` puts a phone's local tone curve between the noise and sRGB in every photo
(``bench/cycles.py``'s ``local_tone_gain``: the linear image × (its luminance blurred by a Gaussian of σ 5 % of
the width ÷ that blur's 95th percentile)^−0.3, HDR+-like: dark surroundings brightened, white kept).

Each photo is fitted in a fresh Python process (``calibrate(nominal, path)``), so that its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is the fit's alone, reading the file included; the phases' seconds
come from the fit's progress messages. ``--baseline-rev REV`` fits the 24 MP JPEG again with the package as it was
at git revision REV (a worktree under the cache), in the same run: the old path against the new.

Reported per photo: seconds, peak memory (GB), the camera's and the ball's distance from the true ones (mm), the
IOR's error, the field of view's error (deg), the final ratio (``bench/calibrate.py``'s ``final_ratio``: the
instant solve for the fitted setup ÷ the one for the true setup, both rendered by Mitsuba in the true setup; the
bound is 1.3), the fit's warnings (its report's first lines), the phases' seconds, or the refusal's sentence.
Limits: the trace's optics (no light bounced between the print and the ball); an upsampled render is smoother
than a real 24 MP sensor's photo (its detail stops at the render's pixels); one noise seed.
"""
import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "tests"))

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from predistort.calibrate import CalibrationError, calibrate
from predistort.scene import SceneConfig
phases, start = [], time.perf_counter()
def say(fraction, message):
    phases.append((round(time.perf_counter() - start, 2), message))
try:
    fit = calibrate(SceneConfig.load(sys.argv[2]), sys.argv[3], progress=say)
    out = {"scene": fit.scene.to_dict(), "notes": fit.notes, "residual": fit.residual,
           "warnings": getattr(fit, "warnings", [])}
except CalibrationError as e:
    out = {"refused": str(e)}
out["seconds"] = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
out["peak_gb"], out["cpu_seconds"] = usage.ru_maxrss / 1024 ** 2, usage.ru_utime + usage.ru_stime
out["phases"] = phases
print("RESULT " + json.dumps(out))
"""


def size(text):
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def phone_codes(linear, exposure, seed, full_well=1000.0, read_noise=0.002, gain=None):
    """8-bit sRGB codes [H, W, 3] of linear radiance `linear`: ``bench/cycles.py``'s ``phone`` model (exposure,
    shot noise of `full_well` electrons at white, read noise, sRGB), in float32 and by bands of rows (a 24 MP
    photo's float64 copies would take gigabytes). `gain` [H, W]: a local tone curve's gain, applied to the
    noisy linear image before sRGB (as a phone tone-maps its raw frame)."""
    from cycles import srgb_encode
    rng = np.random.default_rng(seed)
    out = np.empty(linear.shape, np.uint8)
    for top in range(0, len(linear), 512):
        x = np.clip(linear[top:top + 512].astype(np.float32) * exposure, 0, None)
        x = x + np.sqrt(x / full_well + read_noise ** 2) * rng.standard_normal(x.shape, dtype=np.float32)
        if gain is not None:
            x *= gain[top:top + 512, :, None]
        out[top:top + 512] = np.round(srgb_encode(x) * 255).astype(np.uint8)
    return out


def save(codes, path, quality):
    """`codes` saved at `path` (JPEG or HEIC by its suffix) at `quality`, no EXIF; returns the path."""
    image = Image.fromarray(codes)
    if path.suffix == ".heic":
        import pillow_heif
        pillow_heif.register_heif_opener()
        pillow_heif.options.GRID_TILE_SIZE = 512      # in 512 × 512 tiles, as an iPhone stores it (one 24 MP
        image.save(path, "HEIF", quality=quality)     # x265 frame of this noise did not decode in libde265)
    else:
        image.save(path, "JPEG", quality=quality)
    return path


def render(config, texture, width, height, rays=3, sigma=0.5):
    """Linear radiance [height, width, 3] float32 of `texture` in `config` (its film's aspect, any size: a
    SceneConfig's film stops at 1024), by predistort.trace as ``bench/calibrate_phone.render_by_trace`` does it:
    `rays` × `rays` a pixel under a Gaussian pixel filter of σ `sigma` px over ±1.5 px; by bands of rows."""
    import torch
    from predistort import trace
    from predistort.target import camera_frame, film_rays
    origin = torch.from_numpy(camera_frame(config)[0])
    centre = torch.tensor(config.sphere_center, dtype=torch.float64)
    ior = torch.tensor(config.sphere_ior, dtype=torch.float64)
    texture = torch.from_numpy(np.asarray(texture, dtype=np.float64))
    offsets = (np.arange(rays) + 0.5) / rays * 3 - 1.5
    out = np.zeros((height, width, 3), np.float32)
    for top in range(0, height, 128):
        rows = np.arange(top, min(height, top + 128))
        index = np.arange(len(rows) * width)
        image, total = np.zeros((len(index), 3)), 0.0
        for dx in offsets:
            for dy in offsets:
                weight = np.exp(-(dx * dx + dy * dy) / (2 * sigma ** 2))
                s = torch.from_numpy((index % width + 0.5 + dx) / width)
                t = torch.from_numpy((rows[index // width] + 0.5 + dy) / height)
                d = film_rays(config, s, t)
                d = d / d.norm(dim=1, keepdim=True)
                traced = trace.trace(origin, d, centre, config.sphere_radius, ior, config.plane_scale)
                image += weight * trace.look(texture, traced).numpy()
                total += weight
        out[rows] = (image / total).reshape(len(rows), width, 3)
    return out


def make_photos(args, cache):
    """The nominal scene's path, the true scene, and the photos' paths (module doc), rendered once per setup and
    render size into `cache`."""
    from calibrate import SETUPS, nominal            # bench/calibrate.py
    from cycles import local_tone_gain               # bench/cycles.py
    from photos import perturbed                     # tests/photos.py
    from predistort import chart
    base = nominal(960, 720)
    camera, turn, ball, ior, fov = SETUPS[args.setup - 1]
    film = (1024, round(1024 * args.render[1] / args.render[0]))      # the true scene's film: the render's aspect
    true = perturbed(base, camera_mm=camera, turn_deg=turn, ball_mm=ball, ior=ior, fov=fov, film=film)
    exposure = args.exposure or 0.75 + 0.1 * (args.setup - 1)          # as bench/calibrate.py's photos
    by = "" if args.renderer == "trace" else f"_cycles{args.spp}"
    rendered = cache / f"setup{args.setup}_{args.render[0]}x{args.render[1]}{by}.npy"
    if not rendered.exists():
        start = time.perf_counter()
        if args.renderer == "cycles":
            from cycles import render_linear
            image = render_linear(true, chart.make_chart(base), spp=args.spp, seed=args.setup, threads=args.threads,
                                  film=args.render)
        else:
            image = render(true, chart.make_chart(base), *args.render)
        np.save(rendered, image)
        print(f"rendered {rendered} in {time.perf_counter() - start:.0f} s", flush=True)
    linear = np.load(rendered)
    scene = cache / "nominal.json"
    scene.write_text(json.dumps(base.to_dict()))
    photos = {}
    small = cv2.resize(linear, (960, 720), interpolation=cv2.INTER_AREA)
    cache = cache / f"setup{args.setup}{by}_exposure{exposure:g}_q{args.quality}_tone-{args.tone}"
    cache.mkdir(exist_ok=True)
    local = args.tone == "local"                     # the gain of the exposed radiance, before the noise
    photos["960 × 720 JPEG"] = save(phone_codes(small, exposure, 1, gain=local_tone_gain(small * exposure)
                                                if local else None), cache / "small.jpg", args.quality)
    gain = cv2.resize(local_tone_gain(linear * exposure), args.big, interpolation=cv2.INTER_LINEAR) if local else None
    big = cv2.resize(linear, args.big, interpolation=cv2.INTER_LANCZOS4)
    codes = phone_codes(big, exposure, 1, gain=gain)
    del gain
    del big
    megapixels = args.big[0] * args.big[1] / 1e6
    photos[f"{megapixels:.1f} MP JPEG"] = save(codes, cache / "big.jpg", args.quality)
    photos[f"{megapixels:.1f} MP HEIC"] = save(codes, cache / "big.heic", args.quality)
    return scene, true, exposure, photos


def fit(package, scene, photo):
    """The child's result (CHILD) of fitting `photo` with the package at `package`."""
    run = subprocess.run([sys.executable, "-c", CHILD, str(package), str(scene), str(photo)], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(package)})
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(run.stderr[-3000:])
    return json.loads(line[7:])


PHASES = (("reading the photo", "read"), ("finding the chart's markers", "markers"), ("finding the ball", "ball"),
          ("aligning the print", "print aligned"), ("the start", "start (focal scan)"),
          ("ball found: fitting", "fit, IOR held"), ("fit: iteration", "fit, IOR free"),
          ("the focal length", "focal profile"), ("drawing the overlay", "overlay"))


def profile(messages):
    """``[(phase, seconds)]`` from the fit's progress `messages` ``[(seconds since the start, message)]``: each
    phase (:data:`PHASES`, calibrate.py's) from its first message to the next phase's."""
    starts = []
    for t, message in messages:
        name = next((n for key, n in PHASES if key in message), None)
        if name and name not in [n for n, _ in starts]:
            starts.append((name, t))
    ends = [t for _, t in starts[1:]] + [messages[-1][0]]
    return [(name, end - t) for (name, t), end in zip(starts, ends)]


def warned(out):
    """The fit's warnings (the report's first lines), or "none"; "?" for a package that has none."""
    if "warnings" not in out:
        return "?"
    return " ".join(out["warnings"]).replace("|", "/") or "none"


def row(name, out, true, load):
    """A table row of result `out` against the true scene, the machine's `load` when it started."""
    from calibrate import errors, final_ratio         # bench/calibrate.py
    from predistort.scene import SceneConfig
    phases = "; ".join(f"{name} {seconds:.0f}" for name, seconds in profile(out["phases"]))
    head = f"| {name} | {load:.1f} | {out['seconds']:.1f} | {out['cpu_seconds']:.1f} | {out['peak_gb']:.2f} |"
    if "refused" in out:
        return head + f" refused: {out['refused']} | | | | | | {phases} |"
    fitted = SceneConfig.from_dict(out["scene"])
    camera, ball = errors(fitted, true)
    rendered, _ = final_ratio(fitted, true)
    return head + (f" {camera:.2f} | {ball:.2f} | {abs(fitted.sphere_ior - true.sphere_ior):.4f} | "
                   f"{abs(fitted.fov - true.fov):.2f} | {rendered:.2f} | {warned(out)} | {phases} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setup", type=int, default=1, help="bench/calibrate.py's SETUPS[k - 1] (1..5)")
    p.add_argument("--render", type=size, default=(2000, 1500), help="the render, W x H")
    p.add_argument("--renderer", choices=("trace", "cycles"), default="trace",
                   help="trace: predistort.trace (the fit's own optics); cycles: Blender Cycles (independent)")
    p.add_argument("--spp", type=int, default=32, help="Cycles' samples a pixel")
    p.add_argument("--threads", type=int, default=2, help="Cycles' CPU threads")
    p.add_argument("--tone", choices=("none", "local"), default="none",
                   help="local: a phone's local tone curve (bench/cycles.py's local_tone_gain) before sRGB")
    p.add_argument("--big", type=size, default=(5712, 4284), help="the phone-sized photo, W x H")
    p.add_argument("--quality", type=int, default=90, help="JPEG and HEIC quality")
    p.add_argument("--exposure", type=float, help="the exposure (default: bench/calibrate.py's for the setup; "
                                                   "above 1 the chart's whites clip)")
    p.add_argument("--baseline-rev", help="also fit the big JPEG with the package at this git revision")
    p.add_argument("--only", action="append", help="fit only the photos whose name contains this")
    p.add_argument("--cache", default="/tmp/calibrate_big")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "calibrate_big.md"))
    args = p.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    scene, true, exposure, photos = make_photos(args, cache)
    runs = [(name, REPO, path) for name, path in photos.items()]
    if args.baseline_rev:
        old = cache / f"rev-{args.baseline_rev}"
        if not old.exists():
            subprocess.run(["git", "worktree", "add", "--detach", str(old), args.baseline_rev], cwd=REPO, check=True)
        big = next(name for name in photos if "MP JPEG" in name)
        runs.append((f"{big}, as at {args.baseline_rev}", old, photos[big]))
    rows = []
    for name, package, path in runs:
        if args.only and not any(o in name for o in args.only):
            continue
        load = os.getloadavg()[0]
        rows.append(row(name, fit(package, scene, path), true, load))
        print(rows[-1], flush=True)
    command = " ".join(["python bench/calibrate_big.py"] + sys.argv[1:])
    renderer = (f"Blender Cycles (an independent renderer; bench/cycles.py, {args.spp} spp)"
                if args.renderer == "cycles" else "predistort.trace")
    tone = "a local tone curve (bench/cycles.py's local_tone_gain), " if args.tone == "local" else ""
    text = ("# Calibrate a phone-sized photo: seconds, peak memory, errors\n\n"
            f"`{command}`, {time.strftime('%Y-%m-%d %H:%M')}, this machine ({os.cpu_count()} cores, shared). The "
            f"true setup: bench/calibrate.py's setup{args.setup} at exposure {exposure:g}, rendered by "
            f"{renderer} at {args.render[0]} × {args.render[1]}, upsampled to {args.big[0]} × {args.big[1]}, "
            f"noise, {tone}quality {args.quality}, no EXIF (see the script's docstring). Final ratio: "
            "bench/calibrate.py's (the instant solve for the fit ÷ the one for the true setup, both rendered by "
            "Mitsuba in the true setup, 128 × 96, 1024 spp; ≤ 1.3 is the bound). Each fit in its own process: the "
            "peak is its resident memory, reading the file included; CPU seconds are the process's user + system "
            "time (the machine is shared: *load* is its load average when the fit started; wall seconds grow with "
            "it).\n\n"
            "| photo | load | seconds | CPU seconds | peak GB | camera (mm) | ball (mm) | IOR | fov (deg) | "
            "final ratio | warnings | phases (wall seconds) |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n" + "\n".join(rows) + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
