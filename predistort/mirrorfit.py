"""Calibrate a mirror standing on its print from one photo: the camera from markers, the mirror from its outline.

A cylinder or cone mirror stands on the print, so most of the print is seen directly. The phases
(:func:`calibrate_mirror`):

1. *The chart* (:func:`mirror_chart`). ArUco markers (the ball's chart's dictionary) on a grid over the print,
   wherever the mirror does not stand, on a colour field that turns with the angle around the mirror's axis (a
   hue wheel, brighter farther out); each marker's corners on texel edges of the chart's texture, so that the
   printed black squares' edges are where the model puts them. The mirror reflects the print's near side,
   which the direct view behind its outline never shows, so inside the outline the photo differs from the
   chart seen without the mirror: the reflection cannot pass for the print behind it.
2. *The camera.* The markers seen directly (:func:`predistort.calibrate.find_markers`; those decoded in the
   reflection disagree with the others' pose and go, :func:`predistort.calibrate.consistent_markers`), the
   detector's inset undone, and ``cv2.solvePnP`` on their corners. The focal length: EXIF's when stated, else
   the one whose pose explains the corners best (a scan, then a golden-section search). Then the fine fit
   (:func:`predistort.mirrorrefine.fit_camera`): the pose and the lens fitted to points found across the
   markers' edges to a tenth of a pixel.
3. *The mirror* (:func:`fit_mirror`): its base position on the print and its radius (held near the tape
   measure's by a prior), coarse to fine, by pulling a projected outline onto an edge in the photo (the mean
   distance of its points to the edge, a distance transform; the points the photo's frame cuts off aside). A
   cylinder's outline is its black top cap's rim, sharp against anything behind it; the side's outline is not
   usable, since a mirror seen at a grazing angle shows what lies right behind it. A cone's is its convex
   outline, onto the edge of the region where the photo departs from the chart seen without the mirror (the
   print's homography, at the photo's exposure). A cylinder's then the fine fit
   (:func:`predistort.mirrorrefine.fit_rim`): the base and radius fitted to points found across the rim. A
   cone's outline puts its base 3–4 mm off, so its base is fitted again by rendering the chart in the cone
   and comparing with the photo (:func:`predistort.renderfit.fit_object`), its radius held at the tape
   measure's.
4. *The answer*: the world with the fitted camera (origin, target, up, fov, a film of the photo's aspect) and
   the fitted base and radius; everything else from the input world. The fine fit's σ decide: beyond
   :data:`REFUSE_CAMERA_MM` (the camera) or :data:`REFUSE_BASE_MM` (a cylinder's base or radius) the photo is
   refused, beyond the WARN ones a warning is added, each with a sentence saying what to change.

Measured (``bench/calibrate_mirror.py``, 10 photos rendered from setups the fit is not told, 640 × 480, noise,
JPEG): the camera 0.04–1.3 mm off, the base 0.01–0.06 mm, the radius within 0.03 mm, a pre-distortion for the
fit within 1.00–1.03 × the score of one for the true setup, 2–3 s a photo; one photo, its top cut off by the
photo's edge, refused.

Limits: one cylinder or cone mirror standing on a flat print, its axis the print's normal; a cylinder's top
must show (the camera above it), a clean edge along at least a sixth of its rim; the chart must show at least
:data:`MIN_MARKERS` markers beside the mirror, printed from the texture :func:`mirror_chart` makes (its
markers' edges on texel edges) at the print's true size; the lens's distortion is not modelled; a cone's radius
is not fitted (the tape measure's), and its base costs about 60 renders (30–60 s; 0.05 mm off on two rendered
photos, tests/test_mirrorfit.py, where its outline alone gave 3.1–3.9 mm).
"""
import dataclasses
import math
import time
from dataclasses import dataclass

import cv2
import numpy as np

from . import calibrate as ball
from .calibrate import CalibrationError, consistent_markers, find_markers, pose_from_points, undo_inset
from .objects import frame

