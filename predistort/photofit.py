"""The photo's model and its fit: predicted colours and corners of a setup, Levenberg–Marquardt on them.

The prediction (:class:`Model`): the setup θ (:data:`NAMES`: the camera's position, rotation and focal length,
the ball's centre and IOR, the exposure's gain per colour, the lens's residual radial distortion k1, the
vignette) gives the film positions of points on the print (pinhole projection, then the lens's k1 in OpenCV's
convention, x_d = x_u (1 + k1 r²) with r in focal lengths: the aligned print's lattice of
:mod:`predistort.printview`, or the markers' corners) and the colours of chosen work-size pixels, each ray's
direction undistorted by the same k1, traced by :mod:`predistort.trace` (the analytic ray–sphere refraction
to the chart: every quantity a smooth function of θ, differentiated by finite differences; no Mitsuba
gradient, as ``prb``'s are biased at refraction discontinuities and cannot move a sensor), × the exposure's
gain per colour × the vignette 1 + c ρ² (ρ = 1 at the photo's corners; held at 0), clipped ray by ray as the
sensor clips, then × the *local exposure* (:meth:`Model.scaled`): scaled, around each pixel, to the photo's
brightness there (a Gaussian's reach, :data:`GAIN_BLUR`). A phone's local tone curve (HDR) and a vignette
multiply the light by gains that vary more slowly than that: it takes them up, and the hues and the
brightness's detail tell the setup. The gains' derivatives are analytic (they multiply the light): 12 of the
16 coordinates are traced again per Jacobian. The residuals are in noise units: the points (whitened by the
alignment's covariance, or the markers' corners at :data:`CORNER_PX`), colours (:data:`COLOUR_NOISE`), the
EXIF focal length's prior (flat within its rounding, :data:`FOCAL_ROUNDING`, then :data:`FOCAL_PRIOR`), the
IOR's (:data:`IOR_PRIOR`), k1's and the vignette's about 0 (:data:`K1_PRIOR`, :data:`VIGNETTE_HELD`).

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

*What the local exposure hides* (:meth:`Model.tone_mapping`): the photo's tone curve beyond sRGB's, global or
local (HDR), and its vignette are measured after the fit from how log(photo ÷ prediction) follows the
prediction's own brightness, its brightness blurred over a tenth of the photo, and ρ².

Limits: float64 on the CPU; one radial distortion term about the photo's centre; no global tone curve but
sRGB's (a local one, and a vignette, the local exposure takes up); the
fit's covariance (Gauss–Newton, scaled by the residuals' spread) states the noise only, not the model's biases.
"""
import functools
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
FOCAL_ROUNDING = 0.5             # an EXIF focal length (35 mm-equivalent) is whole millimetres: any focal length within
                                 # this many mm of it is as likely (no pull: measured, a Gaussian about the rounded
                                 # value pulled the 100 mm envelope's photos 1, 8 and 12 at 1920 × 1440 0.10–0.12° along
                                 # the depth–focal valley, the ball 0.55–0.64 mm off; flat, 0.40–0.45 mm) ...
FOCAL_PRIOR = 0.5 / math.sqrt(3)   # ... and beyond that, σ (mm) of a Gaussian tail
HUBER = 3.0                      # residuals beyond this many noise levels are down-weighted
ITERATIONS = 25                  # Levenberg–Marquardt iterations at most
FOLLOW_ITERATIONS = 8            # iterations at most after the pixels are chosen again where a fit converged (fit)
PROFILE_STEP = 0.01              # the focal length's profile: steps of 1 % along the depth–focal valley ...
PROFILE_ITERATIONS = 8           # ... each refitted in this many iterations ...
PROFILE_WALK = 4                 # ... walking downhill at most this many steps beyond the first two
UNDISTORT_ROUNDS = 5             # fixed-point rounds that undo k1 (Model.undistorted): 1e-9 of a ray at k1 = 0.05


K1_PRIOR = 0.05                  # σ of the residual radial distortion k1 about 0 (a phone's main camera corrects
                                 # its own lens: what is left is a few hundredths at most) once the photo shows
                                 # one (calibrate: K1_SEEN); until then held at 0 by VIGNETTE_HELD's σ
