"""Calibrate from one photo of the chart through the ball: fit the camera, the ball's centre and IOR, the print's distance.

The fit, in physical phases (:func:`calibrate`):

1. *The photo.* Read upright (EXIF orientation, :func:`predistort.images.load_image`), its 35 mm-equivalent
   focal length from EXIF when it states one (``FocalLengthIn35mmFilm``; ``focal_mm`` overrides), its
   sRGB encoding undone. Too dark a photo is refused before anything else.
2. *Markers → camera.* OpenCV's ArUco detector finds the chart's markers (:mod:`predistort.chart`, whose
   layout gives each corner's place on the print; a marker that disagrees with the others' pose, e.g. one
   decoded in the ball's rim, is dropped by ``cv2.solvePnPRansac``); ``cv2.solvePnP`` (IPPE, then iterative) gives the
   camera's pose against the print for a focal length: EXIF's, else the scene's field of view. A near
   fronto-parallel print hardly tells focal length from distance, so the focal length is left to phase 3.
3. *The ball → everything.* A Levenberg–Marquardt fit of the camera (position, rotation), its focal length,
   the ball's centre, its IOR and the photo's exposure (a gain per colour) to two kinds of residual at once:
   the markers' corners (reprojection, :data:`CORNER_PX` pixels of noise) and the photo's colours
   (:data:`COLOUR_NOISE`) at up to :data:`FIT_PIXELS` pixels — inside the ball up to :data:`IMPACT_FIT` of its
   radius, where it shows the chart's smooth colour field, and beside it, where the print is seen directly
   away from the markers. The colours are predicted by :mod:`predistort.trace`: the analytic ray–sphere
   refraction of the camera's rays to their landing points on the chart, differentiated by finite
   differences (no Mitsuba gradient: ``prb``'s are biased at refraction discontinuities and cannot move a
   sensor). The ball's known diameter and the way it bends the colour field pin the depth that the markers
   alone leave loose. Residuals far off are down-weighted (Huber, :data:`HUBER`). The photo is fitted at
   :data:`WORK_SIDE` pixels on its long side; each pixel is the mean of 2 × 2 rays, clipped at white as the
   photo is. The start: the ball where the photo departs from the chart seen without it (:func:`find_ball`),
   the focal length the best of a scan (:data:`FOCAL_SCAN`) unless EXIF gives it; the fit runs first at the
   scene's IOR, then with the IOR free within its material's spread (:data:`IOR_PRIOR`, a prior).
4. *The answer.* A :class:`Calibration`: the fitted scene (the camera as fitted, a film of the photo's aspect
   at :func:`film_for` pixels, everything else from the input scene), each quantity against its nominal value
   with the fit's standard uncertainty (from the Gauss–Newton covariance scaled by the residuals' spread),
   the residuals, and an overlay of the fitted prediction on the photo.

Bad photos raise :class:`CalibrationError` with one sentence saying what to do (:data:`MESSAGES`).

Limits: ≤ 60 s per photo on two CPU cores at the defaults; one ball, the scene's chart; the photo's lens
distortion is not modelled (a phone's main camera corrects its own).
"""
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from . import backend, chart, trace
from .images import ImageError, load_image
from .target import camera_frame

WORK_SIDE = 256                  # the photo's long side, pixels, for the colour fit
FIT_PIXELS = 6000                # at most this many pixels in the colour fit
IMPACT_FIT = 0.90                # pixels inside the ball up to this fraction of its radius are fitted ...
RIM_FIT = 1.0                    # ... and from this fraction out: its bright rim, its edge and the print beside it
CORNER_PX = 3.0                  # a marker corner's noise, photo pixels (ArUco's corners sit ~0.1 texel inside a blurred marker)
COLOUR_NOISE = 0.02              # a pixel's colour noise (linear, after the exposure gain)
IOR_PRIOR = 0.05                 # the IOR's spread about the scene's (a material's: glasses from 1.45 to 1.55)
FOCAL_PRIOR = 0.01               # an EXIF focal length's relative uncertainty (whole millimetres)
HUBER = 3.0                      # residuals beyond this many noise levels are down-weighted
ITERATIONS = 25                  # Levenberg–Marquardt iterations at most
FOCAL_SCAN, FOCAL_STEPS = 0.35, 11   # without EXIF: focal lengths within exp(±0.35) of the scene's are tried
BALL_DIFFERS = 0.08              # where the photo differs this much from the chart without the ball: the ball
WRONG_LAYOUT = 0.25               # corners this far off (÷ a marker's side) after PnP: another layout
MIN_MARKERS = 2                  # markers a photo must show
DARK = 0.04                      # a photo whose bright end (99th percentile, linear) is below this is too dark
SHARP = 25.0                     # variance of the Laplacian (8-bit, at WORK_SIDE) below which a photo is blurred
BALL_RESIDUAL = 0.08             # mean colour error inside the ball above which the ball was not found
DIAGONAL_35MM = math.hypot(36, 24)   # the 35 mm frame's diagonal: what "35 mm-equivalent" refers to
OTHER_DICTIONARIES = ("DICT_4X4_1000", "DICT_APRILTAG_16h5", "DICT_5X5_1000", "DICT_6X6_1000", "DICT_7X7_1000", "DICT_ARUCO_ORIGINAL",
                      "DICT_APRILTAG_36h11")

