"""The photo's model and its fit: predicted colours and corners of a setup, Levenberg–Marquardt on them.

The prediction (:class:`Model`): the setup θ (:data:`NAMES`: the camera's position, rotation and focal length,
the ball's centre and IOR, the exposure's gain per colour) gives the film positions of points on the print
(pinhole projection: the aligned print's lattice of :mod:`predistort.printview`, or the markers' corners) and
the colours of chosen work-size pixels, traced by :mod:`predistort.trace` (the analytic ray–sphere refraction
to the chart: every quantity a smooth function of θ, differentiated by finite differences; no Mitsuba
gradient, as ``prb``'s are biased at refraction discontinuities and cannot move a sensor). The residuals are
in noise units: the points (whitened by the alignment's covariance, or the markers' corners at
:data:`CORNER_PX`), colours (:data:`COLOUR_NOISE`), the EXIF focal length's prior (its rounding,
:data:`FOCAL_PRIOR`) and the IOR's (:data:`IOR_PRIOR`).

The colours fitted (:meth:`Model.choose_pixels`) are those the model gets right: inside the ball up to
:data:`IMPACT_FIT` of its radius, on the colour field; beside it, the colour field seen directly, from
:data:`RIM_PX` past its edge. Left out: the rim (its landing points race across the print within a pixel),
the markers' sharp edges (2 × 2 rays a pixel alias them; the aligned print already holds them at full size),
and each colour the prediction puts near white (:data:`CLIPPED`).

*The photo's JPEG* (:meth:`Model.jpeg_bias`): where a colour bends into its clip, a JPEG block loses the
cosines that drew the bend, and after decoding the convex sRGB curve turns that ringing into a bias of the
linear mean, enough to move the fitted ball by half a millimetre on an over-exposed photo. So at the fit's
choices of pixels, the prediction near a clipped colour is put through the photo's own JPEG (its quantisation
tables and subsampling) and the bias found there is taken off the photo's colours.

The fit (:func:`fit`), in two physical moves:

1. *Levenberg–Marquardt* on the Huber cost (:data:`HUBER`), in coordinates where the *depth–focal valley* is
   one axis (:func:`valley_basis`): a longer focal length with the camera and the ball farther back by the
   same factor leaves the print and the ball where they were in the photo, so only the perspective of a
   print seen nearly face on and the refraction through a ball of known radius tell them apart.
2. *The focal length's profile* (:func:`profile_focal`): along that valley the cost is shallow and not smooth,
   so the focal length is stepped along it, the rest refitted at each step, and the lowest cost taken.

Limits: float64 on the CPU; the photo's lens distortion is not modelled; the fit's covariance (Gauss–Newton,
scaled by the residuals' spread) states the noise only, not the model's biases.
"""
import math

import cv2
import numpy as np
import torch

from . import trace
from .encoding import jpeg_round_trip, linear_8bit, linear_to_srgb

FIT_PIXELS = 9000                # at most this many pixels in the colour fit ...
BALL_SHARE = 0.9                 # ... this share of them inside the ball (the print beside it: the pose)
IMPACT_FIT = 0.90                # pixels inside the ball up to this fraction of its radius are fitted ...
RIM_PX = 1.0                     # ... and beside it from this many work pixels past its edge: no ray of theirs
                                 # meets the ball, whose bright rim no 2 × 2 rays resolve
CORNER_PX = 1.0                  # a marker corner's noise, photo pixels, once calibrate.undo_inset has undone the inset
CLIPPED = 0.85                   # colours predicted brighter than this (linear) are left out of the colour fit:
                                 # within a phone's noise at white (σ ≈ 0.03: ~1000 electrons) of the clip
JPEG_BLOCK_PX = 16               # the JPEG's bias is modelled within a colour block (8 chroma samples at 2 × 2
                                 # subsampling: photo pixels) of a colour predicted above CLIPPED, zero elsewhere
