"""Where to put the print: search the ball-to-print distance for the lowest predicted error, with no renders.

The question. For a given ball and camera (:class:`predistort.physical.PhysicalSetup`), how far behind the
ball should the print go? The camera stays where it is relative to the ball, so the ball's apparent size
in the picture stays as given; only the print moves (and grows with its distance, to fill the camera's
view). With real glass the answer matters more than any model: near the ball's focus many camera pixels
see the same few texels and no texture can give them different colours; farther away the ball shows a
small inverted image of a large area, every pixel has texels of its own and the pre-distortion works again.

The prediction. For each candidate distance the scene's light transport ``render(T) ≈ A·T + b`` is
measured (:func:`predistort.solve.probe`), a fixed set of the project's own procedural pictures ``P`` is
solved on it (:func:`predistort.solve.solve`: ``T*``), and the transport predicts the error ratio that
renders would measure::

    ratio = mean over P of  |clamp(A·T* + b) − P|₁ / |clamp(A·P + b) − P|₁      (< 1: pre-distortion helps)

No picture is rendered. The search's probes skip the two calibration renders and trace 2×2 rays per pixel
instead of 3×3 (:data:`SEARCH_PROBE`): the ranking of distances is what matters, and ``bench/setups.py``
compares it with full probes and real renders.

Placed by hand (``placement``, a :class:`predistort.tolerance.Tolerance`): the ratio of a distance is
then the robust one (:func:`predistort.tolerance.robust_ratio`) — the worst over the tolerance's axis ends
of the one texture solved for all of them — so a distance that is good only at the exact spot ranks lower.

The search (:func:`advise`). Print distances from 1.15 to 10 ball radii, on a geometric grid of
:data:`GRID_POINTS`, plus the current distance; then :data:`REFINE_STEPS` probes bracket the lowest ratio
(each at the geometric middle of the wider gap beside it). The advice is the distance of the lowest
predicted ratio — unless the current distance is within :data:`TOLERANCE` of it, which is then kept (so a
ball that bends nothing, IOR 1.0, keeps its place). The curve has a broad minimum and a farther print is a
larger print, so the answer also names the nearest probed distance within that tolerance (``compact_mm``).
Cost: one probe per candidate, at no more than :data:`SEARCH_RESOLUTION` pixels (``bench/setups.py`` times
the whole search).

Limits: on-axis setups only (:mod:`predistort.physical`); the prediction ignores Monte Carlo noise and the
light that the plane bounces back onto itself, as the transport does.
"""
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .physical import PhysicalSetup
from .procedural import dataset
from .solve import probe, solve

PICTURES, PICTURE_SEED = 8, 4242        # the fixed pictures: procedural.dataset(8, R, seed 4242), one per kind
SEARCH_PROBE = {"calibrate_spp": 0, "supersampling": 2}   # cheaper probes for the search (see module doc)
SEARCH_RESOLUTION = 128                 # the search runs at min(this, the setup's resolution)
GRID_POINTS = 8                         # coarse grid of print distances ...
NEAREST_FOCUS_MM = 100.0                # advise_on_paper brings a camera no nearer the glass: a phone's nearest focus
GRID_RADII = (1.15, 10.0)               # ... from 1.15 to 10 ball radii (geometric spacing)
REFINE_STEPS = 3                        # probes that bracket the lowest ratio after the grid
TOLERANCE = 0.01                        # predicted ratios this close to the best count as equally good


def fixed_pictures(resolution, count=PICTURES):
    """The pictures predictions are made on: [count, R, R, 3], procedural (kinds in rotation), never a photograph."""
    return torch.stack(dataset(count, resolution, seed=PICTURE_SEED))


@dataclass
class Prediction:
    """What the transport predicts for the fixed pictures: ``ratio`` (mean of ``ratios``, one per picture)
    and per-pixel maps [R, R] of the mean absolute error over pictures and colours, without pre-distortion
    (``error_before``) and with the solved texture (``error_after``)."""
    ratio: float
    ratios: list
    error_before: np.ndarray
    error_after: np.ndarray


@torch.no_grad()
def predict(transport, pictures=None):
    """Solve `pictures` [N, R, R, 3] (default :func:`fixed_pictures`) on `transport` and predict the renders."""
    pictures = fixed_pictures(transport.resolution) if pictures is None else torch.as_tensor(pictures)
    before = (transport.render(pictures).clamp(0, 1) - pictures).abs()
    after = (transport.render(solve(pictures, transport)).clamp(0, 1) - pictures).abs()
    ratios = (after.mean((1, 2, 3)) / before.mean((1, 2, 3)).clamp_min(1e-9)).tolist()
    return Prediction(float(np.mean(ratios)), ratios, before.mean((0, 3)).numpy(), after.mean((0, 3)).numpy())


