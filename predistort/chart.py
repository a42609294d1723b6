"""The calibration chart: ArUco markers where the camera sees the print directly, a smooth colour field behind the ball.

Printed in place of the picture and photographed through the ball, the chart lets :mod:`predistort.calibrate`
find where everything is:

- *Markers* (OpenCV's ArUco, dictionary :data:`DICTIONARY`) on the part of the print the nominal camera sees
  directly: outside the ball's shadow (the points of the print whose line of sight to the camera crosses
  the ball, the ball :data:`SHADOW_MARGIN` wider than it is) and outside what the ball shows of the print
  (the landing points of the rays through it up to :data:`IMPACT_SHOWN` of its radius). Their corners in the
  photo give the camera's pose against the print (PnP). They sit on a grid of square slots; each slot is
  the marker (6 × 6 cells: the 4 × 4 code and its black border) in a white quiet zone one cell wide. Every
  slot that fits gets a marker, in the view or not, along every edge of the print and up to the ball's
  shadow, so that a camera moved or turned still sees some. The grid is the coarsest of :data:`GRIDS` slots
  per side that leaves at least :data:`MIN_VISIBLE` whole markers (quiet zone and all, clear of the ball) in
  the view of :data:`ROBUST` of the *envelope's* cameras (:data:`ENVELOPE`: the nominal camera moved
  20 mm along each axis, turned 5° in yaw or pitch, its lens 5° narrower, the ball 5 mm off sideways: 350
  cameras, :func:`robustness`), else the most robust; the nominal camera itself must see
  :data:`MIN_VISIBLE`. A tightly framed setup (the ball filling most of the photo: the camera 100 mm from a
  90 mm ball) gets small markers, so that the strips beside the ball hold whole ones; a marker cell is at least
  :data:`MIN_CELL_TEXELS` texels and :data:`MIN_CELL_VIEW` of the view's width (4 pixels of a 640-pixel photo).
  Measured over photos drawn from the envelope: ``bench/chart_envelope.py``.
- *A colour field* everywhere else (:func:`field_colour`): smooth and one-to-one, so the refraction cannot
  make it ambiguous and every small move of the ball changes the colours it shows. Red and green are the
  print's x and y through ``x / sqrt(ρ² + a²)`` (ρ the distance from the print's centre, a = :data:`CORE`
  ball radii): linear near the centre — which a ball far from its focus shows strongly demagnified, so the
  field is steepest there — and the direction's cosine and sine far out; blue falls with ρ.

:func:`layout` gives every marker's id and corners in world coordinates (the print's plane z = 0, x right,
y down the picture, as in :mod:`predistort.scene`), computed from the scene alone, so the fit knows where
each corner is. :func:`make_chart` draws the texture at the scene's resolution (each texel the mean of
:data:`SUPERSAMPLE`² samples: marker edges are antialiased, not snapped); :func:`write_chart` writes
``chart.png`` and ``chart.pdf`` at the print's true size (:mod:`predistort.printout`).

Limits: the scene must leave room for :data:`MIN_VISIBLE` markers of at least :data:`MIN_CELL_TEXELS` texels
a cell in its view (a ball that fills the view does not: move the camera back or widen its field of view);
at most as many markers as the dictionary has (250).
"""
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from . import trace
from .target import camera_frame, film_size