COLOUR_NOISE = 0.02              # a pixel's colour noise (linear, after the exposure gain)
IOR_PRIOR = 0.05                 # the IOR's spread about the scene's (a material's: glasses from 1.45 to 1.55)
FOCAL_PRIOR = 0.5 / math.sqrt(3)   # an EXIF focal length's uncertainty, mm: phones round it to whole millimetres
HUBER = 3.0                      # residuals beyond this many noise levels are down-weighted
ITERATIONS = 25                  # Levenberg–Marquardt iterations at most
PROFILE_STEP = 0.01              # the focal length's profile: steps of 1 % along the depth–focal valley ...
PROFILE_ITERATIONS = 8           # ... each refitted in this many iterations ...
PROFILE_WALK = 4                 # ... walking downhill at most this many steps beyond the first two


NAMES = ("camera x", "camera y", "camera z", "pitch", "yaw", "roll", "log focal", "ball x", "ball y", "ball z",
         "ior", "gain r", "gain g", "gain b")
STEPS = np.array([1e-5] * 3 + [1e-6] * 3 + [1e-6] + [1e-5] * 3 + [1e-6] + [1e-6] * 3)   # finite differences


def _evenly(index, count):
    """At most `count` of the sorted indices `index`, evenly spread over them."""
    if len(index) <= count:
        return index
    return index[np.linspace(0, len(index) - 1, max(count, 0)).astype(int)]


