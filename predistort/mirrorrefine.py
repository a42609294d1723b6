"""A mirror's fine fit: the camera from the chart's markers' edges, a cylinder's base and radius from its cap's rim.

Each edge is found to a tenth of a pixel.

:mod:`predistort.mirrorfit` finds the camera from the markers' corners and the mirror coarsely; this module
refines both, in linear light (the photo's brightness ÷ white paper's), where a blurred step between two
levels crosses halfway between them at the true edge whatever the blur (a symmetric one) — a threshold at a
fixed level, or ArUco's thresholded contours in sRGB, move it by a fraction of the blur.

1. *The camera* (:func:`fit_camera`). Across each outer edge of every marker found (its black square against
   its white margin; the chart puts those edges on texel edges, :func:`predistort.mirrorfit.mirror_layout`),
   about a pixel apart, the edge's point (:func:`marker_edges`); then the camera's pose and lens (tan of half
   the field of view; held near EXIF's by a prior when it states one) by least squares
   (``scipy.optimize.least_squares``, soft-L1) of the points' distances to the projected edges, again without
   those beyond :data:`TRIM` × their robust RMS. Measured on 10 rendered photos: 0.05–0.15 px RMS, the camera
   0.04–1.3 mm off (from the corners: 0.3–2.4 mm, the field of view too narrow 9 times in 10); with EXIF's
   focal length (whole millimetres, 0.15° off) held fixed instead of by the prior, 2.4 mm off on one of them
   (0.07 mm with the prior).
2. *The mirror* (:func:`fit_rim`), the camera fixed. Along a cylinder's projected top rim, at every degree,
   the rim's point where the cap's black steps cleanly up to something brighter (:func:`rim_edges`; against a
   marker or a marker's reflection the step is not clean and the point is left out); then the base's
   position on the print and the radius by least squares of the points' pixel distances to the projected rim
   (:func:`rim_residuals`), the radius held by the tape measure's (σ :data:`TAPE_MM`), trimmed as above, the
   rim read again along the fitted one. Measured: base 0.01–0.06 mm, radius within 0.03 mm (the coarse
   fit's threshold: 0.1–0.3 mm and 0.25–0.36 mm too small). Fitting the camera to the rim and the markers
   together was tried: the rim pulled the camera off (0.44 → 1.16 mm on one photo), so the two are apart.

The σ reported come from the fits' Gauss–Newton covariances at the points' robust RMS, counting each marker
edge's points as :data:`EDGE_SAMPLES` independent ones and :data:`RIM_CORRELATION` neighbouring rim points as
one (their errors are shared); the base's σ leaves the camera's out. :func:`predistort.mirrorfit.calibrate_mirror`
warns and refuses on them.

Limits: the lens is a pinhole (no distortion, the principal point at the photo's centre); a cylinder's cap
must be black, its rim a circle ``height`` above the base along the axis, at least :data:`MIN_RIM` of its
points read cleanly; the markers' black squares must sit on a white margin.
"""
import math

import cv2
import numpy as np

RIM_SAMPLES = 360          # rim points read, one a degree
RIM_CONTRAST = 0.25        # the outside must be this much brighter than the cap (÷ white paper's brightness)
RIM_REACH = 6.0            # px: how far either side of the projected rim the profile is read
TAPE_MM = 0.25             # mm: the σ of the radius the tape measure gives (half a millimetre on the diameter)
TRIM = 3.0                 # points beyond this × the robust RMS of a first fit are left out of the second
EDGE_SAMPLES = 4           # a marker edge's points count as this many independent ones in the σ reported
RIM_CORRELATION = 4        # neighbouring rim points (a degree apart) share their errors over about this many
EXIF_SHARE = 0.01          # the σ of EXIF's lens (÷ its tan): whole millimetres of a 50–100 mm equivalent
MIN_EDGE_POINTS = 200      # marker edge points the camera's fine fit needs (else: the corners)
MIN_RIM = 60               # rim points (of RIM_SAMPLES) the mirror's fit needs


