"""Which chart layout keeps enough in view over the calibration's envelope: markers found and fits, old against new.

    python bench/chart_envelope.py [--count 24] [--fit 6] [--start 0] [--size 640x480] [--layout old --layout new] \
        [--family "100 mm" --family default] [--out bench/results/chart_envelope.md] [--open-holes] [--follow N] \
        [--align-jpeg 0|1] [--local-gain SIDES] [--described-start] [--start-at-truth] [--focal exif|exact] \
        [--focal-rounding MM]

Two nominal setups, the chart made for each:

- *100 mm*: the advised glass ball (90 mm, IOR 1.5, the print 225 mm behind it) with the camera 100 mm from the
  ball (the tutorial's, and the advisor's when the camera is left where it is) and a 70° lens;
- *default*: the app's maker path, :data:`predistort.physical.MAKER_DEFAULT` (IOR 1.52, camera 200 mm, 45°).

For each, ``--count`` true setups are drawn (a fixed seed per setup) as ``bench/cycles.py``'s ``perturb`` draws
them, each quantity between half its limit and its limit: the camera moved up to 20 mm (3-D) and turned up to 5°
about a random axis, the ball moved up to 5 mm sideways and the print's distance up to 5 mm, the IOR up to
0.03, the exposure up to 20 %; the lens drawn anew: 50–80° for *100 mm*, 40–50° for *default* (the photo's
EXIF states it in whole mm, as a phone's does). Each is rendered by ``predistort.trace`` (the fit's own optics,
:func:`bench.calibrate_phone.render_by_trace` at 3 × 3 rays a pixel) at ``--size`` (beyond 1024 px the scene's
film is the photo's aspect at ≤ 1024 px, and the photo is rendered at ``--size``: :class:`AtSize`) and made a
phone's photo (``bench/cycles.py``'s ``phone``: shot and read noise, the same per photo pixel at any size, sRGB,
JPEG 80), once with each layout's chart:

- *old*: the coarsest grid that leaves 4 markers inside the nominal view (the layout before issue 34);
- *new*: :func:`predistort.chart.layout` (the coarsest grid that leaves 4 whole markers in the view of 95 % of
  the envelope's cameras, :data:`predistort.chart.ENVELOPE`).

Reported for each photo: the markers whole in the true camera's view and clear of the ball (geometry), the
markers found (:func:`predistort.calibrate.find_markers` as the fit runs it: the old layout with ArUco's default
cells and no re-reading of rejected candidates, as before), and for the first ``--fit`` photos of each setup the
calibration: camera, ball (mm) and IOR errors against the truth (within bounds: camera ≤ 2 mm, ball ≤ 0.5 mm, IOR
≤ 0.005) or the refusal. ``--focal exact`` gives the fit the true focal length and holds it (an oracle: the
photos whose ball fills them miss along the depth–focal valley). Limits: the trace's optics (no light bounced
between the print and the ball); one noise seed per photo.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import calibrate_phone  # noqa: E402  (bench/calibrate_phone.py)
from cycles import perturb, phone  # noqa: E402  (bench/cycles.py)
from predistort import calibrate as calib, chart, photofit, printview  # noqa: E402
from predistort.calibrate import MESSAGES, CalibrationError  # noqa: E402
from predistort.physical import MAKER_DEFAULT, PhysicalSetup  # noqa: E402

FAMILIES = {                      # name: (the nominal setup, the true lens's range in degrees)
    "100 mm": (dict(ior=1.5, print_distance_mm=225.0, camera_distance_mm=100.0, fov_deg=70.0), (50.0, 80.0)),
    "default": (dict(MAKER_DEFAULT), (40.0, 50.0)),
}
LIMITS = dict(camera_mm=20.0, camera_deg=5.0, ball_mm=5.0, print_mm=5.0, ior=0.03, fov_deg=0.0, exposure=0.2)
BOUNDS = (2.0, 0.5, 0.005)        # camera mm, ball mm, IOR: within these a fit is right


def old_layout(config):
    """The layout before issue 34: the coarsest grid of chart.GRIDS whose free slots put 4 markers inside the
    nominal camera's view (0.98 of the film)."""
    res, ps = config.resolution, config.plane_scale
    busy = chart._occupied(config)
    for slots in chart.GRIDS:
        if 2 * ps / (slots * chart.SLOT_CELLS) / (2 * ps / res) < chart.MIN_CELL_TEXELS:
            break
        quads, cell = chart._grid(config, busy, slots)
        if chart._in_view(config, quads).sum() >= 4 and len(quads) <= 250:
            return chart.Layout(ids=np.arange(len(quads)), corners=quads, cell=cell, slots=slots)
    raise ValueError("no room for the old layout")