DICTIONARY = cv2.aruco.DICT_4X4_250     # OpenCV's predefined ArUco dictionary of the chart
MARKER_CELLS = 6                        # a marker's side in cells: the 4×4 code and its one-cell black border
SLOT_CELLS = 8                          # a slot: the marker and a one-cell white quiet zone around it
GRIDS = (6, 7, 8, 9, 10, 11, 12, 14, 16, 18, 20)   # slots per side of the print, tried coarsest first
MIN_VISIBLE = 4                         # markers that must lie wholly inside the nominal camera's view ...
ROBUST = 0.95                           # ... and inside the view of this share of the envelope's cameras
ENVELOPE = dict(camera_mm=20.0, turn_deg=5.0, ball_mm=5.0, lens_deg=5.0)   # the photo's setup off the scene's
MIN_CELL_TEXELS = 1.5                   # a marker cell is at least this many texels ...
MIN_CELL_VIEW = 1 / 160                 # ... and this share of the nominal view's width (4 px of a 640 px photo)
SHADOW_MARGIN = 1.04                    # the ball's shadow is taken this much wider than the ball
IMPACT_SHOWN = 0.85                     # what the ball shows of the print: its rays up to this impact parameter
CORE = 1.0 / 3.0                        # the colour field's linear core, in ball radii
SUPERSAMPLE = 4                         # samples per texel and axis when drawing


@dataclass(frozen=True)
class Layout:
    """Where the chart's markers are. ``ids`` [N] int; ``corners`` [N, 4, 2] world (x, y) on the print
    (z = 0), in ArUco's order: top left, top right, bottom right, bottom left as the picture shows them;
    ``cell`` a marker cell's side and ``slots`` the grid's slots per side."""
    ids: np.ndarray
    corners: np.ndarray
    cell: float
    slots: int

    def object_points(self, ids):
        """[len(ids)·4, 3] world corners (z = 0) of the markers `ids`, four per marker in ArUco's order."""
        index = {int(i): k for k, i in enumerate(self.ids)}
        xy = np.concatenate([self.corners[index[int(i)]] for i in ids])
        return np.concatenate([xy, np.zeros((len(xy), 1))], 1)

    def covers(self, x, y, grow=0.0):
        """[N] bool: world points (x, y) inside a marker's slot (quiet zone included), grown by `grow`."""
        x, y, inside = np.asarray(x), np.asarray(y), np.zeros(np.shape(x), bool)
        pad = self.cell * (SLOT_CELLS - MARKER_CELLS) / 2 + grow
        for quad in self.corners:
            (x0, y0), (x1, y1) = quad[0] - pad, quad[2] + pad
            inside |= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        return inside


def dictionary():
    """The chart's ArUco dictionary (:data:`DICTIONARY`)."""
    return cv2.aruco.getPredefinedDictionary(DICTIONARY)


def field_colour(x, y, config):
    """The colour field at world points (x, y) [...] of the print: [..., 3] in [0.1, 0.9] (module doc)."""
    core = CORE * config.sphere_radius
    rho = np.hypot(x, y)
    scale = np.sqrt(rho ** 2 + core ** 2)
    return np.stack([0.5 + 0.4 * x / scale, 0.5 + 0.4 * y / scale,
                     0.1 + 0.8 * core / (core + rho)], -1)


def _texel_xy(config, samples=1):
    """World (x, y) [R·samples, R·samples] of the texture's (sub)texel centres (row = v = y, column = u = x)."""
    n = config.resolution * samples
    c = ((np.arange(n) + 0.5) / n * 2 - 1) * config.plane_scale
    return np.meshgrid(c, c)                      # x varies along columns, y along rows