def to_cv(camera):
    """``(rvec, tvec, tan_x)`` of a camera ``(origin, rotation (left, up, forward columns), tan_x)``."""
    origin, rotation, tan_x = camera
    R_cv = (rotation @ np.diag([-1.0, -1.0, 1.0])).T
    return cv2.Rodrigues(R_cv)[0].ravel(), -R_cv @ np.asarray(origin, np.float64), tan_x


def from_cv(rvec, tvec, tan_x):
    """The camera ``(origin, rotation, tan_x)`` of OpenCV's pose (inverse of :func:`to_cv`)."""
    R_cv = cv2.Rodrigues(np.asarray(rvec, np.float64))[0]
    return -R_cv.T @ np.asarray(tvec, np.float64), R_cv.T @ np.diag([-1.0, -1.0, 1.0]), tan_x


def _rotation(rvec):
    """Rodrigues' rotation matrix of `rvec` [3] (numpy, no OpenCV call: the fit evaluates it often)."""
    angle = float(np.linalg.norm(rvec))
    if angle < 1e-12:
        return np.eye(3)
    k = rvec / angle
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def _project(points, R, t, f, centre):
    cam = points @ R.T + t
    return cam[:, :2] / cam[:, 2:] * f + centre


class RimModel:
    """A cylinder's top rim: ``centre`` of the cap (world), unit ``axis``, ``radius``; and its frame."""

    def __init__(self, centre, axis, radius):
        self.centre, self.axis, self.radius = np.asarray(centre, np.float64), np.asarray(axis, np.float64), radius
        helper = np.array([1.0, 0, 0]) if abs(self.axis[0]) < 0.9 else np.array([0, 1.0, 0])
        self.u = np.cross(self.axis, helper)
        self.u /= np.linalg.norm(self.u)
        self.v = np.cross(self.axis, self.u)

    def points(self, angles, radius=None):
        """World points [N, 3] on the cap's plane at `angles` [N] and `radius` (the rim's by default)."""
        r = self.radius if radius is None else radius
        return self.centre + r * (np.cos(angles)[:, None] * self.u + np.sin(angles)[:, None] * self.v)


def rim_edges(luminance, rim, camera, size):
    """``(points [M, 2], angles [M])``: photo pixels where the cap's rim is, read across the rim projected with
    `camera` (module doc, phase 2); `luminance` [H, W] is the photo's linear brightness ÷ white paper's."""
    rvec, tvec, tan_x = to_cv(camera)
    R, f, centre = _rotation(rvec), size[0] / (2 * tan_x), np.array([size[0] / 2 - 0.5, size[1] / 2 - 0.5])
    angles = np.linspace(0, 2 * np.pi, RIM_SAMPLES, endpoint=False)
    on = _project(rim.points(angles), R, tvec, f, centre)
    out = _project(rim.points(angles, rim.radius * 1.01), R, tvec, f, centre) - on
    normal = out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-9)
    inner = _project(rim.points(angles, rim.radius * 0.6), R, tvec, f, centre)
    black = float(np.median(cv2.remap(luminance, *inner.T.astype(np.float32)[:, None], cv2.INTER_LINEAR)))
    steps = np.arange(-RIM_REACH, RIM_REACH + 1e-9, 0.25)
    xy = on[:, None, :] + steps[None, :, None] * normal[:, None, :]                   # [N, S, 2]
    profile = cv2.remap(luminance, xy[..., 0].astype(np.float32), xy[..., 1].astype(np.float32),
                        cv2.INTER_LINEAR, borderValue=-1.0)
    light = np.median(profile[:, steps >= RIM_REACH - 2.5], 1)
    found, where = _steps(profile, steps, np.full(len(angles), black), light, RIM_CONTRAST, 3.5)
    return on[found] + where[found, None] * normal[found], angles[found]