MARKERS_ACROSS = 18         # marker slots along the print's long side
MARKER_SHARE = 0.7          # a marker's side ÷ its slot's (the rest: white quiet zone)
KEEP_OUT = 1.25             # no marker within this × the mirror's radius of its axis (its foot and shadow)
MIN_MARKERS = 4
DIFFERS = 0.12              # linear colour difference (÷ exposure) above which a pixel is the mirror's
WARN_CAMERA_MM, REFUSE_CAMERA_MM = 1.5, 4.0   # the camera's σ (mm) beyond which calibrate warns, refuses
WARN_BASE_MM, REFUSE_BASE_MM = 0.15, 0.5      # the base's (and the radius's) σ (mm) beyond which it warns, refuses
FOCAL_SCAN, FOCAL_STEPS = (8.0, 110.0), 41   # without EXIF: fields of view (°) scanned, geometrically spaced


@dataclass
class MirrorLayout:
    """The chart's markers: ``ids`` [N]; ``uv`` [N, 4, 2] their corners on the print (u across, v down), in
    ArUco's order (top left, top right, bottom right, bottom left as the texture shows them); ``world`` the
    world they are on."""
    ids: np.ndarray
    uv: np.ndarray
    world: object

    @property
    def corners(self):
        """[N, 4, 2] the corners in the print's plane (world units, across and down the print), as the glass
        ball's :class:`predistort.chart.Layout` gives them: what marker finding's board and homography take."""
        return self.uv * np.asarray(self.world.plane.size, np.float64)

    def object_points(self, ids):
        """[len(ids)·4, 3] world points of the markers `ids`' corners (world units)."""
        index = {int(i): k for k, i in enumerate(self.ids)}
        uv = np.concatenate([self.uv[index[int(i)]] for i in ids])
        return print_points(self.world, uv)


def print_points(world, uv):
    """World points [N, 3] of print coordinates `uv` [N, 2] (u across from −right, v down from +up)."""
    p = world.plane
    uv = np.asarray(uv, np.float64)
    return (np.asarray(p.center) + (uv[:, :1] - 0.5) * p.size[0] * np.asarray(p.right)
            + (0.5 - uv[:, 1:]) * p.size[1] * np.asarray(p.up))


def _mirror(world):
    mirrors = [o for o in world.objects if o.mirror and o.shape in ("cylinder", "cone")]
    if len(world.objects) != 1 or not mirrors:
        raise CalibrationError("Calibration from a photo works on one cylinder or cone mirror standing on the print "
                               f"(or on a glass ball); this setup is {world.describe_objects()}.")
    return mirrors[0]


def _foot_uv(world, solid):
    """The mirror's axis where it meets the print, and its radius, in print uv (u units of the print's width)."""
    (u, v), = world.plane.uv(np.asarray(solid.base)[None])
    return u, v, solid.radius / world.plane.size[0]


def mirror_layout(world):
    """The :class:`MirrorLayout` of `world`'s chart: a grid of slots over the print, those clear of the mirror."""
    solid = _mirror(world)
    w, h = world.plane.size
    fu, fv, _ = _foot_uv(world, solid)
    return grid_layout(world, lambda cx, cy, slot: math.hypot(cx - fu * w, cy - fv * h)
                       < KEEP_OUT * solid.radius + slot * 0.75)