MESSAGES = {
    "dark": "The photo is too dark: light the chart evenly (daylight or a bright room) and take it again.",
    "blurred": "The photo is too blurred to read the chart's markers: hold the camera still, focus on the "
               "chart and take it again.",
    "markers": "The chart's markers were not found: the chart's corners must be in the picture, so step back or "
               "zoom out until all four corners of the print show around the ball.",
    "wrong": "These markers are not this scene's chart: print chart.pdf made for this scene (python -m "
             "predistort chart) and photograph that one.",
    "other": "This does not look like a photo of the calibration chart: print chart.pdf, put it behind the ball "
             "as the scene says and photograph it through the ball.",
    "ball": "The ball was not found where the chart says it should be: put the ball between the camera and the "
            "chart's colour field, as the chart's margin says, and take the photo again.",
}


class CalibrationError(ValueError):
    """A photo that cannot be calibrated from; the message is one sentence saying what to do."""


# ---------------------------------------------------------------------------------------------------------
# 1. The photo
# ---------------------------------------------------------------------------------------------------------
def _focal_35mm(source):
    """The photo's EXIF ``FocalLengthIn35mmFilm`` in mm, or None."""
    try:
        if isinstance(source, (bytes, bytearray)):
            source = io.BytesIO(source)
        image = source if isinstance(source, Image.Image) else Image.open(source)
        value = image.getexif().get_ifd(0x8769).get(0xA405)
        return float(value) if value else None
    except Exception:                       # no EXIF, or a source PIL cannot read it from: no focal length
        return None