def _steps(profile, steps, dark, light, contrast, depth):
    """``(found [N] bool, where [N])``: where each row of `profile` (read at `steps` px) steps from `dark` up
    to `light` [N], at the one crossing of halfway between them; a row is kept when the step is at least
    `contrast` and clean: from 1.25 px to `depth` px either side of the crossing, the profile stays within a
    quarter of the step of `dark` before it and of `light` after it (no marker, reflection or photo edge
    beside it)."""
    half = (dark + light) / 2
    above = profile >= half[:, None]
    up = ~above[:, :-1] & above[:, 1:]
    j = np.argmax(up, 1)
    rows = np.arange(len(profile))
    a, b = profile[rows, j], profile[rows, j + 1]
    where = steps[j] + (half - a) / np.where(b - a == 0, 1, b - a) * (steps[1] - steps[0])
    rel = steps[None, :] - where[:, None]
    rise = (light - dark)[:, None]
    before = (rel <= -1.25) & (rel >= -depth)
    after = (rel >= 1.25) & (rel <= depth)
    clean = (~before | (np.abs(profile - dark[:, None]) < 0.25 * rise)).all(1) & \
            (~after | (np.abs(profile - light[:, None]) < 0.25 * rise)).all(1)
    found = (light - dark >= contrast) & (up.sum(1) == 1) & clean & (profile.min(1) >= 0) & \
        (before.sum(1) >= 2) & (after.sum(1) >= 2)
    return found, where