def grid_layout(world, keep_out):
    """A :class:`MirrorLayout` on a grid of slots over `world`'s print: a marker in every slot whose centre
    (``cx``, ``cy``: mm from the print's top left corner, ``slot`` the slot's side) ``keep_out`` does not keep
    out. Refuses a print that leaves fewer than :data:`MIN_MARKERS`."""
    from .chart import dictionary
    w, h = world.plane.size
    slot = max(w, h) / MARKERS_ACROSS
    cols, rows = int(w // slot), int(h // slot)
    x0, y0 = (w - cols * slot) / 2, (h - rows * slot) / 2          # the grid centred on the print (mm)
    side = MARKER_SHARE * slot
    quads = []
    for r in range(rows):
        for c in range(cols):
            cx, cy = x0 + (c + 0.5) * slot, y0 + (r + 0.5) * slot          # slot centre, mm from the top left
            if keep_out(cx, cy, slot):
                continue
            a, b = cx - side / 2, cy - side / 2
            quads.append([[a, b], [a + side, b], [a + side, b + side], [a, b + side]])
    # Each corner on a texel's edge of the chart's texture: the printed black square's edges are where the model
    # puts them. Unsnapped, the texels moved each edge by up to half a texel (0.2 mm at 1024 texels across A3,
    # 0.7 px in a 640 × 480 photo): the camera from the markers' edges came out 1.4–12.6 mm off on 10 of the
    # bench's photos, 0.04–1.3 mm snapped.
    rows_, cols_ = world.texture_shape
    quads = np.round(np.array(quads, np.float64).reshape(-1, 4, 2) / np.array([w, h]) * [cols_, rows_])
    quads /= np.array([cols_, rows_])
    if len(quads) < MIN_MARKERS or len(quads) > len(dictionary().bytesList):
        raise ValueError("The object leaves no room for the chart's markers on this print: use a larger print, or "
                         "move the camera so that it sees more of the print beside the object.")
    return MirrorLayout(np.arange(len(quads)), quads, world)


def mirror_chart(world, resolution=None):
    """The chart of `world`'s mirror as a texture [rows, cols, 3] float32 in [0, 1] (module doc, phase 1), and
    its :class:`MirrorLayout`."""
    world = world if resolution is None else world.replace(resolution=resolution)
    layout = mirror_layout(world)
    fu, fv, _ = _foot_uv(world, _mirror(world))
    return draw_chart(world, layout, (fu, fv)), layout


def draw_chart(world, layout, centre_uv):
    """The chart texture [rows, cols, 3] float32 of `layout` on `world`'s print: a hue wheel around `centre_uv`
    (u, v on the print), brighter farther out, and the markers in their white quiet zones."""
    from .chart import dictionary
    rows, cols = world.texture_shape
    v, u = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
    fu, fv = centre_uv
    w, h = world.plane.size
    dx, dy = (u - fu) * w, (v - fv) * h
    angle, reach = np.arctan2(dy, dx), np.hypot(dx, dy) / max(w, h)
    hue = np.stack([np.cos(angle - k * 2 * np.pi / 3) for k in range(3)], -1)
    image = (0.45 + 0.3 * hue) * (0.6 + 0.4 * np.clip(reach * 3, 0, 1))[..., None]
    codes = dictionary()
    for marker, quad in zip(layout.ids, layout.uv):
        bits = cv2.aruco.generateImageMarker(codes, int(marker), 6).astype(np.float32) / 255     # 4×4 + border
        (a, b), (c, d) = quad[0], quad[2]
        pad = (c - a) * (1 / MARKER_SHARE - 1) / 2 * 0.8
        image[(u >= a - pad) & (u <= c + pad) & (v >= b - pad * w / h) & (v <= d + pad * w / h)] = 1.0
        inside = (u >= a) & (u < c) & (v >= b) & (v < d)
        i = ((v[inside] - b) / (d - b) * 6).astype(int).clip(0, 5)
        j = ((u[inside] - a) / (c - a) * 6).astype(int).clip(0, 5)
        image[inside] = bits[i, j][:, None]
    return image.astype(np.float32)


# -------------------------------------------------------------------------------------------------------------
# 2. The camera
# -------------------------------------------------------------------------------------------------------------
def _golden(f, lo, hi, steps=30):
    """The x in [lo, hi] where the unimodal f is least (golden-section search)."""
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def fit_camera(world, photo, layout):
    """``(origin, rotation (left, up, forward columns), tan_x, rms px, ids, corners)`` from the chart's markers:
    the markers used and their corners [N, 4, 2] with the detector's inset undone."""
    ids, corners = find_markers(photo, layout)
    if len(ids) < MIN_MARKERS:
        raise CalibrationError(f"Only {len(ids)} of the chart's markers were found beside the mirror: step back "
                               f"until more of the print shows around it, at least {MIN_MARKERS} markers whole.")
    size = photo.size
    if photo.focal_35mm:
        tan_x = ball.tan_half_fov(photo.focal_35mm, *size)
        ids, corners = consistent_markers(layout, ids, corners, tan_x, size)
    else:
        def median_error(t):                        # robust: markers decoded in the reflection are outliers
            chosen = consistent_markers(layout, ids, corners, t, size)
            origin, rotation, _ = pose_from_points(layout.object_points(chosen[0]), chosen[1], t, size)
            projected = _project(layout.object_points(ids), origin, rotation, t, size)
            return float(np.median(np.linalg.norm(projected - corners.reshape(-1, 2), axis=1)))

        def rms(t, chosen):
            fixed, _ = undo_inset(layout, chosen[0], chosen[1], t, size)
            return pose_from_points(layout.object_points(chosen[0]), fixed, t, size)[2]
        scan = np.geomspace(*(math.tan(math.radians(d / 2)) for d in FOCAL_SCAN), FOCAL_STEPS)
        best = int(np.argmin([median_error(t) for t in scan]))
        ids, corners = consistent_markers(layout, ids, corners, scan[best], size)
        tan_x = _golden(lambda t: rms(t, (ids, corners)), scan[max(best - 1, 0)], scan[min(best + 1, len(scan) - 1)])
    corners, _ = undo_inset(layout, ids, corners, tan_x, size)
    origin, rotation, rms_px = pose_from_points(layout.object_points(ids), corners, tan_x, size)
    return origin, rotation, tan_x, rms_px, ids, corners


def _homography(world, chart_shape, camera, size):
    """The homography [3, 3] from the chart texture's pixels (centres at integers) to the photo's."""
    rows, cols = chart_shape[:2]
    corners_uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
    src = (corners_uv * [cols, rows] - 0.5).astype(np.float32)
    dst = _project(print_points(world, corners_uv), *camera, size).astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst)