def _occupied(config):
    """[R, R] bool: texels that the nominal camera sees through the ball, or that the ball hides from it."""
    res, ps = config.resolution, config.plane_scale
    x, y = _texel_xy(config)
    # The ball's shadow: the segment from the camera to the texel passes within SHADOW_MARGIN·r of the centre.
    origin, centre = np.array(config.camera_origin), np.array(config.sphere_center)
    points = np.stack([x, y, np.zeros_like(x)], -1)
    seg = points - origin
    along = np.clip(((centre - origin) * seg).sum(-1) / (seg * seg).sum(-1), 0, 1)
    gap = np.linalg.norm(origin + along[..., None] * seg - centre, axis=-1)
    busy = gap < SHADOW_MARGIN * config.sphere_radius
    # What the ball shows: landing points of its rays, on a film of two rays per texel across.
    width, height = film_size(config)
    n = 2 * res
    cols, rows = n, max(2, round(n * height / width))
    t, s = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
    o, left, up, forward = camera_frame(config)
    rotation = torch.from_numpy(np.stack([left, up, forward], 1))
    d = trace.film_directions(rotation, config.fov, (width, height), torch.from_numpy(s.ravel()),
                              torch.from_numpy(t.ravel()))
    hit = trace.trace(torch.from_numpy(o), d, torch.tensor(centre), config.sphere_radius, config.sphere_ior, ps)
    shown = hit["hit"] & (hit["impact"] < IMPACT_SHOWN) & hit["on_print"]
    i = (hit["v"][shown].numpy() * res).astype(int).clip(0, res - 1)
    j = (hit["u"][shown].numpy() * res).astype(int).clip(0, res - 1)
    busy[i, j] = True
    return busy


def _envelope_cameras(config):
    """The cameras of :data:`ENVELOPE` about `config`'s (module doc): ``(origins [K, 3], frames [K, 3, 3] (rows
    left, up, forward), tan_x [K], tan_y [K], ball centres [K, 3])``, the nominal camera first; deterministic."""
    o, left, up, forward = camera_frame(config)
    width, height = film_size(config)
    unit = getattr(config, "units_mm", 1.0)
    step, turn, ball = ENVELOPE["camera_mm"] / unit, math.radians(ENVELOPE["turn_deg"]), ENVELOPE["ball_mm"] / unit
    frame = np.stack([left, up, forward])
    moves = [np.zeros(3), *(sign * step * axis for axis in np.eye(3) for sign in (1, -1))]
    turns = [(0, 0), (turn, 0), (-turn, 0), (0, turn), (0, -turn)]            # (yaw about up, pitch about left)
    balls = [np.zeros(3), *(sign * ball * axis for axis in np.eye(3)[:2] for sign in (1, -1))]
    lenses = [config.fov, max(1.0, config.fov - ENVELOPE["lens_deg"])]
    origins, frames, tans, centres = [], [], [], []
    for move in moves:
        for yaw, pitch in turns:
            # Turned about its own up (yaw), then its own left (pitch): Rodrigues on the frame's rows.
            f = np.array(frame)
            for angle, axis in ((yaw, 1), (pitch, 0)):
                k = f[axis]
                f = np.stack([v * math.cos(angle) + np.cross(k, v) * math.sin(angle) + k * (k @ v) *
                              (1 - math.cos(angle)) for v in f])
            for fov in lenses:
                for shift in balls:
                    origins.append(o + move)
                    frames.append(f)
                    tans.append(math.tan(math.radians(fov) / 2))
                    centres.append(np.asarray(config.sphere_center, dtype=np.float64) + shift)
    tans = np.array(tans)
    return np.array(origins), np.array(frames), tans, tans * height / width, np.array(centres)


def _seen(config, quads, grow, cameras):
    """[K, N] bool: for each camera of `cameras` (:func:`_envelope_cameras`), the markers `quads` [N, 4, 2]
    whose slots (each quad grown by `grow` world units a side: the quiet zone) lie wholly in its film and
    wholly clear of its ball (no corner's line of sight passes within the ball's radius of its centre)."""
    origins, frames, tan_x, tan_y, centres = cameras
    middle = quads.mean(1, keepdims=True)
    half = np.abs(quads - middle).max((1, 2), keepdims=True)
    grown = middle + (quads - middle) * (half + grow) / half
    points = np.concatenate([grown, np.zeros(grown.shape[:-1] + (1,))], -1).reshape(-1, 3)      # [N·4, 3]
    p = points[None] - origins[:, None]                                                          # [K, N·4, 3]
    camera = np.einsum("kij,knj->kni", frames, p)                                               # left, up, fwd
    z = camera[..., 2]
    sx = -camera[..., 0] / (z * tan_x[:, None])
    sy = -camera[..., 1] / (z * tan_y[:, None])
    inside = (z > 0) & (np.abs(sx) < 1) & (np.abs(sy) < 1)
    to_ball = centres - origins                                                                 # [K, 3]
    along = np.clip(np.einsum("kj,knj->kn", to_ball, p) / (p * p).sum(-1), 0, 1)
    gap = np.linalg.norm(origins[:, None] + along[..., None] * p - centres[:, None], axis=-1)
    clear = gap > config.sphere_radius
    k = len(origins)
    return (inside & clear).reshape(k, -1, 4).all(-1)