def marker_edges(luminance, corners):
    """``(points [M, 2], first [M], second [M])``: photo pixels on the markers' outer edges (black square against
    its white margin), read across each edge of the detected quads `corners` [N, 4, 2] (inset undone) about a
    pixel apart, away from the corners, each found halfway between the black and the white (linear light);
    `first`, `second` index the flattened corners [N·4] of the edge each point is on. A marker's border is a
    sixth of its side: the profile reaches half of that inside."""
    n = len(corners)
    a = corners.reshape(-1, 2)
    i = np.arange(n * 4)
    j = (i // 4) * 4 + (i + 1) % 4
    length = np.linalg.norm(a[j] - a[i], axis=1)
    centre = corners.mean(1).repeat(4, 0)
    points, first, second = [], [], []
    for k in range(n * 4):
        count = max(3, int(length[k] * 0.7))
        t = np.linspace(0.15, 0.85, count)
        along = a[i[k]] + t[:, None] * (a[j[k]] - a[i[k]])
        d = (a[j[k]] - a[i[k]]) / max(length[k], 1e-9)
        normal = np.array([d[1], -d[0]])
        if normal @ (along.mean(0) - centre[k]) < 0:
            normal = -normal
        reach = max(1.5, min(4.0, length[k] / 12))
        steps = np.arange(-reach, reach + 1e-9, 0.25)
        xy = along[:, None, :] + steps[None, :, None] * normal
        profile = cv2.remap(luminance, xy[..., 0].astype(np.float32), xy[..., 1].astype(np.float32),
                            cv2.INTER_LINEAR, borderValue=-1.0)
        dark, light = np.median(profile[:, :4], 1), np.median(profile[:, -4:], 1)
        found, where = _steps(profile, steps, dark, light, 0.3, reach)
        points.append(along[found] + where[found, None] * normal)
        first += [i[k]] * int(found.sum())
        second += [j[k]] * int(found.sum())
    return np.concatenate(points), np.array(first), np.array(second)


def line_residuals(points, a, b):
    """Signed distances [M] of `points` [M, 2] from the lines through `a` and `b` [M, 2]."""
    d = b - a
    return (d[:, 0] * (points[:, 1] - a[:, 1]) - d[:, 1] * (points[:, 0] - a[:, 0])) / np.linalg.norm(d, axis=1)


def rim_residuals(points, rim, R, t, f, centre):
    """Signed pixel distances [M] of photo `points` from the rim projected with pose ``R, t`` and focal `f` px:
    each point's ray meets the cap's plane at some distance from the axis; the residual is the pixel distance
    from the point to the rim's point on the same radial line (+: outside)."""
    rays = np.concatenate([(points - centre) / f, np.ones((len(points), 1))], 1) @ R     # world directions
    origin = -R.T @ t
    depth = ((rim.centre - origin) @ rim.axis) / (rays @ rim.axis)
    hit = origin + depth[:, None] * rays
    radial = hit - rim.centre
    radial -= (radial @ rim.axis)[:, None] * rim.axis
    rho = np.linalg.norm(radial, axis=1).clip(1e-9)
    on_rim = rim.centre + radial / rho[:, None] * rim.radius
    return np.sign(rho - rim.radius) * np.linalg.norm(_project(on_rim, R, t, f, centre) - points, axis=1)


def _robust_rms(r):
    """1.4826 × the median |r|: the RMS of the bulk of `r`, outliers aside."""
    return float(1.4826 * np.median(np.abs(r))) if len(r) else 0.0


def _trimmed(residuals, state, always=0):
    """``(state, keep)``: least squares (soft-L1) of the pixel `residuals(state)` [M], then again on those
    within :data:`TRIM` × the robust RMS of the first fit (at least 0.3 px); the last `always` (priors) are
    always kept."""
    from scipy.optimize import least_squares
    keep = np.ones(len(residuals(state)), bool)
    for _ in range(2):
        scale = max(_robust_rms(residuals(state)[keep]), 0.02)
        state = least_squares(lambda p: residuals(p)[keep] / scale, state, loss="soft_l1", f_scale=3.0,
                              x_scale="jac").x
        r = residuals(state)
        keep = np.abs(r) < max(TRIM * _robust_rms(r), 0.3)
        keep[len(keep) - always:] = True
    return state, keep


def _covariance(residuals, state, scale):
    """The Gauss–Newton covariance of `state` for pixel `residuals(state)` of σ `scale` (central differences)."""
    J = np.empty((len(residuals(state)), len(state)))
    for i in range(len(state)):
        step = np.zeros(len(state))
        step[i] = 1e-6 * max(1.0, abs(state[i]))
        J[:, i] = (residuals(state + step) - residuals(state - step)) / (2 * step[i]) / scale
    return np.linalg.pinv(J.T @ J)


def fit_camera(objects, corners, camera, luminance, size, exif_tan=None):
    """The camera from the markers' edges (module doc, phase 1): `objects` [N·4, 3] the markers' corners on the
    print, detected at `corners` [N, 4, 2] (inset undone), `camera` the start ``(origin, rotation, tan_x)``;
    `exif_tan` the lens's tan(fov/2) EXIF states, which holds the lens by a prior (σ :data:`EXIF_SHARE` of it:
    a 35 mm-equivalent focal length is stored in whole millimetres), else the lens is free.
    Returns ``dict(camera, marker_px (robust RMS), marker_points, sigma_camera [3] (world units), sigma_fov
    (°))``; the σ count each edge's points as :data:`EDGE_SAMPLES` independent ones (the points along an
    edge share its print's and its blur's errors). Fewer than :data:`MIN_EDGE_POINTS` edge points: fitted
    to the corners instead."""
    centre = np.array([size[0] / 2 - 0.5, size[1] / 2 - 0.5])
    seen, first, second = marker_edges(luminance, corners)
    if len(seen) < MIN_EDGE_POINTS:
        seen, first, second = None, None, None
    rvec, tvec, tan_x = to_cv(camera)
    state = np.concatenate([rvec, tvec, [math.log(tan_x)]])

    def points(p):
        projected = _project(objects, _rotation(p[:3]), p[3:6], size[0] / (2 * math.exp(p[6])), centre)
        if seen is None:
            return (projected - corners.reshape(-1, 2)).ravel()
        return line_residuals(seen, projected[first], projected[second])
    prior = []
    if exif_tan:                  # EXIF's lens in pixels: its σ counts as much as the points' robust RMS
        pixels = max(_robust_rms(points(state)), 0.02)
        prior = [lambda p: (p[6] - math.log(exif_tan)) / EXIF_SHARE * pixels]

    def residuals(p):
        return np.append(points(p), [f(p) for f in prior])
    state, keep = _trimmed(residuals, state, always=len(prior))
    scale = max(_robust_rms(points(state)[keep[:len(keep) - len(prior)]]), 0.02)
    cov = _covariance(lambda p: residuals(p)[keep], state, scale)
    per_edge = keep.sum() / max(1, len(corners) * (4 if seen is not None else 8))
    G = np.zeros((3, 7))                          # the origin −Rᵀt's Jacobian in (rvec, tvec)
    for i in range(6):
        step = np.zeros(7)
        step[i] = 1e-6
        G[:, i] = (_origin(state + step) - _origin(state - step)) / 2e-6
    inflate = math.sqrt(max(1.0, per_edge / EDGE_SAMPLES))
    tan_x = math.exp(state[6])
    return dict(camera=from_cv(state[:3], state[3:6], tan_x), marker_px=scale, marker_points=int(keep.sum()),
                sigma_camera=np.sqrt(np.diag(G @ cov @ G.T)) * inflate,
                sigma_fov=math.degrees(2 * tan_x / (1 + tan_x ** 2)) * math.sqrt(cov[6, 6]) * inflate)


def _origin(p):
    return -_rotation(p[:3]).T @ p[3:6]


def fit_rim(rim, right, up, camera, luminance, size, tape_radius, tape_sigma):
    """The mirror from its cap's rim (module doc, phase 2), the camera fixed: `rim` the coarse :class:`RimModel`, moved
    along the print's `right` and `up` and scaled; the radius held by the tape measure's `tape_radius`
    (σ `tape_sigma`, world units). Returns ``dict(shift [2] (world units along right, up), radius, rim_px (robust
    RMS), rim_points, rim_degrees (the share of the circle they cover, °), sigma_base [2], sigma_radius)``, or
    None when the rim shows fewer than :data:`MIN_RIM` points."""
    rvec, tvec, tan_x = to_cv(camera)
    R, f, centre = _rotation(rvec), size[0] / (2 * tan_x), np.array([size[0] / 2 - 0.5, size[1] / 2 - 0.5])
    right, up = np.asarray(right, np.float64), np.asarray(up, np.float64)

    def model_of(p):
        return RimModel(rim.centre + p[0] * right + p[1] * up, rim.axis, rim.radius * math.exp(p[2]))
    state = np.zeros(3)
    for _ in range(2):
        points, angles = rim_edges(luminance, model_of(state), camera, size)
        if len(points) < MIN_RIM:
            return None

        # the tape measure in pixels: its σ counts as much as the rim points' robust RMS
        pixels = max(_robust_rms(rim_residuals(points, model_of(state), R, tvec, f, centre)), 0.02)

        def residuals(p, points=points, pixels=pixels):
            model = model_of(p)
            return np.append(rim_residuals(points, model, R, tvec, f, centre),
                             (model.radius - tape_radius) / tape_sigma * pixels)
        state, keep = _trimmed(residuals, state, always=1)
    scale = max(_robust_rms(residuals(state)[:-1][keep[:-1]]), 0.02)
    cov = _covariance(lambda p: residuals(p)[keep], state, scale)
    inflate = math.sqrt(RIM_CORRELATION)
    used = int(keep[:-1].sum())
    return dict(shift=state[:2], radius=rim.radius * math.exp(state[2]), rim_px=scale, rim_points=used,
                rim_degrees=used * 360 / RIM_SAMPLES,
                sigma_base=np.sqrt(np.diag(cov)[:2]) * inflate,
                sigma_radius=rim.radius * math.sqrt(cov[2, 2]) * inflate)