# -------------------------------------------------------------------------------------------------------------
# 3. The mirror
# -------------------------------------------------------------------------------------------------------------
def _project(points, origin, rotation, tan_x, size):
    """Photo pixels [N, 2] (pixel centres at integers) of world `points` [N, 3]."""
    K = ball.intrinsics(tan_x, *size)
    rel = (np.asarray(points) - origin) @ rotation                       # (left, up, forward) coordinates
    cam = np.stack([-rel[:, 0], -rel[:, 1], rel[:, 2]], 1)               # OpenCV: x right, y down, z forward
    return (cam[:, :2] / cam[:, 2:]) * K[0, 0] + K[:2, 2]


def _outline(solid, camera, size, samples=720):
    """Points [M, 2] along the convex outline of `solid` as the camera sees it, about half a pixel apart."""
    hull = cv2.convexHull(_project(solid.points(96), *camera, size).astype(np.float32))[:, 0].astype(np.float64)
    closed = np.concatenate([hull, hull[:1]])
    lengths = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    t = np.linspace(0, lengths.sum(), samples, endpoint=False)
    at = np.searchsorted(np.cumsum(lengths), t, side="right")
    start = np.concatenate([[0], np.cumsum(lengths)])[at]
    return closed[at] + (closed[at + 1] - closed[at]) * ((t - start) / lengths[at].clip(1e-9))[:, None]


def differs(world, photo, chart, camera):
    """``(mask [H, W] bool, white)``: where the photo departs from the chart as the camera sees it without the
    mirror (the mirror), at the photo's exposure (a gain per colour by least squares over the print), and the
    photo's brightness of white paper."""
    H = _homography(world, chart.shape, camera, photo.size)
    width, height = photo.size
    seen = cv2.warpPerspective(chart, H, (width, height), flags=cv2.INTER_LINEAR, borderValue=(1, 1, 1))
    on_print = cv2.warpPerspective(np.ones(chart.shape[:2], np.float32), H, (width, height)) > 0.5
    linear = photo.linear_full
    gain = (linear[on_print] * seen[on_print]).sum(0) / (seen[on_print] ** 2).sum(0).clip(1e-9)
    diff = np.abs(linear - seen * gain).sum(-1) / gain.mean()
    mask = diff > 3 * DIFFERS                  # beyond the print: the white room, as bright as white paper
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8)).astype(bool)
    return mask, float(gain.mean())


def _cap_outline(solid, camera, size, samples=720):
    """Points [M, 2] of the cylinder's top rim (a circle at its height) as the camera sees it."""
    u, v, a = frame(solid.axis)
    t = np.linspace(0, 2 * np.pi, samples, endpoint=False)[:, None]
    rim = np.asarray(solid.base) + solid.height * a + solid.radius * (np.cos(t) * u + np.sin(t) * v)
    return _project(rim, *camera, size)


def dark(photo, chart_white):
    """[H, W] bool: pixels darker than a fifth of white paper's brightness in the photo (a black cap, markers)."""
    return photo.linear_full.mean(-1) < 0.2 * chart_white