class Using:
    """``with Using(kind):`` the calibration (and make_chart) use that layout; the old one also with the marker
    finding of before (ArUco's default 4 pixels a cell, no candidates read again or identified; the edge filter
    stays)."""
    new = (chart.layout, calib._detect, calib.identify, calib.CELL_PIXELS)

    def __init__(self, kind):
        self.kind = kind

    def __enter__(self):
        chart._chart.cache_clear()
        if self.kind == "old":
            chart.layout = old_layout
            calib.CELL_PIXELS = 4

            def detect(gray, layout):
                corners, ids, _ = calib._detector().detectMarkers(gray)
                if ids is None:
                    return np.zeros((0, 4, 2)), np.zeros(0, int), np.zeros((0, 4, 2))
                return np.array([c.reshape(4, 2) for c in corners], np.float64), ids.ravel(), np.zeros((0, 4, 2))
            calib._detect = detect
            calib.identify = lambda photo, layout, corners, ids, candidates: (ids, corners)

    def __exit__(self, *exc):
        chart.layout, calib._detect, calib.identify, calib.CELL_PIXELS = Using.new
        chart._chart.cache_clear()


class AtSize:
    """`config` with its film at `size` (w, h) pixels: the photo rendered larger than the scene's checks allow
    (1024 px; the true setup's film is the scene's, the photo's aspect)."""

    def __init__(self, config, size):
        self._config, self.film_size = config, tuple(size)

    def __getattr__(self, name):
        return getattr(self._config, name)