def _round_mm(x):
    """A distance as a person would set it: whole millimetres from 50 mm up, else tenths."""
    return float(round(x) if x >= 50 else round(x, 1))


@dataclass
class Advice:
    """The advisor's answer. ``setup`` as asked; ``best`` the advised setup (``setup`` itself when it keeps
    the current distance); predicted ratios at both; ``curve`` [(print distance mm, predicted ratio)] of every
    probed candidate, by distance; ``seconds`` the search's time; ``probes`` how many scenes it measured;
    ``compact_mm`` the nearest probed distance (the smallest print) predicted within :data:`TOLERANCE` of it."""
    setup: PhysicalSetup
    best: PhysicalSetup
    current_ratio: float
    best_ratio: float
    curve: list = field(default_factory=list)
    seconds: float = 0.0
    probes: int = 0
    compact_mm: float = None        # the nearest probed distance within TOLERANCE of the advised one's ratio
    placement: dict = None          # the Tolerance the ratios are robust to (None or all 0: the exact spot)
    paper_note: str = None          # advise_on_paper: this one sheet's print against tiles (paper_tradeoff)

    @property
    def moved(self):
        return self.best.print_distance_mm != self.setup.print_distance_mm

    def scene(self):
        """The advised :class:`~predistort.scene.SceneConfig` at the setup's own resolution."""
        return self.best.to_scene()

    def save_scene(self, path):
        """Write the advised scene as JSON (``python -m predistort apply --scene PATH`` and the app read it)."""
        b = self.best
        comment = (f"Advised by predistort.advise: a {b.ball_diameter_mm:g} mm ball ({b.material()}), its centre "
                   f"{b.print_distance_mm:g} mm in front of a {b.print_size_mm:.0f} mm print and "
                   f"{b.camera_distance_mm:g} mm from the camera; predicted error ratio {self.best_ratio:.3f} "
                   f"(at {self.setup.print_distance_mm:g} mm: {self.current_ratio:.3f}).")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"_comment": comment, **self.scene().to_dict()}, indent=2) + "\n")
        return Path(path)

    def to_dict(self):
        return {"setup": self.setup.to_dict(), "best": self.best.to_dict(), "moved": self.moved,
                "compact_mm": self.compact_mm,
                "current_ratio": self.current_ratio, "best_ratio": self.best_ratio,
                "curve": [list(p) for p in self.curve], "seconds": self.seconds, "probes": self.probes,
                "placement": self.placement}

    def markdown(self):
        """What to do, in a few lines of Markdown."""
        s, b = self.setup, self.best
        if self.moved:
            head = (f"**Move the print from {s.print_distance_mm:g} mm to {b.print_distance_mm:g} mm from the "
                    f"ball's centre** (the camera stays {s.camera_distance_mm:g} mm from it): predicted error ratio "
                    f"**{self.current_ratio:.3f} → {self.best_ratio:.3f}**.")
        else:
            head = (f"**Keep the print where it is** ({s.print_distance_mm:g} mm from the ball's centre): predicted "
                    f"error ratio **{self.current_ratio:.3f}**, within {TOLERANCE} of the best distance searched.")
        if self.compact_mm is not None and self.compact_mm < b.print_distance_mm:
            smaller = b.replace(print_distance_mm=self.compact_mm)
            head += (f" Nearly as good with a smaller print: {self.compact_mm:g} mm from the ball's centre "
                     f"({smaller.print_size_mm:.0f} mm print, predicted {dict(self.curve)[self.compact_mm]:.3f}).")
        if self.paper_note:
            head = self.paper_note
        robust = ""
        if self.placement and any(self.placement.values()):
            robust = (f" Ranked by the robust ratio: the worst, over the camera within ±{self.placement['camera_mm']:g} "
                      f"mm (the box's axis ends), of one texture made for all of them.")
        return (f"{head}\n\n{b.describe()}\n\nError ratio: the render's L1 error with pre-distortion ÷ without, "
                f"predicted by the measured light transport for {PICTURES} procedural pictures (< 1: it helps).{robust} "
                f"Search: {self.probes} probed distances in {self.seconds:.0f} s.")

    def plot(self, size=(5.0, 3.2), dpi=100):
        """The predicted ratio against the print's distance, current and advised marked: a PIL image."""
        from matplotlib.figure import Figure
        from PIL import Image
        fig = Figure(figsize=size, dpi=dpi)
        ax = fig.add_subplot()
        x, y = zip(*self.curve)
        ax.plot(x, y, "o-", color="#444", ms=4, lw=1.2, label="predicted (probed distances)")
        ax.axvline(self.setup.print_distance_mm, color="#c33", ls="--", lw=1,
                   label=f"current {self.setup.print_distance_mm:g} mm: {self.current_ratio:.3f}")
        if self.moved:
            ax.axvline(self.best.print_distance_mm, color="#2a2", lw=1.5,
                       label=f"advised {self.best.print_distance_mm:g} mm: {self.best_ratio:.3f}")
        focus = self.setup.focal_distance_mm
        if min(x) <= focus <= max(x):
            ax.axvline(focus, color="#36c", ls=":", lw=1, label=f"ball's focus ≈ {focus:.0f} mm")
        ax.set_xlabel("print distance from the ball's centre (mm)")
        ax.set_ylabel("error ratio (lower is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def advise(setup, pictures=None, max_print_mm=None, tolerance=TOLERANCE, grid_points=GRID_POINTS,
           refine_steps=REFINE_STEPS, progress=None, placement=None):
    """Search the print distance of `setup` (camera and ball fixed) for the lowest predicted error ratio.

    Parameters:
        setup         a :class:`PhysicalSetup` (its ``print_distance_mm`` is the current distance)
        pictures      [N, R, R, 3] at the search resolution (default :func:`fixed_pictures`)
        max_print_mm  only distances whose print is at most this wide (e.g. 297 for A3 paper); the current
                      distance is always evaluated
        tolerance     the current distance is kept if its predicted ratio is within this of the best
        grid_points   distances on the coarse grid (at least 2); refine_steps: probes after it
        progress      called as ``progress(probes_done, probes_planned, distance_mm, ratio)`` after each probe
        placement     how precisely the setup will be placed (a :class:`predistort.tolerance.Tolerance` or
                      camera mm): distances are then ranked by the robust ratio
                      (:func:`predistort.tolerance.robust_ratio`: the worst over the box's axis ends of the
                      one texture made for all), each distance costing one probe per view (7 for the camera)
    Returns an :class:`Advice`. Cost: at most grid_points + refine_steps + 1 distances.
    """
    from .tolerance import Tolerance, robust_ratio
    placement = Tolerance.of(placement)
    if grid_points < 2 or refine_steps < 0:
        raise ValueError(f"advise(): grid_points must be at least 2 and refine_steps at least 0, got "
                         f"{grid_points} and {refine_steps}")
    start = time.perf_counter()
    res = min(setup.resolution, SEARCH_RESOLUTION)
    search = setup.replace(resolution=res)
    pictures = fixed_pictures(res) if pictures is None else pictures
    radius = setup.ball_diameter_mm / 2
    lo, hi = GRID_RADII[0] * radius, GRID_RADII[1] * radius
    if max_print_mm is not None:                        # the print's side grows linearly with its distance
        per_mm = setup.print_size_mm / (setup.print_distance_mm + setup.camera_distance_mm)
        hi = min(hi, max_print_mm / per_mm - setup.camera_distance_mm)
    grid = [_round_mm(d) for d in np.geomspace(lo, hi, grid_points)] if hi > lo else []
    planned = len(set(grid) | {setup.print_distance_mm}) + refine_steps
    ratios = {}                                         # distance (mm) -> predicted ratio

    def evaluate(distance):
        if distance not in ratios:
            scene = search.replace(print_distance_mm=distance).to_scene()
            if placement.exact:
                ratios[distance] = predict(probe(scene, **SEARCH_PROBE), pictures).ratio
            else:
                ratios[distance] = robust_ratio(scene, placement, pictures,
                                                lambda view: probe(view, **SEARCH_PROBE))[0]
            if progress:
                progress(len(ratios), planned, distance, ratios[distance])
        return ratios[distance]

    current = evaluate(setup.print_distance_mm)
    for distance in grid:
        evaluate(distance)
    for _ in range(refine_steps if grid else 0):
        # Bracket the lowest ratio so far: probe the (geometric) middle of the wider gap beside it.
        ordered = sorted(d for d in ratios if lo - 1e-9 <= d <= hi + 1e-9)
        i = ordered.index(min(ordered, key=ratios.get))
        gaps = [(b / a, a, b) for a, b in zip(ordered[max(i - 1, 0):i + 1], ordered[i:i + 2]) if a != b]
        if not gaps:
            break
        _, a, b = max(gaps)
        middle = _round_mm(math.sqrt(a * b))
        if middle in ratios:
            break
        evaluate(middle)
    best_ratio = min(ratios.values())
    advised = setup.print_distance_mm                   # kept when it is as good as the best (IOR 1.0 ...)
    if current > best_ratio + tolerance:
        advised = min(ratios, key=ratios.get)
    # The nearest distance (a smaller print) whose ratio is as good as the advised one's, within tolerance.
    compact = min(d for d in ratios if ratios[d] <= ratios[advised] + tolerance)
    best = setup.replace(print_distance_mm=advised)
    return Advice(setup, best, current, ratios[advised], sorted(ratios.items()),
                  round(time.perf_counter() - start, 2), len(ratios), compact, placement.to_dict())