def fit_mirror(world, solid, mask, camera, size, black=None):
    """``(base, radius, mean edge distance px)``: the mirror's base (world) and radius, from the nominal, coarse
    to fine, the radius held by a prior (a pixel's worth per 1 % off the tape measure's).

    A cylinder: its black top cap's rim (`black`: the photo's dark pixels) is pulled onto the edge of the dark
    region it lies on; the cap is sharp against anything, while the side's outline is not (a mirror seen at a
    grazing angle shows what lies right behind it). A cone: its convex outline onto the edge of `mask`, the
    region where the photo departs from the chart."""
    cylinder = solid.shape == "cylinder" and black is not None
    region_of = black if cylinder else mask
    outline = (lambda s: _cap_outline(s, camera, size)) if cylinder else (lambda s: _outline(s, camera, size))
    nominal = outline(solid)
    guess = np.zeros(region_of.shape, np.uint8)
    cv2.fillPoly(guess, [cv2.convexHull(nominal.astype(np.int32))], 1)
    count, labels = cv2.connectedComponents(region_of.astype(np.uint8))
    overlap = np.bincount(labels[guess.astype(bool)], minlength=count)
    overlap[0] = 0
    if count < 2 or overlap.max() < 0.2 * guess.sum():
        raise CalibrationError("The mirror was not found where the setup puts it on the chart: stand it on the "
                               "print where the setup says (its circle on the chart) and take the photo again.")
    region = (labels == int(np.argmax(overlap))).astype(np.uint8)
    right, up = np.asarray(world.plane.right), np.asarray(world.plane.up)

    def moved(p):
        return dataclasses.replace(solid, base=tuple(np.asarray(solid.base) + p[0] * right + p[1] * up),
                                   radius=solid.radius * (1 + p[2]))

    def search(distance, best, steps):
        def cost(p):
            points = outline(moved(p))
            inside = ((points >= 1) & (points <= np.array(size) - 2)).all(1)      # the frame cuts the rest off
            if inside.mean() < 0.25:
                return 50.0 + 100 * p[2] ** 2
            points = points[inside]
            d = cv2.remap(distance, points[:, 0].astype(np.float32), points[:, 1].astype(np.float32),
                          cv2.INTER_LINEAR, borderValue=50.0)
            return float(d.mean()) + 100 * p[2] ** 2
        value = cost(best)
        for step in steps:                                         # world units (mm), and radius ÷ 100
            improved = True
            while improved:
                improved = False
                for axis in range(3):
                    for sign in (-1, 1):
                        trial = best.copy()
                        trial[axis] += sign * (step if axis < 2 else step / 100)
                        v = cost(trial)
                        if v < value - 1e-9:
                            best, value, improved = trial, v, True
        return best, value
    edge = region - cv2.erode(region, np.ones((3, 3), np.uint8))
    distance = cv2.distanceTransform((1 - edge).astype(np.uint8), cv2.DIST_L2, 5)
    best, value = search(distance, np.zeros(3), (8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.12, 0.06, 0.03))
    base = np.asarray(solid.base) + best[0] * right + best[1] * up
    return tuple(float(x) for x in base), solid.radius * (1 + best[2]), value


@dataclass
class MirrorCalibration:
    """``scene`` the fitted world; ``camera_px`` the markers' residual (px: the edges' robust RMS, or the corners'
    RMS after the coarse fit); ``markers`` found; ``edge_px`` the rim's (the outline's) residual in the photo;
    ``moved_mm`` how far the base moved from the nominal; ``radius_mm``; ``fov``; ``seconds``; the fine fit's
    σ (mm; None after the coarse fit alone): ``sigma_camera_mm`` of the camera's position (from the markers'
    edges), ``sigma_base_mm`` of the base and ``sigma_radius_mm`` (from the rim, the camera taken as fitted);
    ``rim_degrees`` of the rim's circle read cleanly; ``warnings``: sentences saying what to change."""
    scene: object
    camera_px: float
    markers: int
    edge_px: float
    moved_mm: float
    radius_mm: float
    fov: float
    seconds: float
    sigma_camera_mm: float = None
    sigma_base_mm: float = None
    sigma_radius_mm: float = None
    rim_degrees: float = None
    warnings: list = dataclasses.field(default_factory=list)

    def to_markdown(self):
        sigma = (f" (± {self.sigma_camera_mm:.2f} mm)" if self.sigma_camera_mm is not None else "")
        rim = (f", ± {self.sigma_base_mm:.2f} mm from {self.rim_degrees:.0f}° of its rim"
               if self.sigma_base_mm is not None else "")
        text = (f"Camera from {self.markers} markers ({self.camera_px:.2f} px){sigma}, field of view "
                f"{self.fov:.2f}°; the mirror's base moved {self.moved_mm:.2f} mm from the setup's{rim}, radius "
                f"{self.radius_mm:.2f} mm (rim within {self.edge_px:.2f} px of the photo's). {self.seconds:.1f} s.")
        return " ".join([text] + [f"Warning: {w}" for w in self.warnings])