VIGNETTE_HELD = 1e-7             # σ of the vignette's c about 0 (1 + c ρ², ρ = 1 at the photo's corners): held, as
                                 # the local exposure takes it up (measured after the fit: Model.tone_mapping)
GAIN_BLUR = 0.05                 # the local exposure's reach (Model.scaled): a Gaussian's σ, a share of the work
                                 # photo's long side (13 px of 256), where the photo is not tone-mapped ...
GAIN_BLUR_HDR = 0.0              # ... and for the start and where it is (calibrate.TONE_SEEN): each pixel's own,
                                 # what is left its hue (measured: calibrate.TONE_SEEN's comment)
DARK_FIT = 0.03                  # colours predicted darker than this are left out of the tone curve's measure ...
TONE_BLUR = 0.1                  # ... whose local brightness is the prediction blurred over this share of the photo


NAMES = ("camera x", "camera y", "camera z", "pitch", "yaw", "roll", "log focal", "ball x", "ball y", "ball z",
         "ior", "gain r", "gain g", "gain b", "k1", "vignette")
STEPS = np.array([1e-5] * 3 + [1e-6] * 3 + [1e-6] + [1e-5] * 3 + [1e-6] + [1e-6] * 3 + [1e-6, 1e-6])   # finite differences
TRACED = tuple(range(11)) + (14,)   # the coordinates differentiated by tracing again; the gains and the vignette
                                    # multiply the prediction: their columns are analytic (Model.jacobian)


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
        self.vignette_prior = VIGNETTE_HELD          # σ of the vignette about 0: held (the local exposure's)
        self.k1_prior = VIGNETTE_HELD                # σ of k1 about 0: held until the photo shows one
        self.gain_blur = GAIN_BLUR * max(w, h)       # the local exposure's reach, work pixels (scaled)

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
        """Film positions (s, t) [K, 2] of the fitted points on the print: the pinhole's, then the lens's residual
        radial distortion θ[14] = k1 (OpenCV's convention: x_d = x_u (1 + k1 r²), (x_u, y_u) = the camera
        coordinates ÷ depth, r² = x_u² + y_u²: normalised by the focal length)."""
        origin, rotation, tan_x = self.camera(theta)
        q = (self.objects - origin) @ rotation                       # camera coordinates (left, up, forward)
        w, h = self.work_size
        x, y = q[:, 0] / q[:, 2], q[:, 1] / q[:, 2]
        radial = 1 + theta[14] * (x * x + y * y)
        s = (1 - x * radial / tan_x) / 2
        t = (1 - y * radial / (tan_x * h / w)) / 2
        return torch.stack([s, t], -1)

    def undistorted(self, theta, s, t):
        """Film positions `s`, `t` [N] of the photo (distorted by k1 = θ[14]) → where a pinhole puts the same rays:
        x_u = x_d / (1 + k1 r_u²) by fixed-point rounds from r_u = r_d (each shrinks the error by ~2 k1 r²)."""
        _, _, tan_x = self.camera(theta)
        w, h = self.work_size
        xd, yd = (2 * s - 1) * tan_x, (2 * t - 1) * tan_x * h / w
        x, y = xd, yd
        for _ in range(UNDISTORT_ROUNDS):
            radial = 1 + theta[14] * (x * x + y * y)
            x, y = xd / radial, yd / radial
        return (x / tan_x + 1) / 2, (y / (tan_x * h / w) + 1) / 2

    def rays(self, theta, s, t):
        theta = torch.as_tensor(theta)
        origin, rotation, tan_x = self.camera(theta)
        fov = torch.rad2deg(2 * torch.atan(tan_x))
        s, t = self.undistorted(theta, s, t)
        d = trace.film_directions(rotation, fov, self.work_size, s, t)
        return trace.trace(origin, d, theta[7:10], self.config.sphere_radius, theta[10], self.config.plane_scale)

    def vignette(self, theta, pixels):
        """[N] the vignette's factor 1 + c ρ² (c = θ[15]) at the centres of work pixels `pixels` (flat indices),
        ρ the distance from the photo's centre ÷ its half-diagonal (1 at the corners)."""
        return 1 + theta[15] * self.rho2(pixels)

    def rho2(self, pixels):
        """[N] ρ² (:meth:`vignette`) of the work pixels `pixels`."""
        w, h = self.work_size
        col, row = (pixels % w).double(), (pixels // w).double()
        return (((2 * col + 1) / w - 1) ** 2 * w * w + ((2 * row + 1) / h - 1) ** 2 * h * h) / (w * w + h * h)

    def predict(self, theta, pixels):
        """Linear colours [N, 3] of the work-size pixels (flat indices `pixels`), 2 × 2 rays each, gains applied.

        Each ray covers the ball by a linear ramp of one ray spacing across its edge (impact 1), so that the
        colour of a pixel on the ball's silhouette moves smoothly with the setup (the overlay's edge; the fit
        leaves those pixels out, :meth:`choose_pixels`)."""
        theta = torch.as_tensor(theta)
        w, h = self.work_size
        col, row = (pixels % w).double(), (pixels // w).double()
        spacing = 0.5 / self.radius_px(theta)                        # impact between neighbouring rays
        gain = theta[11:14] * self.vignette(theta, pixels)[:, None]   # the exposure, each colour's, the vignette
        dx, dy = [torch.tensor(v, dtype=torch.float64)[:, None] for v in ((0.25, 0.25, 0.75, 0.75),
                                                                          (0.25, 0.75, 0.25, 0.75))]
        traced = self.rays(theta, ((col + dx) / w).reshape(-1), ((row + dy) / h).reshape(-1))  # 4 × N rays, in one
        coverage = ((1 - traced["impact"]) / spacing + 0.5).clamp(0, 1)
        # The sensor clips each of its pixels before the photo is shrunk to the work size: clip each ray (a
        # marker's edge against an over-exposed white averages darker than it would unclipped).
        seen = trace.look(self.texture, traced, coverage).reshape(4, len(pixels), 3)
        return ((seen * gain).clamp(max=1.0) / 4).sum(0)

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
        With `jpeg`, the photo's colours there are corrected for its JPEG's bias at θ (:meth:`jpeg_bias`). By hues
        (:attr:`gain_blur` 0: a photo tone-mapped, whose gain can lift a colour into the clip), the colours the
        photo shows above CLIPPED are left out too."""
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
        every = torch.arange(w * h)
        channels = (trace.look(self.texture, traced) * theta[11:14]
                    * self.vignette(theta, every)[:, None]).numpy() < CLIPPED
        unclipped = channels.any(-1)
        # The ball's inside tells the depth–focal valley apart, the print beside it mostly the pose that the
        # markers tell too: the ball gets BALL_SHARE of the pixels (more if the print beside it has fewer).
        ball, beside = np.flatnonzero(inside & unclipped), np.flatnonzero(beside & unclipped)
        ball = _evenly(ball, max(round(FIT_PIXELS * BALL_SHARE), FIT_PIXELS - len(beside)))
        index = np.sort(np.concatenate([ball, _evenly(beside, FIT_PIXELS - len(ball))]))
        self.pixels = torch.from_numpy(index)
        self.observed = torch.from_numpy(self.work.reshape(-1, 3)[index])
        if not self.gain_blur:           # by hues: a colour a tone curve brightened into the clip has lost its hue
            channels[index] &= self.observed.numpy() < CLIPPED
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
            # the vignette at the photo pixel's place (ρ as Model.vignette's, in photo pixels)
            rho2 = (((2 * c + 1) / width - 1) ** 2 * width ** 2 + ((2 * r + 1) / height - 1) ** 2 * height ** 2) \
                / (width ** 2 + height ** 2)
            light = light * (1 + float(theta[15]) * rho2)[:, None]
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
        colours = ((self.scaled(predicted) - self.observed) / COLOUR_NOISE * self.channels).reshape(-1)   # left out: 0
        parts = [points, colours]
        if self.focal_mm:                         # EXIF's focal length is θ's 0
            parts.append(focal_prior(theta[6], self.focal_mm).reshape(1))
        parts.append(((theta[10] - self.config.sphere_ior) / self.ior_prior).reshape(1))
        parts.append((theta[14] / self.k1_prior).reshape(1))              # the last two: k1's and the vignette's priors
        parts.append((theta[15] / self.vignette_prior).reshape(1))
        return torch.cat(parts)

    def scaled(self, predicted):
        """The predicted colours p [N, 3] as the fit compares them with the photo's o: times the *local
        exposure* s that brings them nearest the photo's colours around each pixel,
        s = Σ K (p·o) ÷ Σ K (p·p) over the fitted pixels, K a Gaussian of :attr:`gain_blur` work pixels.

        A phone's local tone curve (HDR) multiplies the light by a gain that follows the brightness around each
        pixel, and a vignette by one that follows the distance from the centre: both vary slowly beside K,
        which takes them up. What tells the setup is left: the hues everywhere, and the brightness's detail
        within K's reach (the chart's edges inside the ball). K's reach is :data:`GAIN_BLUR` of the photo, or
        :data:`GAIN_BLUR_HDR` where the photo is tone-mapped (measured: predistort.calibrate.TONE_SEEN)."""
        return predicted * self.exposure(predicted)[0][:, None]

    def exposure(self, predicted):
        """The local exposure s [N] of the predicted colours [N, 3] (:meth:`scaled`), and its denominator D = K(p·p)."""
        p, o = predicted * self.channels, self.observed * self.channels
        D = self.local(trace.dot(p, p)).clamp_min(1e-12)
        return self.local(trace.dot(p, o)) / D, D

    def exposed(self, theta):
        """θ with its gains × the median local exposure s (:meth:`scaled`) on the pixels fitted now: s takes up
        the gains' common level, but the sensor's clip, which the prediction applies before s (each ray at 1),
        needs the level of the photo's own light."""
        if self.pixels is None:
            return theta
        s, _ = self.exposure(self.predict(theta, self.pixels))
        theta = theta.clone()
        theta[11:14] = theta[11:14] * float(s.median())
        return theta

    def local(self, values):
        """`values` [N] at the fitted pixels, summed over their neighbours by the Gaussian K of :attr:`gain_blur`
        work pixels (:meth:`scaled`; as they are for 0)."""
        if not self.gain_blur:
            return values
        w, h = self.work_size
        image = np.zeros(w * h)
        image[self.pixels.numpy()] = values.numpy()
        down, across = _gaussian(float(self.gain_blur), w, h)
        blurred = down @ image.reshape(h, w) @ across.T
        return torch.from_numpy(blurred.ravel()[self.pixels.numpy()])

    def cost(self, theta):
        """The fit's robust cost at θ on the pixels chosen now."""
        return _huber_cost(self.residuals(theta))

    def jacobian(self, theta, r0):
        """[len(r), len(θ)] at θ, whose residuals are `r0`: the geometry's columns (:data:`TRACED`) by forward
        differences (the prediction is smooth in θ on the chosen pixels), the gains' analytically. The colours'
        residuals are r = s p − o, s = N ÷ D, N = K(p·o), D = K(p·p) (:meth:`scaled`), so a gain g_c (∂p = e_c p_c
        ÷ g_c where p_c is not clipped, 0 where it is) moves r by ∂s p + s ∂p, ∂s = (K(o_c ∂p_c) − s K(2 p_c ∂p_c))
        ÷ D; the gains move no point on the print. The three gains together, and the vignette, scale a pixel's
        colours together, which s takes up (all of it, or nearly: K is narrow): green is held (its column 0: red
        and blue are fitted against it) and the vignette's column is 0 (held by its prior)."""
        J = torch.zeros(len(r0), len(theta), dtype=r0.dtype)
        for k in TRACED:
            moved = theta.clone()
            moved[k] += STEPS[k]
            J[:, k] = (self.residuals(moved) - r0) / STEPS[k]
        first, n = self.whiten.shape[0], len(self.pixels)
        colours = slice(first, first + 3 * n)
        p = self.predict(theta, self.pixels) * self.channels
        o = self.observed * self.channels
        s, D = self.exposure(p)
        open_ = self.channels * (p < 1 - 1e-9)
        for c in (0, 2):
            dp = torch.zeros(n, 3, dtype=p.dtype)
            dp[:, c] = open_[:, c] * p[:, c] / theta[11 + c]
            ds = (self.local(o[:, c] * dp[:, c]) - s * self.local(2 * p[:, c] * dp[:, c])) / D
            J[colours, 11 + c] = ((ds[:, None] * p + s[:, None] * dp) * self.channels / COLOUR_NOISE).reshape(-1)
        J[-1, 15] = 1 / self.vignette_prior
        return J

    def tone_mapping(self, theta, every=None):
        """How the photo's brightness departs from the prediction's as a tone curve would: ``(local, global,
        vignette, its σ)``, from the least-squares coefficients b, a and v of

            log(photo ÷ prediction) ≈ a log(prediction) + b log(local) + v ρ² + const

        over the fitted pixels (:meth:`choose_pixels`: those the model gets right, none clipped) whose three
        colours are fitted and brighter than :data:`DARK_FIT` (grey: their mean), `local` the prediction blurred
        over :data:`TONE_BLUR` of the photo's long side, ρ² the vignette's (:meth:`rho2`: what the vignette
        left, apart: the vignette as c of 1 + c ρ², whose log is v ρ² at the pixels' mean ρ², with its σ from
        the regression's spread). A photo the model explains gives ~0 for both (measured, tests/test_calibrate.py's 4:3
        photo at the true setup: |a|, |b| ≤ 0.02, also at exposure 1.3, and with a 30 % vignette); a global
        tone curve x^γ gives a ≈ γ − 1 (γ = 0.8: a −0.17, b −0.14); a local one (HDR: the light ÷ its blurred
        self^p) gives b ≈ −p (p = 0.3, 0.5: b −0.30, −0.51). `every` [w·h, 3]: the prediction at every work
        pixel, if made already."""
        w, h = self.work_size
        if every is None:
            every = self.predict(theta, torch.arange(w * h))
        every = torch.as_tensor(every).numpy()
        pixels = self.pixels.numpy()
        local = cv2.GaussianBlur(every.reshape(h, w, 3).mean(-1), (0, 0), max(w, h) * TONE_BLUR).ravel()[pixels]
        predicted, observed = every[pixels], self.observed.numpy()
        used = ((self.channels.numpy() > 0) & (predicted > DARK_FIT) & (observed > DARK_FIT / 2)).all(-1)
        if used.sum() < 100:
            return 0.0, 0.0, 0.0, 0.0
        rho2 = self.rho2(self.pixels).numpy()[used]
        A = np.stack([np.log(predicted[used].mean(-1)), np.log(local[used]), rho2, np.ones(int(used.sum()))], 1)
        y = np.log(observed[used] / predicted[used]).mean(-1)
        coefficients = np.linalg.lstsq(A, y, rcond=None)[0]
        a, b, v = coefficients[:3]
        spread = float(((A @ coefficients - y) ** 2).sum() / max(1, len(y) - 4))
        sigma_v = math.sqrt(spread * np.linalg.pinv(A.T @ A)[2, 2])
        # the vignette's c (1 + c ρ²) whose log matches v ρ² at the pixels' mean ρ²
        m = float(rho2.mean()) or 1.0
        return float(b), float(a), math.expm1(v * m) / m, sigma_v * math.exp(v * m)


@functools.lru_cache(maxsize=8)
def _gaussian(sigma, w, h):
    """``(down [h, h], across [w, w])``: OpenCV's Gaussian blur of σ pixels (``BORDER_REFLECT``) of an [h, w]
    image as two matrices, ``down @ image @ across.T`` equal to ``cv2.GaussianBlur(image, (0, 0), σ,
    borderType=cv2.BORDER_REFLECT)`` to rounding (1e-15): the kernel is OpenCV's for float64 (8σ + 1 taps), read
    off by filtering the identity. Two small matrix products cost ~7× less than the filter at the work size
    (0.5 against 3.6 ms at 256 × 192, σ 12.8 px), and :meth:`Model.local` runs ~30 times a Jacobian."""
    kernel = cv2.getGaussianKernel(int(round(sigma * 8 + 1)) | 1, sigma, cv2.CV_64F)

    def along(n):                  # row i: the weights of every sample in output i, the border reflected
        return cv2.sepFilter2D(np.eye(n), cv2.CV_64F, kernel, np.ones((1, 1)), borderType=cv2.BORDER_REFLECT).T
    return along(h), along(w)


def _huber_weights(r):
    a = r.abs()
    return torch.where(a <= HUBER, torch.ones_like(a), HUBER / a)


def focal_prior(log_ratio, focal_mm):
    """The EXIF focal length's prior residual at θ's 6, `log_ratio` (the log of the focal length's ratio to EXIF's
    `focal_mm`, 35 mm-equivalent): 0 within :data:`FOCAL_ROUNDING` mm of it (a phone writes whole millimetres:
    any focal length that rounds to them is as likely), then the millimetres beyond ÷ :data:`FOCAL_PRIOR`."""
    off = log_ratio * focal_mm
    return torch.sign(off) * (off.abs() - FOCAL_ROUNDING).clamp(min=0) / FOCAL_PRIOR


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
    """[16, 16] change of variables for the fit: the identity but for the focal length's column, which becomes
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


def fit(model, theta, progress=None, reselect=(2, 6), iterations=None, fixed=(), covariance=True, follow=0):
    """Levenberg–Marquardt on ``model``'s robust cost from `theta`, in the coordinates of :func:`valley_basis`
    (Gauss–Newton steps on the Huber-weighted residuals, kept when the Huber cost falls), at most `iterations`
    (default :data:`ITERATIONS`); the fitted pixels are chosen again, the photo's JPEG bias at θ with them
    (:meth:`Model.jpeg_bias`), at the iterations `reselect`, and up to `follow` times more where the fit has
    converged (and goes on from there), so that the pixels it ends on are chosen near where it ends; the
    coordinates `fixed` (indices into :data:`NAMES`) stay as they are. Returns ``(θ, covariance, residuals)``,
    the covariance over every coordinate (None unless `covariance`: it costs another Jacobian).

    Why `follow`: the pixels are chosen for the setup at θ (inside the ball up to :data:`IMPACT_FIT` of its
    radius, off the markers, none clipped) and the JPEG's bias is θ's. Chosen at a start several millimetres
    off, they favour that start's setup: a 100 mm photo whose start was 9 mm off ended 2.6 mm from the true
    setup, with its cost below the truth's, and 0.08 mm off with the pixels chosen again twice where the fit
    had converged. Where the model's own least cost is off the truth, following finds that instead (the
    tests' 4:3 photo: 0.07 mm → 1.31 mm), so calibrate does not follow (calibrate.FOLLOW;
    bench/results/chart_envelope_follow_2026-12-07.md)."""
    theta = theta.clone()
    free = [k for k in range(len(theta)) if k not in fixed]
    damping = 1e-3
    r = model.residuals(theta)
    choose, budget, iteration = False, ITERATIONS if iterations is None else iterations, 0
    while iteration < budget:
        if iteration in reselect or choose:        # the fitted pixels follow the ball; the JPEG's bias at θ
            theta = model.exposed(theta)
            model.choose_pixels(theta, jpeg=True)
            r = model.residuals(theta)
            choose = False
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
        iteration += 1
        if progress:
            progress(0.3 + 0.5 * min(1.0, iteration / ITERATIONS), f"fit: iteration {iteration}")
        if not improved or float(step.abs().max()) < 1e-8 or iteration == budget:
            if not follow:
                break
            # converged (or out of iterations): the pixels chosen again here, and FOLLOW_ITERATIONS more
            follow, choose, damping, budget = follow - 1, True, 1e-3, iteration + FOLLOW_ITERATIONS
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