def advise_on_paper(setup, paper, grid_points=GRID_POINTS, progress=None, placement=None):
    """The best setup whose print fits one sheet of `paper` (:func:`predistort.paper.one_sheet_mm`), and the best
    with no size limit (for tiles): ``(sheet Advice, tiles Advice)``.

    The print fills the camera's view, so its side is ``k · (camera distance + print distance)`` with ``k`` set
    by the field of view: one sheet bounds the sum of the two distances. When the camera stands where it is, the
    print's distance is searched under that bound (:func:`advise` with ``max_print_mm``); when even the nearest
    print would not fit, the camera comes closer too, but no closer than :data:`NEAREST_FOCUS_MM` to the glass
    (a phone's nearest focus): three camera distances from there to the farthest that leaves room for a print,
    the print's distance searched at each, the best kept. Raises ValueError when no print behind this ball fits
    the sheet with this lens, naming the widest lens that would."""
    from .paper import one_sheet_mm
    limit = one_sheet_mm(paper)[0]
    radius = setup.ball_diameter_mm / 2
    k = setup.print_size_mm / (setup.print_distance_mm + setup.camera_distance_mm)
    room = limit / k                                    # the largest camera + print distance that fits
    nearest_print = GRID_RADII[0] * radius * 1.05
    near_camera = min(setup.camera_distance_mm, radius + NEAREST_FOCUS_MM)
    far_camera = room - nearest_print
    if far_camera < near_camera:
        tan = math.tan(math.radians(setup.fov_deg) / 2) * limit / (k * (near_camera + nearest_print))
        fov = math.degrees(2 * math.atan(tan))
        raise ValueError(f"No print behind a {setup.ball_diameter_mm:g} mm ball fits one {paper} sheet with a "
                         f"{setup.fov_deg:g}° lens and the camera {near_camera:g} mm from the ball's centre (the "
                         f"print fills the camera's view): use a lens of at most {fov:.0f}° across the square "
                         f"picture (a {12 / tan:.0f} mm full-frame-equivalent focal length or longer; a phone's "
                         f"1× is about 26 mm, its 2× about 52 mm), or larger paper, or print on tiles (advise "
                         f"without --paper).")
    tiles = advise(setup, grid_points=grid_points, progress=progress, placement=placement)
    if setup.camera_distance_mm <= far_camera:
        cameras = [setup.camera_distance_mm]
    else:
        cameras = sorted({_round_mm(c) for c in np.geomspace(near_camera, far_camera, 3)})
    options = []
    for camera in cameras:
        start = min(setup.print_distance_mm, room - camera)
        here = setup.replace(camera_distance_mm=camera, print_distance_mm=_round_mm(max(start, nearest_print)))
        options.append(advise(here, max_print_mm=limit, grid_points=max(3, grid_points // 2), progress=progress,
                              placement=placement))
    sheet = min(options, key=lambda a: a.best_ratio)
    sheet.paper_note = paper_tradeoff(paper, sheet, tiles)
    return sheet, tiles


def paper_tradeoff(paper, sheet, tiles):
    """One paragraph (Markdown): the advice whose print fits one sheet of `paper` against the unlimited one, on
    tiles (the two Advices of :func:`advise_on_paper`)."""
    from .paper import layout
    b, t = sheet.best, tiles.best
    head = (f"**On one {paper} sheet:** the camera {b.camera_distance_mm:g} mm and the print {b.print_distance_mm:g} "
            f"mm from the ball's centre, a {b.print_size_mm:.0f} mm square print, predicted error ratio "
            f"{sheet.best_ratio:.3f}.")
    if t.print_size_mm <= b.print_size_mm + 0.5 or tiles.best_ratio >= sheet.best_ratio - 0.005:
        return head + " A larger print on tiles would gain nothing: keep the one sheet."
    plan = layout((t.print_size_mm, t.print_size_mm), paper)
    return (head + f" With no size limit (the camera {t.camera_distance_mm:g} mm away) the best print distance "
            f"is {t.print_distance_mm:g} mm, a {t.print_size_mm:.0f} mm print "
            f"on {plan.rows} × {plan.cols} {paper} tiles ({plan.pages} pages with the assembly sheet): predicted "
            f"{tiles.best_ratio:.3f}, {sheet.best_ratio - tiles.best_ratio:.3f} lower. For it: advise without "
            f"--paper, then print --paper {paper}.")