def _checked(fit, cut, warnings):
    """Refuse (CalibrationError) a fine fit whose σ exceed :data:`REFUSE_CAMERA_MM` or :data:`REFUSE_BASE_MM`,
    and add a warning to `warnings` for those beyond the WARN ones; `cut` is the share of the rim outside the
    photo. Each sentence says what to change."""
    rim = (f"only {fit.get('rim_degrees', 0):.0f}° of the mirror's black top's rim shows a clean edge"
           + (f" (the photo's edge cuts off {cut:.0%} of it)" if cut > 0.02 else ""))
    retake = ("take the photo again with the whole black top in the picture, seen from above, against the print "
              "or a plain background")
    base, camera = fit["sigma_base_mm"], fit["sigma_camera_mm"]
    if base is not None and (base > REFUSE_BASE_MM or fit["sigma_radius_mm"] > REFUSE_BASE_MM):
        raise CalibrationError(f"The mirror cannot be placed within {REFUSE_BASE_MM:g} mm from this photo: {rim}; "
                               f"{retake}.")
    if camera > REFUSE_CAMERA_MM:
        raise CalibrationError(f"The camera's position is known only to {camera:.1f} mm from the {fit['markers']} "
                               f"markers seen: step back or turn the camera so that more of the print's markers "
                               f"show around the mirror, and take the photo again.")
    if base is not None and (base > WARN_BASE_MM or fit["sigma_radius_mm"] > WARN_BASE_MM):
        warnings.append(f"the mirror's base is known only to {base:.2f} mm ({rim}); for a sharper pre-distortion, "
                        f"{retake}.")
    if camera > WARN_CAMERA_MM:
        warnings.append(f"the camera's position is known only to {camera:.1f} mm (from {fit['markers']} markers); "
                        f"for a sharper pre-distortion, step back or turn the camera so that more markers show.")


def _rim_cut(solid, camera, size):
    """The share of a cylinder's top rim that projects outside the photo."""
    rim = _cap_outline(solid, camera, size, samples=360)
    return float(1 - ((rim >= 0) & (rim <= np.array(size) - 1)).all(1).mean())