class Model:
    """The photo predicted from the parameters θ (:data:`NAMES`): camera position (world), its rotation as a
    rotation vector in the starting camera's frame (pitch about left, yaw about up, roll about forward), log
    of the focal length's change, the ball's centre (world), its IOR, the exposure gains."""

    def __init__(self, config, layout, texture, photo, objects, points, rotation0, tan_x0, focal_mm=None):
        self.config, self.layout = config, layout
        self.texture = torch.from_numpy(np.asarray(texture, dtype=np.float64))
        self.rotation0, self.tan_x0 = torch.from_numpy(rotation0), tan_x0
        self.focal_mm = focal_mm                      # EXIF's focal length (35 mm-equivalent; tan_x0 is its), or None
        self.work = photo.linear
        self.jpeg = getattr(photo, "jpeg", None)      # the photo's JPEG encoding (encoding.jpeg_encoding), or None
        h, w = self.work.shape[:2]
        self.work_size = (w, h)
        full_w, full_h = photo.size
        self.photo_size = (full_w, full_h)           # the points' pixels (calibrate.Photo: the file's, maybe reduced)
        self.file_size = getattr(photo, "file_size", None) or self.photo_size   # the JPEG's own pixels
        self.use_points(objects, points)
        self.pixels = None
        self.ior_prior = IOR_PRIOR                   # σ of the IOR about the scene's (the material's spread)

    def use_points(self, objects, points, covariance=None):
        """Fit world points `objects` [K, 3] on the print seen at photo pixels `points` [K, 2] (centres at
        integers): whitened by their `covariance` [2K, 2K] (px², x and y per point; of rank 8 when they come
        from one homography: its directions of zero variance are left free), or each of noise :data:`CORNER_PX`."""
        self.objects = torch.from_numpy(np.asarray(objects, dtype=np.float64))
        self.points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        self.points_st = torch.from_numpy((self.points + 0.5) / np.array(self.photo_size))
        if covariance is None:
            whiten = np.eye(self.points.size) / CORNER_PX
        else:                                    # Σ = V Λ Vᵀ → Λ^(−1/2) Vᵀ on Σ's range
            values, vectors = np.linalg.eigh(covariance)
            kept = values > values.max() * 1e-9
            whiten = (vectors[:, kept] / np.sqrt(values[kept])).T
        # film fractions → photo pixels → noise units
        self.whiten = torch.from_numpy(whiten * np.tile(self.photo_size, len(self.points))[None, :])

    def camera(self, theta):
        theta = torch.as_tensor(theta)
        rotation = self.rotation0 @ trace.rodrigues(theta[3:6])
        tan_x = self.tan_x0 * torch.exp(-theta[6])
        return theta[0:3], rotation, tan_x

    def project(self, theta):
        """Film positions (s, t) [K, 2] of the fitted points on the print."""
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
        colour of a pixel on the ball's silhouette moves smoothly with the setup (the overlay's edge; the fit
        leaves those pixels out, :meth:`choose_pixels`)."""
        theta = torch.as_tensor(theta)
        w, h = self.work_size
        col, row = (pixels % w).double(), (pixels // w).double()
        spacing = 0.5 / self.radius_px(theta)                        # impact between neighbouring rays
        colour = 0
        for dx in (0.25, 0.75):
            for dy in (0.25, 0.75):
                traced = self.rays(theta, (col + dx) / w, (row + dy) / h)
                coverage = ((1 - traced["impact"]) / spacing + 0.5).clamp(0, 1)
                # The sensor clips each of its pixels before the photo is shrunk to the work size: clip each
                # ray (a marker's edge against an over-exposed white averages darker than it would unclipped).
                colour = colour + (trace.look(self.texture, traced, coverage) * theta[11:14]).clamp(max=1.0) / 4
        return colour

    def radius_px(self, theta):
        """The ball's radius in the photo, work pixels (its angular radius on the film's axis)."""
        origin, _, tan_x = self.camera(theta)
        distance = (origin - theta[7:10]).norm()
        radius = self.config.sphere_radius
        return self.work_size[0] / (2 * tan_x) * radius / torch.sqrt(distance ** 2 - radius ** 2)

    def choose_pixels(self, theta, jpeg=False):
        """The pixels of the colour fit: inside the ball up to IMPACT_FIT (those whose landing points are on the
        colour field, not a marker's slot), and beside it from RIM_PX work pixels past its edge, off the markers'
        slots; none clipped; at most FIT_PIXELS, BALL_SHARE of them inside the ball, each kind evenly spread.
        With `jpeg`, the photo's colours there are corrected for its JPEG's bias at θ (:meth:`jpeg_bias`)."""
        theta = torch.as_tensor(theta)
        w, h = self.work_size
        j, i = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        s, t = torch.from_numpy((i.ravel() + 0.5) / w), torch.from_numpy((j.ravel() + 0.5) / h)
        traced = self.rays(theta, s, t)
        impact, hit = traced["impact"].numpy(), traced["hit"].numpy()
        u, v = traced["u"].numpy(), traced["v"].numpy()
        ps = self.config.plane_scale
        on_markers = hit & self.layout.covers((2 * u - 1) * ps, (2 * v - 1) * ps, grow=self.layout.cell)
        # Near the rim the ball shrinks the print: a pixel's footprint there spans many texels, out to where its
        # neighbours' centres land. A pixel next to one that sees a marker may see its sharp edge too, which its
        # 2 × 2 rays would alias: left out as well.
        on_markers = cv2.dilate(on_markers.reshape(h, w).astype(np.uint8), np.ones((3, 3), np.uint8)).ravel() > 0
        inside = hit & (impact < IMPACT_FIT) & traced["on_print"].numpy() & ~on_markers
        # Beside the ball, the print seen directly: from RIM_PX past the ball's edge (its rim, where the landing
        # points race across the print within a pixel, is left out), and off the markers' slots (the aligned
        # print, predistort.printview, tells the pose from every pixel of their edges at full size, which 2 × 2
        # rays a work pixel would alias).
        u, v = traced["u_direct"].numpy(), traced["v_direct"].numpy()
        beside = ((impact > 1 + RIM_PX / float(self.radius_px(theta))) & traced["on_print_direct"].numpy()
                  & ~self.layout.covers((2 * u - 1) * ps, (2 * v - 1) * ps, grow=self.layout.cell))
        self.ball_pixels = int(inside.sum())
        # Near white a colour misleads: the sensor clips each noisy photo pixel, which darkens the mean of those
        # near the clip, and a choice by the photo's own value would keep the ones its noise made darker. So the
        # choice is by the prediction at θ (noise-free: unbiased), colour by colour (each clips on its own): a
        # pixel's colours predicted above CLIPPED are left out, and a pixel with none left.
        channels = (trace.look(self.texture, traced) * theta[11:14]).numpy() < CLIPPED
        unclipped = channels.any(-1)
        # The ball's inside tells the depth–focal valley apart, the print beside it mostly the pose that the
        # markers tell too: the ball gets BALL_SHARE of the pixels (more if the print beside it has fewer).
        ball, beside = np.flatnonzero(inside & unclipped), np.flatnonzero(beside & unclipped)
        ball = _evenly(ball, max(round(FIT_PIXELS * BALL_SHARE), FIT_PIXELS - len(beside)))
        index = np.sort(np.concatenate([ball, _evenly(beside, FIT_PIXELS - len(ball))]))
        self.pixels = torch.from_numpy(index)
        self.observed = torch.from_numpy(self.work.reshape(-1, 3)[index])
        if jpeg and self.jpeg is not None:
            bright = ~channels.all(-1).reshape(h, w)
            if bright.any():
                self.observed = self.observed - self.jpeg_bias(theta, bright)[index]
        self.inside = torch.from_numpy(hit[index])
        self.channels = torch.from_numpy(channels[index].astype(np.float64))     # [N, 3]: 1 fitted, 0 left out

    def jpeg_bias(self, theta, bright):
        """δ [w·h, 3]: what the photo's JPEG adds to the work-size linear colours of the prediction at θ, within
        :data:`JPEG_BLOCK_PX` photo pixels of `bright` ([h, w] bool: work pixels with a colour above CLIPPED),
        zero elsewhere.

        1. *The prediction at full size*, 2 × 2 rays a photo pixel (the gains applied, clipped at 1 as the
           sensor clips), traced only near `bright`: out to two blocks, so that every block a near pixel's
           footprint touches is whole, with the neighbour the decoder's chroma upsampling reads.
        2. *Its JPEG*: sRGB-encoded to 8 bits, saved with the photo's own tables and read back
           (:func:`predistort.encoding.jpeg_round_trip`).
        3. *The bias*: both shrunk to the work size in linear light, as the photo is; δ is their difference.
           Where nothing clips, the noise-free prediction's own aliasing and JPEG differ from the photo's as
           much as the JPEG's bias itself: there δ is zero.

        Limits: no sensor noise in the prediction; the photo's encoder is taken to be Pillow's (libjpeg) with
        the file's tables."""
        w, h = self.work_size
        width, height = self.file_size
        block = math.ceil(JPEG_BLOCK_PX * w / width)                     # a JPEG block, in work pixels (≥ 1)
        near = cv2.dilate(bright.astype(np.uint8), np.ones((2 * block + 1,) * 2, np.uint8))
        # The photo pixels to trace: the near pixels' footprints, and two blocks (photo pixels, not work pixels:
        # a block is a small part of a work pixel's reach on a large photo) around them.
        wanted = cv2.resize(near, (width, height), interpolation=cv2.INTER_NEAREST)
        wanted = cv2.dilate(wanted, np.ones((4 * JPEG_BLOCK_PX + 3,) * 2, np.uint8)).astype(bool)
        # 1. the prediction at full size, near the clip: 2 × 2 rays a photo pixel (a camera's pixel integrates
        # over its area; one ray would alias the texture and the rim, and the JPEG's ringing with them), the
        # mean clipped as the sensor clips each of its pixels, sRGB-encoded to 8 bits (elsewhere 0: those blocks
        # are not read)
        rows, cols = np.nonzero(wanted)
        del wanted
        codes = np.zeros((height, width, 3), np.uint8)
        for k in range(0, len(rows), 1 << 18):                         # a quarter of a million pixels at a time
            r, c = rows[k:k + (1 << 18)], cols[k:k + (1 << 18)]
            light = 0
            for dx in (0.25, 0.75):
                for dy in (0.25, 0.75):
                    traced = self.rays(theta, torch.from_numpy((c + dx) / width), torch.from_numpy((r + dy) / height))
                    light = light + (trace.look(self.texture, traced) * theta[11:14]).numpy() / 4
            codes[r, c] = np.round(linear_to_srgb(light.clip(0, 1)) * 255).astype(np.uint8)
        del rows, cols
        # 2. through the photo's JPEG
        decoded = jpeg_round_trip(codes, self.jpeg)
        # 3. the bias at the work size, near the clip only
        through = cv2.resize(linear_8bit(decoded), (w, h), interpolation=cv2.INTER_AREA)
        del decoded
        without = cv2.resize(linear_8bit(codes), (w, h), interpolation=cv2.INTER_AREA)
        delta = (through - without).astype(np.float64) * near[..., None]
        return torch.from_numpy(delta.reshape(-1, 3))

    def residuals(self, theta):
        """All residuals, in noise units: the print's points, colours, the EXIF focal length's prior when given, the IOR's."""
        theta = torch.as_tensor(theta)
        points = self.whiten @ (self.project(theta) - self.points_st).reshape(-1)
        predicted = self.predict(theta, self.pixels)                        # clipped ray by ray, as the sensor clips
        colours = ((predicted - self.observed) / COLOUR_NOISE * self.channels).reshape(-1)   # left out: 0
        parts = [points, colours]
        if self.focal_mm:                         # EXIF's focal length is θ's 0; σ: the rounding's share of it
            parts.append((theta[6] / (FOCAL_PRIOR / self.focal_mm)).reshape(1))
        parts.append(((theta[10] - self.config.sphere_ior) / self.ior_prior).reshape(1))
        return torch.cat(parts)

    def cost(self, theta):
        """The fit's robust cost at θ on the pixels chosen now."""
        return _huber_cost(self.residuals(theta))

    def jacobian(self, theta, r0):
        """[len(r), len(θ)] by forward differences (the prediction is smooth in θ on the chosen pixels)."""
        columns = []
        for k, step in enumerate(STEPS):
            moved = theta.clone()
            moved[k] += step
            columns.append((self.residuals(moved) - r0) / step)
        return torch.stack(columns, 1)


def _huber_weights(r):
    a = r.abs()
    return torch.where(a <= HUBER, torch.ones_like(a), HUBER / a)


def _huber_cost(r):
    """Σ ρ(r), Huber's ρ: r² within :data:`HUBER`, growing linearly beyond (its IRLS weights: :func:`_huber_weights`)."""
    a = r.abs()
    return float(torch.where(a <= HUBER, a ** 2, 2 * HUBER * a - HUBER ** 2).sum())


def _camera_and_axis(model, theta):
    """The camera's position at θ and P, where its axis meets the print (z = 0)."""
    origin, rotation, _ = model.camera(theta)
    forward = rotation[:, 2]
    return origin, origin + forward * (-origin[2] / forward[2])


def valley_basis(model, theta):
    """[14, 14] change of variables for the fit: the identity but for the focal length's column, which becomes
    the *depth–focal valley*: the focal length × e^ε with the camera and the ball both moved away from P (where
    the camera's axis meets the print) by the same factor e^ε.

    Along that move the print and the ball keep their size and place in the photo: only the perspective of a
    print seen nearly face on and the refraction through a ball of fixed radius tell it, weakly. In the plain
    coordinates the valley is a diagonal that Levenberg–Marquardt's damping crawls along and stops short in
    (the focal length stayed 1–5 % off); as a coordinate of its own, a step walks it."""
    origin, axis_on_print = _camera_and_axis(model, theta)
    basis = torch.eye(len(theta), dtype=theta.dtype)
    basis[0:3, 6] = origin - axis_on_print
    basis[7:10, 6] = theta[7:10] - axis_on_print
    return basis


def fit(model, theta, progress=None, reselect=(2, 6), iterations=None, fixed=(), covariance=True):
    """Levenberg–Marquardt on ``model``'s robust cost from `theta`, in the coordinates of :func:`valley_basis`
    (Gauss–Newton steps on the Huber-weighted residuals, kept when the Huber cost falls), at most `iterations`
    (default :data:`ITERATIONS`); the fitted pixels are chosen again, the photo's JPEG bias at θ with them
    (:meth:`Model.jpeg_bias`), at the iterations `reselect`, and the coordinates `fixed` (indices into
    :data:`NAMES`) stay as they are. Returns ``(θ, covariance, residuals)``, the covariance over every
    coordinate (None unless `covariance`: it costs another Jacobian)."""
    theta = theta.clone()
    free = [k for k in range(len(theta)) if k not in fixed]
    damping = 1e-3
    r = model.residuals(theta)
    for iteration in range(ITERATIONS if iterations is None else iterations):
        if iteration in reselect:                  # the fitted pixels follow the ball; the JPEG's bias at θ
            model.choose_pixels(theta, jpeg=True)
            r = model.residuals(theta)
        weights = _huber_weights(r)
        cost = _huber_cost(r)
        B = valley_basis(model, theta)[:, free]
        J = model.jacobian(theta, r) @ B
        JtJ = J.T @ (weights[:, None] * J)
        g = J.T @ (weights * r)
        improved = False
        for _ in range(8):
            A = JtJ + damping * torch.diag(torch.diag(JtJ).clamp_min(1e-12))
            step = -B @ torch.linalg.solve(A, g)
            trial = theta + step
            if not 1.0 <= float(trial[10]) <= 3.0:
                damping *= 10
                continue
            r_trial = model.residuals(trial)
            if _huber_cost(r_trial) < cost:
                theta, r, damping, improved = trial, r_trial, max(damping / 3, 1e-7), True
                break
            damping *= 10
        if progress:
            progress(0.3 + 0.5 * (iteration + 1) / ITERATIONS, f"fit: iteration {iteration + 1}")
        if not improved or float(step.abs().max()) < 1e-8:
            break
    if not covariance:
        return theta, None, r
    weights = _huber_weights(r)
    B = valley_basis(model, theta)
    J = model.jacobian(theta, r) @ B
    JtJ = J.T @ (weights[:, None] * J)
    spread = float((weights * r ** 2).sum() / max(1, len(r) - len(theta)))
    covariance = B @ torch.linalg.pinv(JtJ) @ B.T * spread
    return theta, covariance, r


def along_valley(model, theta, epsilon):
    """θ moved by `epsilon` along :func:`valley_basis`'s focal column, exactly: the focal length × e^ε, the camera
    and the ball scaled about P (where the camera's axis meets the print) by e^ε."""
    origin, axis_on_print = _camera_and_axis(model, theta)
    moved = theta.clone()
    scale = math.exp(epsilon)
    moved[0:3] = axis_on_print + (origin - axis_on_print) * scale
    moved[7:10] = axis_on_print + (theta[7:10] - axis_on_print) * scale
    moved[6] = theta[6] + epsilon
    return moved


def profile_focal(model, theta, progress=None):
    """θ at the focal length where the fit's cost is least, the rest refitted for each focal length tried.

    The depth–focal valley (:func:`valley_basis`) is shallow and its floor is not smooth (bilinear texels, the
    ball's edge, the robust weights), so a fit with the focal length free stops up to a few per cent short of
    its lowest point. Here the focal length is held at steps of :data:`PROFILE_STEP` along the valley from
    `theta`, each time the other quantities refitted (:data:`PROFILE_ITERATIONS` iterations from `theta` moved
    along the valley, the fitted pixels kept), the walk going downhill until the lowest cost has a higher one on
    either side (at most :data:`PROFILE_WALK` steps), and a parabola through those three gives the focal length
    of the last refit. Returns the θ of the lowest cost found."""
    tried = {0: (model.cost(theta), theta)}

    def at(k):                                   # k steps along the valley (k need not be whole)
        start = along_valley(model, theta, k * PROFILE_STEP)
        moved = fit(model, start, reselect=(), iterations=PROFILE_ITERATIONS, fixed=(6,), covariance=False)[0]
        return model.cost(moved), moved

    for k in (-1, 1):
        tried[k] = at(k)
    for _ in range(PROFILE_WALK):
        best = min(tried, key=lambda k: tried[k][0])
        if best - 1 in tried and best + 1 in tried:
            break
        k = best - 1 if best - 1 not in tried else best + 1
        tried[k] = at(k)
        if progress:
            progress(0.85, f"focal length: {len(tried)} tried")
    best = min(tried, key=lambda k: tried[k][0])
    if best - 1 in tried and best + 1 in tried:
        a, b, c = (tried[k][0] for k in (best - 1, best, best + 1))
        if a - 2 * b + c > 0:
            vertex = best + float(np.clip(0.5 * (a - c) / (a - 2 * b + c), -1, 1))
            tried[vertex] = at(vertex)
    return min(tried.values(), key=lambda x: x[0])[1]