def nominal_for(family, width, height):
    """The family's nominal scene, its film the photo's aspect at ≤ 1024 px (the scene's checks' limit)."""
    shrink = math.ceil(max(width, height) / 1024)
    return PhysicalSetup(**FAMILIES[family][0], resolution=256, film_width=width // shrink,
                         film_height=height // shrink).to_scene()


def draw(nominal, family, k, width, height):
    """Setup k of the family: ``(true scene, perturbation, EXIF focal length in mm)`` (seed 1000 + k)."""
    rng = np.random.default_rng(1000 + k)
    true, perturbation = perturb(nominal, rng, limits=LIMITS, film=nominal.film_size)
    true = true.replace(fov=float(rng.uniform(*FAMILIES[family][1])))
    focal = calib.DIAGONAL_35MM * width / (2 * math.hypot(width, height) * math.tan(math.radians(true.fov) / 2))
    return true, perturbation, focal


def errors(scene, true):
    """``(camera mm, ball mm, IOR, within BOUNDS)`` of a fitted `scene` against the `true` one."""
    camera = np.linalg.norm(np.subtract(scene.camera_origin, true.camera_origin)) * true.units_mm
    ball = np.linalg.norm(np.subtract(scene.sphere_center, true.sphere_center)) * true.units_mm
    ior = abs(scene.sphere_ior - true.sphere_ior)
    return camera, ball, ior, bool(camera <= BOUNDS[0] and ball <= BOUNDS[1] and ior <= BOUNDS[2])


def whole_in_view(true, layout):
    """How many of `layout`'s markers the true camera sees whole (slot in its film, clear of its ball)."""
    o, left, up, forward = chart.camera_frame(true)
    width, height = true.film_size
    tan_x = math.tan(math.radians(true.fov) / 2)
    cameras = (o[None], np.stack([left, up, forward])[None], np.array([tan_x]), np.array([tan_x * height / width]),
               np.asarray(true.sphere_center, dtype=np.float64)[None])
    return int(chart._seen(true, layout.corners, layout.cell, cameras).sum())


TRUE = {}                         # the photo being fitted's true setup (--start-at-truth)


def started_at_truth(model, config, circle, tan_x, pose=None, _start_for=calib.start_for):
    """calibrate.start_for, with the camera, its focal length, the ball and the IOR put at the true setup's."""
    theta = _start_for(model, config, circle, tan_x, pose)
    true = TRUE["setup"]
    origin, left, up, forward = chart.camera_frame(true)
    rotation = np.stack([left, up, forward], 1)
    theta[0:3] = torch.from_numpy(origin)
    theta[3:6] = torch.from_numpy(cv2.Rodrigues(model.rotation0.numpy().T @ rotation)[0].ravel())
    theta[6] = math.log(model.tan_x0 / math.tan(math.radians(true.fov) / 2))
    theta[7:10] = torch.tensor(true.sphere_center, dtype=torch.float64)
    theta[10] = true.sphere_ior
    return theta


def warned(fit):
    """The MESSAGES keys of a fit's warnings (a warning is a message with its numbers filled in)."""
    keys = [k for k in ("tone", "unexplained", "described") for w in fit.warnings
            if w.startswith(MESSAGES[k].split("{")[0])]
    return keys or ["?"]


def refusal_key(message):
    return next((k for k, v in MESSAGES.items() if v == message), "?")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=24, help="true setups per family (markers counted on each)")
    p.add_argument("--fit", type=int, default=6, help="of them, this many calibrated per family and layout")
    p.add_argument("--start", type=int, default=0, help="the first setup's number (setup k is drawn with seed 1000 + k)")
    p.add_argument("--size", default="640x480")
    p.add_argument("--layout", action="append", choices=("old", "new"))
    p.add_argument("--family", action="append", choices=tuple(FAMILIES))
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "chart_envelope.md"))
    p.add_argument("--open-holes", action="store_true",
                   help="the baseline: leave open the holes of the ball's region that the photo's edge opens "
                        "(find_ball before calibrate._fill_open_holes)")
    p.add_argument("--follow", type=int, default=calib.FOLLOW,
                   help="times the second fit chooses its pixels again where it converges (calibrate.FOLLOW: "
                        "the baseline)")
    p.add_argument("--align-jpeg", type=int, choices=(0, 1), default=int(calib.ALIGN_JPEG),
                   help="1: the print's alignment models the file's JPEG (calibrate.ALIGN_JPEG); 0: the baseline")
    p.add_argument("--described-start", action="store_true",
                   help="a photo with fewer than 2 markers and no print aligned is fitted from the camera the scene "
                        "describes (calibrate.DESCRIBED_START), not refused")
    p.add_argument("--start-at-truth", action="store_true",
                   help="each fit starts at the true setup (what the photo's colours and points tell at best; "
                        "implies --described-start)")
    p.add_argument("--focal", choices=("exif", "exact"), default="exif",
                   help="exif: the photo's EXIF focal length, whole mm, a prior (as a phone writes it); exact: the "
                        "true one, held fixed (an oracle: what the fit reaches when the focal length is known)")
    p.add_argument("--focal-rounding", type=float, default=photofit.FOCAL_ROUNDING,
                   help="the EXIF focal length's prior is flat within this many mm of it (photofit.FOCAL_ROUNDING); "
                        "0: a Gaussian about it, the baseline")
    p.add_argument("--local-gain", type=float, default=printview.LOCAL_GAIN,
                   help="the print's last alignment reads the exposure as a field smoothed over this many marker "
                        "sides (printview.LOCAL_GAIN); 0: one exposure, the baseline")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    calib.FOLLOW = args.follow
    calib.ALIGN_JPEG = bool(args.align_jpeg)
    printview.LOCAL_GAIN = args.local_gain
    calib.DESCRIBED_START = args.described_start or args.start_at_truth
    if args.start_at_truth:
        calib.start_for = started_at_truth
    photofit.FOCAL_ROUNDING = args.focal_rounding
    if args.focal == "exact":
        photofit.FOCAL_PRIOR, photofit.FOCAL_ROUNDING = 1e-6, 0.0
    if args.open_holes:
        calib._fill_open_holes = lambda filled, piece: filled
    kinds = args.layout or ["old", "new"]
    calibrate_phone.RAYS = 3
    rows, summary = [], []
    for family in args.family or FAMILIES:
        nominal = nominal_for(family, width, height)
        stats = {k: dict(seen=[], found=[], fits=0, right=0, refused={}) for k in kinds}
        layouts = {}
        for kind in kinds:
            with Using(kind):
                try:
                    layouts[kind] = (chart.layout(nominal), chart.make_chart(nominal))
                except ValueError as e:
                    layouts[kind] = (None, str(e))
        for k in range(args.start, args.start + args.count):
            true, perturbation, focal = draw(nominal, family, k, width, height)
            for kind in kinds:
                layout, texture = layouts[kind]
                s = stats[kind]
                if layout is None:
                    rows.append(f"| {family} | {k} | {true.fov:.0f} | {kind} | no chart: {texture} | | | | |")
                    continue
                linear = calibrate_phone.render_by_trace(AtSize(true, (width, height)), texture)
                jpeg = phone(linear, exposure=perturbation["exposure"], seed=k, focal_35mm_exif=focal)
                seen = whole_in_view(true, layout)
                with Using(kind):
                    photo = calib.read_photo(jpeg)
                    try:
                        found = len(calib.find_markers(photo, layout)[0])
                    except CalibrationError:
                        found = 0
                    s["seen"].append(seen)
                    s["found"].append(found)
                    result = ""
                    if k < args.start + args.fit:
                        start = time.perf_counter()
                        s["fits"] += 1
                        try:
                            TRUE["setup"] = true
                            fit = calib.calibrate(nominal, jpeg, focal_mm=focal if args.focal == "exact" else None)
                            camera, ball, ior, right = errors(fit.scene, true)
                            s["right"] += right
                            result = (f"{camera:.2f} | {ball:.2f} | {ior:.4f} | "
                                      f"{'yes' if right else 'no'} ({time.perf_counter() - start:.0f} s"
                                      f"{'; warned: ' + ', '.join(warned(fit)) if fit.warnings else ''})")
                        except CalibrationError as e:
                            key = refusal_key(str(e))
                            s["refused"][key] = s["refused"].get(key, 0) + 1
                            result = f"refused: {key} | | | ({time.perf_counter() - start:.0f} s)"
                    else:
                        result = " | | | "
                rows.append(f"| {family} | {k} | {true.fov:.0f} | {kind} | {layout.slots} | {seen} | {found} | {result} |")
                print(rows[-1], flush=True)
        for kind in kinds:
            s, layout = stats[kind], layouts[kind][0]
            if layout is None:
                summary.append(f"| {family} | {kind} | no chart | | | | | | |")
                continue
            seen, found = np.array(s["seen"]), np.array(s["found"])
            refused = ", ".join(f"{v} {k}" for k, v in sorted(s["refused"].items())) or "none"
            summary.append(f"| {family} | {kind} | {layout.slots} ({len(layout.ids)}) | {np.median(seen):.0f} | "
                           f"{np.median(found):.0f} | {(found == 0).sum()}/{len(found)} | {(found >= 4).sum()}/{len(found)} | "
                           f"{s['right']}/{s['fits']} | {refused} |")
    text = ("# Chart layouts over the calibration's envelope\n\n"
            f"`python bench/chart_envelope.py {' '.join(sys.argv[1:])}`, {time.strftime('%Y-%m-%d')}. Photos rendered "
            "by `predistort.trace` in true setups drawn about each nominal (see the script's docstring), "
            f"{width} × {height}, noise and JPEG 80, EXIF focal length. Within bounds: camera ≤ 2 mm, ball ≤ 0.5 mm, "
            "IOR ≤ 0.005.\n\n"
            "| setup | layout | slots (markers) | whole in view, median | found, median | none found | ≥ 4 found | "
            "fits within bounds | refused |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n" + "\n".join(summary) +
            "\n\n| setup | photo | lens (°) | layout | slots | whole in view | found | camera (mm) | ball (mm) | IOR | "
            "within bounds |\n|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|\n" + "\n".join(rows) + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