def calibrate_mirror(world, source, focal_mm=None, fine=True):
    """Fit the camera and the mirror of `world` (a cylinder or cone mirror on its print) to a photo of its chart
    (:func:`mirror_chart`): a :class:`MirrorCalibration` (module doc). `fine`: False stops at the coarse fit
    (the markers' corners, the cap's outline by a threshold: 1–4 mm and 0.2–1 mm off on the bench's photos,
    kept for comparison). Raises CalibrationError with what to do."""
    from . import mirrorrefine as fine_fit
    start = time.perf_counter()
    solid = _mirror(world)
    photo = ball.read_photo(source, focal_mm)
    chart, layout = mirror_chart(world, resolution=min(2048, max(world.resolution, 1024)))
    origin, rotation, tan_x, rms, ids, corners = fit_camera(world, photo, layout)
    camera = (origin, rotation, tan_x)
    mask, white = differs(world, photo, chart, camera)
    mm, found, cut = world.units_mm, {"markers": len(ids), "sigma_base_mm": None, "sigma_radius_mm": None}, 0.0
    luminance = photo.linear_full.mean(-1) / white
    if fine:
        edges = fine_fit.fit_camera(layout.object_points(ids), corners, camera, luminance, photo.size,
                                    None if photo.focal_35mm is None else tan_x)
        camera, rms = edges["camera"], edges["marker_px"]
        found["sigma_camera_mm"] = float(np.linalg.norm(edges["sigma_camera"])) * mm
        if solid.shape == "cone":
            mask, white = differs(world, photo, chart, camera)
    base, radius, edge = fit_mirror(world, solid, mask, camera, photo.size, dark(photo, white))
    if fine and solid.shape == "cylinder":
        axis = np.asarray(solid.axis, np.float64) / np.linalg.norm(solid.axis)
        cut = _rim_cut(dataclasses.replace(solid, base=base, radius=radius), camera, photo.size)
        rim = fine_fit.fit_rim(fine_fit.RimModel(np.asarray(base) + solid.height * axis, axis, radius),
                               world.plane.right, world.plane.up, camera, luminance, photo.size, solid.radius,
                               fine_fit.TAPE_MM / mm)
        if rim is None:
            raise CalibrationError("The mirror's black top shows too little of a clean rim in this photo to place "
                                   "the mirror" + (f" (the photo's edge cuts off {cut:.0%} of it)" if cut > 0.02
                                                   else "") + ": take the photo again with the whole black top "
                                   "in the picture, seen from above, against the print or a plain background.")
        base = tuple(float(x) for x in np.asarray(base) + rim["shift"][0] * np.asarray(world.plane.right)
                     + rim["shift"][1] * np.asarray(world.plane.up))
        radius, edge = rim["radius"], rim["rim_px"]
        found.update(sigma_base_mm=float(np.linalg.norm(rim["sigma_base"])) * mm,
                     sigma_radius_mm=rim["sigma_radius"] * mm, rim_degrees=rim["rim_degrees"])
    warnings = []
    if fine:
        _checked(found, cut, warnings)
    if fine and solid.shape == "cone":
        # A cone's outline against the chart puts its base 3-4 mm off: its base is fitted again by rendering the
        # chart in its mirror (predistort.renderfit), its radius held at the tape measure's.
        from .renderfit import NothingToCompare, fit_object
        start_cone = dataclasses.replace(solid, base=base)
        try:
            cone, _ = fit_object(with_camera(world, camera, photo.size), start_cone, chart, photo, mask)
        except NothingToCompare:
            raise CalibrationError("The cone hardly shows against the chart in this photo: photograph it from "
                                   "where the camera goes, the whole cone in the picture.") from None
        base, radius = cone.base, solid.radius
    elif solid.shape == "cone":
        warnings.append("a cone's base and radius come from its outline against the chart, which is not accurate "
                        "(base and radius up to 5 mm off on rendered photos): stand the cone exactly on its "
                        "printed circle and check the written base and radius against it.")
    fitted = dataclasses.replace(solid, base=base, radius=radius)
    scene = with_camera(world, camera, photo.size).replace(objects=(fitted,))
    fov = scene.fov
    moved = float(np.linalg.norm(np.subtract(base, solid.base))) * mm
    return MirrorCalibration(scene, rms, len(ids), edge, moved, radius * mm, fov,
                             round(time.perf_counter() - start, 2), found.get("sigma_camera_mm"),
                             found["sigma_base_mm"], found["sigma_radius_mm"], found.get("rim_degrees"), warnings)


def with_camera(world, camera, size):
    """`world` seen by the fitted `camera` ``(origin, rotation, tan_x)``: its origin, aim (along the fitted
    forward, as far as the world's target was), up, field of view, and a film of the photo's aspect (`size`)."""
    origin, rotation, tan_x = camera
    forward = rotation[:, 2]
    depth = float((np.asarray(world.camera_target) - origin) @ forward)
    film = ball.film_for(world, size)
    return world.replace(camera_origin=tuple(float(v) for v in origin),
                         camera_target=tuple(float(v) for v in origin + forward * max(depth, 1.0)),
                         camera_up=tuple(float(v) for v in rotation[:, 1]), fov=math.degrees(2 * math.atan(tan_x)),
                         film_width=film[0], film_height=film[1])


def write_mirror_chart(world, out_dir):
    """Write ``chart.png`` and ``chart.pdf`` (at the print's true size, the mirror's circle marked) for `world`'s
    mirror; returns both paths."""
    from pathlib import Path
    from .printout import write_world_print
    out = Path(out_dir)
    chart, _ = mirror_chart(world, resolution=min(2048, max(world.resolution, 1024)))
    pdf, png = write_world_print(chart, world, out, title="predistort: calibration chart (stand the mirror on its "
                                                          "circle)")
    return png.rename(out / "chart.png"), pdf.rename(out / "chart.pdf")