def _in_view(config, xy):
    """[N] bool: world points (x, y) [N, 4, 2] (marker corners) that the nominal camera's film shows, all four."""
    o, left, up, forward = camera_frame(config)
    width, height = film_size(config)
    tan_x = math.tan(math.radians(config.fov) / 2)
    p = np.concatenate([xy, np.zeros(xy.shape[:-1] + (1,))], -1) - o
    z = p @ forward
    sx, sy = -(p @ left) / (z * tan_x), -(p @ up) / (z * tan_x * height / width)
    return ((z > 0) & (np.abs(sx) < 0.98) & (np.abs(sy) < 0.98)).all(-1)


def _grid(config, busy, slots):
    """The markers of a grid of `slots` per side: ``(quads [N, 4, 2], cell)``, a marker in every slot that no
    busy texel's centre lies in."""
    ps = config.plane_scale
    cell = 2 * ps / (slots * SLOT_CELLS)
    x, y = _texel_xy(config)
    side = SLOT_CELLS * cell
    slot_of = (np.floor((y + ps) / side).clip(0, slots - 1) * slots + np.floor((x + ps) / side).clip(0, slots - 1))
    taken = np.bincount(slot_of.astype(int).ravel(), weights=busy.ravel(), minlength=slots * slots)
    quads = []
    for k in np.flatnonzero(taken == 0):
        a, b = -ps + (k % slots) * side + cell, -ps + (k // slots) * side + cell
        m = MARKER_CELLS * cell                             # the marker, one cell inside its slot
        quads.append([[a, b], [a + m, b], [a + m, b + m], [a, b + m]])
    return np.array(quads, dtype=np.float64).reshape(-1, 4, 2), cell


def _view_width(config):
    """The width of the nominal camera's view at the print (world units, along its axis)."""
    o, _, _, forward = camera_frame(config)
    distance = abs(o[2] / forward[2]) if abs(forward[2]) > 1e-9 else np.linalg.norm(o)
    return 2 * distance * math.tan(math.radians(config.fov) / 2)


def robustness(config, layout_):
    """The share of :data:`ENVELOPE`'s cameras about `config`'s that see at least :data:`MIN_VISIBLE` of
    `layout_`'s markers whole (quiet zone and all, clear of the ball), and how many the nominal camera sees."""
    seen = _seen(config, layout_.corners, layout_.cell, _envelope_cameras(config)).sum(1)
    return float((seen >= MIN_VISIBLE).mean()), int(seen[0])


def framing_note(config):
    """A sentence for a scene whose chart is not robust (fewer than :data:`ROBUST` of the envelope's cameras see
    :data:`MIN_VISIBLE` whole markers: the ball fills most of the picture), saying what to do; None otherwise."""
    share, _ = robustness(config, layout(config))
    if share >= ROBUST:
        return None
    return (f"The ball fills most of this camera's picture: only {share:.0%} of photos taken within "
            f"{ENVELOPE['camera_mm']:g} mm and {ENVELOPE['turn_deg']:g}° of the camera's place keep "
            f"{MIN_VISIBLE} whole markers beside it, so take the photo from exactly there with the setup's lens, "
            f"or move the camera farther from the ball or widen its field of view and make the chart again.")


@functools.lru_cache(maxsize=8)
def layout(config):
    """The chart's :class:`Layout` for scene `config` (module doc). Raises ValueError, with what to change, for
    a scene that leaves no room for :data:`MIN_VISIBLE` markers in the camera's view."""
    res, ps = config.resolution, config.plane_scale
    busy = _occupied(config)
    limit = len(dictionary().bytesList)                 # ids the dictionary has
    cameras = _envelope_cameras(config)
    view = _view_width(config)
    candidates = []                                     # (share, −slots, layout) of the grids that fit
    for slots in GRIDS:
        cell = 2 * ps / (slots * SLOT_CELLS)
        if cell / (2 * ps / res) < MIN_CELL_TEXELS or cell < MIN_CELL_VIEW * view:
            break
        quads, cell = _grid(config, busy, slots)
        if not len(quads) or len(quads) > limit:
            continue
        seen = _seen(config, quads, cell, cameras).sum(1)
        if seen[0] < MIN_VISIBLE:                       # the nominal camera itself sees too few
            continue
        share = float((seen >= MIN_VISIBLE).mean())
        candidates.append((share, -slots, Layout(ids=np.arange(len(quads)), corners=quads, cell=cell, slots=slots)))
        if share >= ROBUST:
            break
    # The coarsest grid robust enough (the loop stopped there), else the most robust (the coarser of equals).
    best = max(candidates, key=lambda c: c[:2], default=None)
    if best is None:
        raise ValueError("This scene leaves no room for the chart's markers beside the ball: the ball fills the "
                         "camera's view. Move the camera farther from the ball or widen its field of view.")
    return best[2]


def make_chart(config, layout_=None):
    """The chart as a texture for scene `config`: [R, R, 3] float32 in [0, 1] (R = ``config.resolution``)."""
    if layout_ is None or layout_ is layout(config):
        return _chart(config).copy()
    return _draw(config, layout_)


@functools.lru_cache(maxsize=4)
def _chart(config):
    return _draw(config, layout(config))


def _draw(config, layout_):
    """Draw the chart of `layout_` (module doc)."""
    samples = SUPERSAMPLE
    x, y = _texel_xy(config, samples)
    image = field_colour(x, y, config)
    codes = dictionary()
    for marker_id, quad in zip(layout_.ids, layout_.corners):
        # The slot white, then the marker's cells (generateImageMarker: one pixel per cell, 0 black, 255 white).
        bits = cv2.aruco.generateImageMarker(codes, int(marker_id), MARKER_CELLS).astype(np.float32) / 255
        (x0, y0), cell = quad[0], layout_.cell
        qi = np.floor((y - y0) / cell).astype(int)
        qj = np.floor((x - x0) / cell).astype(int)
        slot = (qi >= -1) & (qi <= MARKER_CELLS) & (qj >= -1) & (qj <= MARKER_CELLS)
        image[slot] = 1.0
        inside = (qi >= 0) & (qi < MARKER_CELLS) & (qj >= 0) & (qj < MARKER_CELLS)
        image[inside] = bits[qi[inside], qj[inside], None]
    res = config.resolution
    return image.reshape(res, samples, res, samples, 3).mean((1, 3)).astype(np.float32)


def write_chart(config, out_dir):
    """Write ``chart.png`` (the texture at the scene's resolution) and ``chart.pdf`` (the print at its true
    size, with the setup in its margins) into `out_dir`; returns both paths. The PDF needs an on-axis scene
    (:class:`predistort.physical.PhysicalSetup`), as every print does."""
    from PIL import Image
    from .physical import PhysicalSetup
    from .printout import write_pdf

    texture = make_chart(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "chart.png"
    Image.fromarray((texture * 255 + 0.5).astype(np.uint8), "RGB").save(png)
    setup = PhysicalSetup.from_scene(config)
    pdf = write_pdf(texture, setup, out / "chart.pdf", title="predistort: calibration chart")
    return png, pdf