def srgb_to_linear(x):
    """sRGB-encoded values in [0, 1] → linear light."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x):
    """Linear light in [0, 1] → sRGB-encoded values."""
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def tan_half_fov(focal_35mm, width, height):
    """tan(horizontal fov / 2) of a `width` × `height` photo whose 35 mm-equivalent focal length is given."""
    return DIAGONAL_35MM / (2 * focal_35mm) * width / math.hypot(width, height)


@dataclass
class Photo:
    """A photo ready to fit: ``rgb`` [H, W, 3] uint8 upright at full size, ``linear`` [h, w, 3] float64 linear
    light at the work size, ``focal_35mm`` (None if unknown)."""
    rgb: np.ndarray
    linear: np.ndarray
    focal_35mm: float = None

    @property
    def size(self):
        return self.rgb.shape[1], self.rgb.shape[0]


def read_photo(source, focal_mm=None):
    """The :class:`Photo` of `source` (a path, bytes, PIL image or array; see ``images.load_image``)."""
    try:
        image = load_image(source)
    except ImageError as e:
        raise CalibrationError(str(e)) from None
    rgb = np.asarray(image)
    width, height = image.size
    # Light adds up in linear units: undo sRGB first, then average blocks down to the work size.
    linear = srgb_to_linear(rgb.astype(np.float64) / 255)
    scale = WORK_SIDE / max(width, height)
    if scale < 1:
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        linear = cv2.resize(linear, size, interpolation=cv2.INTER_AREA)
    return Photo(rgb, linear, focal_mm if focal_mm else _focal_35mm(source))


# ---------------------------------------------------------------------------------------------------------
# 2. Markers and the camera's pose
# ---------------------------------------------------------------------------------------------------------
def _detector(name=None):
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_CONTOUR     # the least biased on blurred markers
    codes = chart.dictionary() if name is None else cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name))
    return cv2.aruco.ArucoDetector(codes, params)


def find_markers(photo, layout):
    """``(ids [N], corners [N, 4, 2] pixel coordinates of the full photo)`` of the chart's markers, or raise
    :class:`CalibrationError` saying why none can be used (dark, blurred, another chart, cut off, no chart)."""
    gray = cv2.cvtColor(photo.rgb, cv2.COLOR_RGB2GRAY)
    if np.percentile(photo.linear.mean(-1), 99) < DARK:
        raise CalibrationError(MESSAGES["dark"])
    corners, ids, _ = _detector().detectMarkers(gray)
    ids = np.zeros(0, int) if ids is None else ids.ravel()
    known = np.isin(ids, layout.ids)
    if len(ids) and not known.any() or (len(ids) >= 4 and known.mean() < 0.5):
        raise CalibrationError(MESSAGES["wrong"])
    if known.sum() >= MIN_MARKERS:
        return ids[known], np.stack([c.reshape(4, 2) for c, k in zip(corners, known) if k]).astype(np.float64)
    for name in OTHER_DICTIONARIES:          # another chart's markers: a sentence about the chart
        if name != "DICT_4X4_1000" or not len(ids):
            found = _detector(name).detectMarkers(gray)[1]
            if found is not None and len(found) >= MIN_MARKERS:
                raise CalibrationError(MESSAGES["wrong"])
    small = cv2.cvtColor((linear_to_srgb(photo.linear) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    if cv2.Laplacian(small, cv2.CV_64F).var() < SHARP:
        raise CalibrationError(MESSAGES["blurred"])
    if len(ids) or _looks_like_the_field(photo):
        raise CalibrationError(MESSAGES["markers"])
    raise CalibrationError(MESSAGES["other"])


def _looks_like_the_field(photo):
    """True when the photo has the chart's colour field's look: strong colours over much of it but not all, of
    every hue (the field's middle shows through the ball), and no flat areas (a print photographed has grain).
    A heuristic: it tells a photo too close to the chart from a photo of something else."""
    x = linear_to_srgb(photo.linear)
    chroma = x.max(-1) - x.min(-1)
    hue = np.arctan2(np.sqrt(3) * (x[..., 1] - x[..., 2]), 2 * x[..., 0] - x[..., 1] - x[..., 2])
    strong = chroma > 0.15
    hues = np.histogram(hue[strong], 6, (-np.pi, np.pi))[0].astype(bool).sum()
    gy, gx = np.gradient(x.mean(-1))
    return 0.3 < strong.mean() < 0.92 and hues == 6 and np.median(np.hypot(gx, gy)) > 0.003


def intrinsics(tan_x, width, height):
    """OpenCV's camera matrix of a pinhole of horizontal tan(fov/2) = `tan_x` on a `width` × `height` photo
    (pixel centres at integers, as ArUco's corners are, and as Mitsuba's film samples them)."""
    f = width / (2 * tan_x)
    return np.array([[f, 0, width / 2 - 0.5], [0, f, height / 2 - 0.5], [0, 0, 1]])


def consistent_markers(layout, ids, corners, tan_x, size):
    """The markers that agree on one pose: ``cv2.solvePnPRansac`` over all corners (inliers within
    :data:`WRONG_LAYOUT` of a marker's side), keeping the markers whose four corners are all inliers. A marker
    seen in the ball's rim (mirrored and squeezed, yet sometimes decoded) or misread goes; returns
    ``(ids, corners)``, unchanged when RANSAC finds no pose."""
    objects, pixels = layout.object_points(ids), corners.reshape(-1, 2)
    side = float(np.linalg.norm(corners[:, 0] - corners[:, 1], axis=-1).mean())
    ok, _, _, inliers = cv2.solvePnPRansac(objects, pixels, intrinsics(tan_x, *size), None,
                                           reprojectionError=WRONG_LAYOUT * side, iterationsCount=200)
    if not ok or inliers is None:
        return ids, corners
    whole = np.bincount(inliers.ravel() // 4, minlength=len(ids)) == 4
    return (ids[whole], corners[whole]) if whole.sum() >= MIN_MARKERS else (ids, corners)


def pose_from_markers(layout, ids, corners, tan_x, size):
    """The camera's ``(origin [3], rotation [3, 3] world-from-camera: left, up, forward)`` from the markers,
    by ``cv2.solvePnP`` (IPPE for the plane, then refined iteratively), and the reprojection RMS in pixels."""
    objects = layout.object_points(ids)
    pixels = corners.reshape(-1, 2)
    K = intrinsics(tan_x, *size)
    ok, rvec, tvec = cv2.solvePnP(objects, pixels, K, None, flags=cv2.SOLVEPNP_IPPE)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(objects, pixels, K, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise CalibrationError(MESSAGES["wrong"])
    projected = cv2.projectPoints(objects, rvec, tvec, K, None)[0].reshape(-1, 2)
    rms = float(np.sqrt(((projected - pixels) ** 2).sum(-1).mean()))
    # OpenCV's camera looks along +z with x right and y down; Mitsuba's camera frame is (left, up, forward).
    R_cv = cv2.Rodrigues(rvec)[0]
    flip = np.diag([-1.0, -1.0, 1.0])
    rotation = R_cv.T @ flip
    origin = (-R_cv.T @ tvec).ravel()
    return origin, rotation, rms


# ---------------------------------------------------------------------------------------------------------
# 3. The joint fit
# ---------------------------------------------------------------------------------------------------------
NAMES = ("camera x", "camera y", "camera z", "pitch", "yaw", "roll", "log focal", "ball x", "ball y", "ball z",
         "ior", "gain r", "gain g", "gain b")
STEPS = np.array([1e-5] * 3 + [1e-6] * 3 + [1e-6] + [1e-5] * 3 + [1e-6] + [1e-6] * 3)   # finite differences


class Model:
    """The photo predicted from the parameters θ (:data:`NAMES`): camera position (world), its rotation as a
    rotation vector in the starting camera's frame (pitch about left, yaw about up, roll about forward), log
    of the focal length's change, the ball's centre (world), its IOR, the exposure gains."""

    def __init__(self, config, layout, texture, photo, ids, corners, rotation0, tan_x0, focal_prior):
        self.config, self.layout = config, layout
        self.texture = torch.from_numpy(np.asarray(texture, dtype=np.float64))
        self.rotation0, self.tan_x0 = torch.from_numpy(rotation0), tan_x0
        self.focal_prior = focal_prior                # None, or the log focal change EXIF asks for
        self.work = photo.linear
        h, w = self.work.shape[:2]
        self.work_size = (w, h)
        full_w, full_h = photo.size
        self.ids, self.corners, self.photo_size = ids, corners, (full_w, full_h)
        self.objects = torch.from_numpy(layout.object_points(ids))
        self.corners_st = torch.from_numpy((corners.reshape(-1, 2) + 0.5) / np.array([full_w, full_h]))
        self.corner_scale = np.array([full_w, full_h]) / CORNER_PX        # film fraction → noise units
        self.pixels = None
        self.ior_prior = IOR_PRIOR                   # σ of the IOR about the scene's (the material's spread)

    def camera(self, theta):
        theta = torch.as_tensor(theta)
        rotation = self.rotation0 @ trace.rodrigues(theta[3:6])
        tan_x = self.tan_x0 * torch.exp(-theta[6])
        return theta[0:3], rotation, tan_x

    def project(self, theta):
        """Film positions (s, t) [N, 2] of the markers' corners."""
        origin, rotation, tan_x = self.camera(theta)
        q = (self.objects - origin) @ rotation                       # camera coordinates (left, up, forward)
        w, h = self.work_size
        s = (1 - q[:, 0] / (q[:, 2] * tan_x)) / 2
        t = (1 - q[:, 1] / (q[:, 2] * tan_x * h / w)) / 2
        return torch.stack([s, t], -1)

    def rays(self, theta, s, t):
        origin, rotation, tan_x = self.camera(theta)
        fov = torch.rad2deg(2 * torch.atan(tan_x))
        d = trace.film_directions(rotation, fov, self.work_size, s, t)
        return trace.trace(origin, d, theta[7:10], self.config.sphere_radius, theta[10], self.config.plane_scale)

    def predict(self, theta, pixels):
        """Linear colours [N, 3] of the work-size pixels (flat indices `pixels`), 2 × 2 rays each, gains applied.

        Each ray covers the ball by a linear ramp of one ray spacing across its edge (impact 1), so that the
        colour of a pixel on the ball's silhouette moves smoothly with the setup: the edge then pins the ball's
        apparent size, which the colours inside it alone leave loose against the field of view."""
        theta = torch.as_tensor(theta)
        w, h = self.work_size
        col, row = (pixels % w).double(), (pixels // w).double()
        origin, _, tan_x = self.camera(theta)
        distance = (origin - theta[7:10]).norm()
        radius = self.config.sphere_radius
        radius_px = w / (2 * tan_x) * radius / torch.sqrt(distance ** 2 - radius ** 2)
        spacing = 0.5 / radius_px                                    # impact between neighbouring rays
        colour = 0
        for dx in (0.25, 0.75):
            for dy in (0.25, 0.75):
                traced = self.rays(theta, (col + dx) / w, (row + dy) / h)
                coverage = ((1 - traced["impact"]) / spacing + 0.5).clamp(0, 1)
                colour = colour + trace.look(self.texture, traced, coverage) / 4
        return colour * theta[11:14]

    def choose_pixels(self, theta):
        """The pixels of the colour fit: inside the ball up to IMPACT_FIT, or beside it beyond DIRECT_GAP, whose
        landing points are on the colour field (not a marker's slot): at most FIT_PIXELS, evenly spread."""
        w, h = self.work_size
        j, i = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        s, t = torch.from_numpy((i.ravel() + 0.5) / w), torch.from_numpy((j.ravel() + 0.5) / h)
        traced = self.rays(torch.as_tensor(theta), s, t)
        impact, hit = traced["impact"].numpy(), traced["hit"].numpy()
        u, v = traced["u"].numpy(), traced["v"].numpy()
        ps = self.config.plane_scale
        on_markers = self.layout.covers((2 * u - 1) * ps, (2 * v - 1) * ps, grow=self.layout.cell)
        inside = hit & (impact < IMPACT_FIT) & traced["on_print"].numpy() & ~on_markers
        keep = inside | ((impact > RIM_FIT) & traced["on_print_direct"].numpy())
        index = np.flatnonzero(keep)
        self.ball_pixels = int(inside.sum())
        if len(index) > FIT_PIXELS:
            index = index[np.linspace(0, len(index) - 1, FIT_PIXELS).astype(int)]
        self.pixels = torch.from_numpy(index)
        self.observed = torch.from_numpy(self.work.reshape(-1, 3)[index])
        self.inside = torch.from_numpy(hit[index])

    def residuals(self, theta):
        """All residuals, in noise units: corners (x, y), colours, and the EXIF focal prior when given."""
        theta = torch.as_tensor(theta)
        corners = ((self.project(theta) - self.corners_st) * torch.from_numpy(self.corner_scale)).reshape(-1)
        predicted = self.predict(theta, self.pixels).clamp(max=1.0)        # as the photo clips an over-exposure
        colours = ((predicted - self.observed) / COLOUR_NOISE).reshape(-1)
        parts = [corners, colours]
        if self.focal_prior is not None:
            parts.append(((theta[6] - self.focal_prior) / FOCAL_PRIOR).reshape(1))
        parts.append(((theta[10] - self.config.sphere_ior) / self.ior_prior).reshape(1))
        return torch.cat(parts)

    def cost(self, theta):
        """The fit's robust cost at θ on the pixels chosen now."""
        r = self.residuals(theta)
        return float((_huber_weights(r) * r ** 2).sum())

    def jacobian(self, theta, r0):
        """[len(r), len(θ)] by forward differences (the prediction is smooth in θ on the chosen pixels)."""
        columns = []
        for k, step in enumerate(STEPS):
            moved = theta.clone()
            moved[k] += step
            columns.append((self.residuals(moved) - r0) / step)
        return torch.stack(columns, 1)


def find_ball(model, origin, rotation, tan_x):
    """The ball in the photo: ``(s, t, radius)`` of its silhouette on the film (film fractions; the radius in
    film widths), as the biggest region where the photo departs from the chart seen without the ball (the
    markers' camera `origin`, `rotation`, `tan_x`). Raises CalibrationError when there is none."""
    w, h = model.work_size
    every = torch.arange(w * h)
    col, row = (every % w).double(), (every // w).double()
    d = trace.film_directions(torch.from_numpy(rotation), math.degrees(2 * math.atan(tan_x)), (w, h),
                              (col + 0.5) / w, (row + 0.5) / h)
    u, v, on = trace._land(torch.from_numpy(origin).expand_as(d), d, model.config.plane_scale)
    free = torch.where(on[:, None], trace.sample(model.texture, u, v), torch.ones(len(u), 3, dtype=torch.float64))
    free, photo = free.numpy().reshape(h, w, 3), model.work
    gain = np.median((photo / free.clip(1e-3)).reshape(-1, 3), 0)      # most of the photo is the print seen directly
    # Clipped pixels (an over-exposed white) tell nothing: a gain below 1 would make them all "differ".
    differs = ((np.abs(photo / gain - free).mean(-1) > BALL_DIFFERS) & (photo.max(-1) < 0.97)).astype(np.uint8)
    size = max(3, round(w / 40))                 # opens away the thin edges of a camera a little off
    differs = cv2.morphologyEx(differs, cv2.MORPH_OPEN, np.ones((size, size), np.uint8))
    contours, _ = cv2.findContours(differs, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        raise CalibrationError(MESSAGES["ball"])
    # The ball's middle may match the print's middle seen directly (a far ball shows it shrunk): its region can
    # be a broken ring, so take the convex hull of the biggest piece.
    hull = cv2.convexHull(max(contours, key=lambda c: cv2.contourArea(cv2.convexHull(c))))
    (x, y), radius = cv2.minEnclosingCircle(hull)
    if cv2.contourArea(hull) < 0.5 * math.pi * radius ** 2 or radius < 4:
        raise CalibrationError(MESSAGES["ball"])
    return (x + 0.5) / w, (y + 0.5) / h, radius / w


def start_for(model, config, circle, tan_x):
    """θ to start the fit from, for the focal length of horizontal tan(fov/2) = `tan_x`: the markers' camera
    (PnP), the ball where its silhouette `circle` puts it (its known radius sets its distance), the scene's
    IOR, the exposure by least squares. Sets the model's starting camera."""
    origin, rotation, _ = pose_from_markers(model.layout, model.ids, model.corners, tan_x, model.photo_size)
    model.rotation0, model.tan_x0 = torch.from_numpy(rotation), tan_x
    s, t, radius = circle
    rays = trace.film_directions(model.rotation0, math.degrees(2 * math.atan(tan_x)), model.work_size,
                                 torch.tensor([s, s + radius], dtype=torch.float64),
                                 torch.tensor([t, t], dtype=torch.float64))
    angle = torch.arccos((rays[0] * rays[1]).sum().clamp(-1, 1))
    centre = torch.from_numpy(origin) + rays[0] * config.sphere_radius / torch.sin(angle)
    theta = torch.tensor([*origin, 0, 0, 0, 0, *centre.tolist(), config.sphere_ior, 1, 1, 1], dtype=torch.float64)
    if model.focal_prior is not None:
        model.focal_prior = 0.0
    model.choose_pixels(theta)
    if model.ball_pixels < 50:
        raise CalibrationError(MESSAGES["ball"])
    p = model.predict(theta, model.pixels)
    theta[11:14] = (p * model.observed).sum(0) / (p * p).sum(0).clamp_min(1e-12)
    return theta


def _huber_weights(r):
    a = r.abs()
    return torch.where(a <= HUBER, torch.ones_like(a), HUBER / a)


def fit(model, theta, progress=None):
    """Levenberg–Marquardt on ``model``'s residuals from `theta`; returns ``(θ, covariance, residuals)``."""
    theta = theta.clone()
    damping = 1e-3
    r = model.residuals(theta)
    for iteration in range(ITERATIONS):
        if iteration in (2, 6):                                     # the fitted pixels follow the ball
            model.choose_pixels(theta)
            r = model.residuals(theta)
        weights = _huber_weights(r)
        cost = (weights * r ** 2).sum()
        J = model.jacobian(theta, r)
        JtJ = J.T @ (weights[:, None] * J)
        g = J.T @ (weights * r)
        improved = False
        for _ in range(8):
            A = JtJ + damping * torch.diag(torch.diag(JtJ).clamp_min(1e-12))
            step = -torch.linalg.solve(A, g)
            trial = theta + step
            if not 1.0 <= float(trial[10]) <= 3.0:
                damping *= 10
                continue
            r_trial = model.residuals(trial)
            if (weights * r_trial ** 2).sum() < cost:
                theta, r, damping, improved = trial, r_trial, max(damping / 3, 1e-7), True
                break
            damping *= 10
        if progress:
            progress(0.3 + 0.6 * (iteration + 1) / ITERATIONS, f"fit: iteration {iteration + 1}")
        if not improved or float(step.abs().max()) < 1e-8:
            break
    weights = _huber_weights(r)
    J = model.jacobian(theta, r)
    JtJ = J.T @ (weights[:, None] * J)
    spread = float((weights * r ** 2).sum() / max(1, len(r) - len(theta)))
    covariance = torch.linalg.pinv(JtJ) * spread
    return theta, covariance, r


# ---------------------------------------------------------------------------------------------------------
# 4. The answer
# ---------------------------------------------------------------------------------------------------------
def film_for(config, size):
    """The fitted scene's film: the photo's aspect, the long side the scene's resolution within [64, 1024]."""
    width, height = size
    side = min(1024, max(64, config.resolution))
    if width >= height:
        return side, max(8, round(side * height / width))
    return max(8, round(side * width / height)), side


@dataclass
class Calibration:
    """What :func:`calibrate` found. ``scene`` the fitted :class:`~predistort.scene.SceneConfig` (for ``apply
    --scene``); ``quantities`` rows ``{name, nominal, fitted, uncertainty, unit}``; ``residual`` {``colour``:
    mean absolute colour error of the fitted prediction (linear, ÷ exposure gain) on the fitted pixels,
    ``ball_colour``: the same inside the ball, ``markers_px``: the corners' reprojection RMS in photo pixels,
    ``markers``: how many were used, ``pixels``: colour-fit pixels}; ``overlay`` [h, w, 3] uint8: the fitted
    prediction blended over the photo, the ball's fitted rim in red, the markers' fitted corners in green;
    ``seconds``; ``focal_35mm`` the EXIF (or given) focal length used, None if fitted freely."""
    scene: object
    quantities: list
    residual: dict
    overlay: np.ndarray
    seconds: float = 0.0
    focal_35mm: float = None
    notes: list = field(default_factory=list)

    def quantity(self, name):
        """The row of quantity `name`."""
        return next(q for q in self.quantities if q["name"] == name)

    def to_dict(self):
        return {"scene": self.scene.to_dict(), "quantities": self.quantities, "residual": self.residual,
                "seconds": round(self.seconds, 2), "focal_35mm": self.focal_35mm, "notes": self.notes}

    def to_markdown(self):
        lines = ["| quantity | nominal | fitted | ± | unit |", "|---|---:|---:|---:|---|"]
        for q in self.quantities:
            digits = 4 if q["unit"] == "" else 2
            lines.append(f"| {q['name']} | {q['nominal']:.{digits}f} | {q['fitted']:.{digits}f} | "
                         f"{q['uncertainty']:.{digits}f} | {q['unit']} |")
        r = self.residual
        lines += ["", f"Residual: colours {r['colour']:.4f} (inside the ball {r['ball_colour']:.4f}) mean absolute "
                      f"error on {r['pixels']} pixels; markers {r['markers_px']:.2f} px RMS over {r['markers']} "
                      f"markers. Fitted in {self.seconds:.1f} s."]
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _angles(rotation_nominal, rotation):
    """(pitch, yaw, roll) degrees of `rotation` against `rotation_nominal`, both world-from-camera."""
    w = cv2.Rodrigues(rotation_nominal.T @ rotation)[0].ravel()
    return np.degrees(w)


def _quantities(config, model, theta, covariance):
    """The report's rows: camera, aim, field of view, ball, print distance, IOR (module doc)."""
    unit = config.units_mm
    theta, sigma = theta.numpy(), np.sqrt(np.clip(np.diag(covariance.numpy()), 0, None))
    o_nom, left, up, forward = camera_frame(config)
    rotation_nom = np.stack([left, up, forward], 1)
    origin, rotation, tan_x = (x.numpy() if hasattr(x, "numpy") else x for x in model.camera(torch.tensor(theta)))
    tan_x = float(tan_x)
    angles = _angles(rotation_nom, rotation)
    c_nom = np.array(config.sphere_center)
    d_fov = math.degrees(2 * tan_x / (1 + tan_x ** 2)) * sigma[6]
    rows = [("camera x (right)", o_nom[0] * unit, origin[0] * unit, sigma[0] * unit, "mm"),
            ("camera y (up)", -o_nom[1] * unit, -origin[1] * unit, sigma[1] * unit, "mm"),
            ("camera distance from the print", -o_nom[2] * unit, -origin[2] * unit, sigma[2] * unit, "mm"),
            ("camera pitch", 0.0, angles[0], math.degrees(sigma[3]), "deg"),
            ("camera yaw", 0.0, angles[1], math.degrees(sigma[4]), "deg"),
            ("camera roll", 0.0, angles[2], math.degrees(sigma[5]), "deg"),
            ("field of view (across the width)", config.fov, math.degrees(2 * math.atan(tan_x)), d_fov, "deg"),
            ("ball x (right)", c_nom[0] * unit, theta[7] * unit, sigma[7] * unit, "mm"),
            ("ball y (up)", -c_nom[1] * unit, -theta[8] * unit, sigma[8] * unit, "mm"),
            ("print distance (ball centre to print)", -c_nom[2] * unit, -theta[9] * unit, sigma[9] * unit, "mm"),
            ("IOR", config.sphere_ior, theta[10], sigma[10], "")]
    return [{"name": n, "nominal": float(a), "fitted": float(b), "uncertainty": float(s), "unit": u}
            for n, a, b, s, u in rows]


def _fitted_scene(config, model, theta, size):
    origin, rotation, tan_x = model.camera(theta)
    origin, rotation = origin.numpy(), rotation.numpy()
    forward = rotation[:, 2]
    target = origin + forward * (-origin[2] / forward[2] if forward[2] * -origin[2] > 0 else 1.0)
    width, height = film_for(config, size)
    r = lambda v: tuple(round(float(x), 9) + 0.0 for x in v)           # noqa: E731 (as physical.py rounds)
    try:
        return config.replace(camera_origin=r(origin), camera_target=r(target), camera_up=r(rotation[:, 1]),
                              fov=round(math.degrees(2 * math.atan(float(tan_x))), 6),
                              sphere_center=r(theta[7:10].numpy()), sphere_ior=round(float(theta[10]), 6),
                              film_width=int(width), film_height=int(height))
    except ValueError:
        raise CalibrationError(MESSAGES["ball"]) from None


def _overlay(model, theta):
    """[h, w, 3] uint8: the fitted prediction over the photo (half and half), rim red, corners green."""
    w, h = model.work_size
    every = torch.arange(w * h)
    predicted = model.predict(theta, every).numpy().reshape(h, w, 3)
    blend = 0.5 * linear_to_srgb(model.work) + 0.5 * linear_to_srgb(predicted)
    col, row = (every % w).double(), (every // w).double()
    impact = model.rays(theta, (col + 0.5) / w, (row + 0.5) / h)["impact"].numpy().reshape(h, w)
    blend[np.abs(impact - 1) < 1.5 / max(w, h) * 8] = (1.0, 0.1, 0.1)
    for s, t in model.project(theta).numpy():
        x, y = int(s * w), int(t * h)
        if 0 <= x < w and 0 <= y < h:
            blend[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = (0.1, 1.0, 0.1)
    return (np.clip(blend, 0, 1) * 255 + 0.5).astype(np.uint8)


def calibrate(config, photo, focal_mm=None, progress=None):
    """Fit scene `config`'s camera, ball centre, IOR and print distance to `photo` of its chart through the ball.

    Parameters: ``config`` the nominal :class:`~predistort.scene.SceneConfig` (the one the chart was made
    for: its ball's radius, print size and units are taken as measured); ``photo`` a path, bytes, PIL image
    or array, any size and aspect; ``focal_mm`` the lens's 35 mm-equivalent focal length (default: the
    photo's EXIF, else fitted); ``progress(fraction, message)``. Returns a :class:`Calibration`; raises
    :class:`CalibrationError` (one sentence) for a photo it cannot use.
    """
    with backend.one_thread():              # small tensor work: a second thread only waits (backend.one_thread)
        return _calibrate(config, photo, focal_mm, progress)


def _calibrate(config, photo, focal_mm, progress):
    start = time.perf_counter()
    say = progress or (lambda fraction, message: None)
    say(0.0, "reading the photo")
    image = read_photo(photo, focal_mm)
    layout = chart.layout(config)
    texture = chart.make_chart(config, layout)
    say(0.1, "finding the chart's markers")
    ids, corners = find_markers(image, layout)
    width, height = image.size
    if image.focal_35mm:
        tan_x = tan_half_fov(image.focal_35mm, width, height)
    else:
        tan_x = math.tan(math.radians(config.fov) / 2)
    ids, corners = consistent_markers(layout, ids, corners, tan_x, image.size)
    origin, rotation, rms = pose_from_markers(layout, ids, corners, tan_x, image.size)
    if rms > WRONG_LAYOUT * np.linalg.norm(corners[:, 0] - corners[:, 1], axis=-1).mean():
        raise CalibrationError(MESSAGES["wrong"])
    say(0.2, f"{len(ids)} markers: finding the ball")
    model = Model(config, layout, texture, image, ids, corners, rotation, tan_x,
                  0.0 if image.focal_35mm else None)
    circle = find_ball(model, origin, rotation, tan_x)
    # The focal length: EXIF's, else the one (of a scan around the scene's) whose start explains the photo best.
    scan = [tan_x] if image.focal_35mm else tan_x * np.exp(np.linspace(-FOCAL_SCAN, FOCAL_SCAN, FOCAL_STEPS))
    starts = []
    for candidate in scan:
        theta = start_for(model, config, circle, candidate)
        starts.append((model.cost(theta), candidate, theta))
    _, tan_x, theta = min(starts, key=lambda x: x[0])
    start_for(model, config, circle, tan_x)
    say(0.3, f"{len(ids)} markers, ball found: fitting the camera, the ball and its IOR")
    # First at the scene's IOR (the focal length, the distances and the IOR trade against each other from a
    # poor start), then with the IOR free within its material's spread.
    model.ior_prior = 1e-4
    theta, _, _ = fit(model, theta, None)
    model.ior_prior = IOR_PRIOR
    theta, covariance, r = fit(model, theta, say)
    predicted = model.predict(theta, model.pixels).clamp(max=1.0)
    error = ((predicted - model.observed).abs() / theta[11:14]).mean(-1)
    ball_error = float(error[model.inside].mean())
    if not ball_error < BALL_RESIDUAL:
        raise CalibrationError(MESSAGES["ball"])
    corner_px = ((model.project(theta) - model.corners_st) * torch.tensor([width, height])).norm(dim=-1)
    residual = {"colour": float(error.mean()), "ball_colour": ball_error,
                "markers_px": float(corner_px.pow(2).mean().sqrt()), "markers": int(len(ids)),
                "pixels": int(len(model.pixels))}
    scene = _fitted_scene(config, model, theta, image.size)
    say(0.95, "drawing the overlay")
    result = Calibration(scene, _quantities(config, model, theta, covariance), residual, _overlay(model, theta),
                         time.perf_counter() - start, image.focal_35mm)
    if not image.focal_35mm:
        result.notes.append("No focal length in the photo's EXIF: the field of view was fitted from the ball.")
    say(1.0, "done")
    return result


def write_report(calibration, out_dir):
    """Write ``report.md`` (the table), ``overlay.png`` and ``report.json`` into `out_dir`; returns the paths."""
    import json
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("# Calibration\n\n" + calibration.to_markdown() + "\n![overlay](overlay.png)\n")
    Image.fromarray(calibration.overlay).save(out / "overlay.png")
    (out / "report.json").write_text(json.dumps(calibration.to_dict(), indent=1) + "\n")
    return out / "report.md", out / "overlay.png", out / "report.json"
