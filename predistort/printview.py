"""The print seen directly: its homography in the photo by image alignment, as points the fit can use.

ArUco finds a marker's corners from its thresholded outline, ~1 px off in a 960 × 720 photo of a blurred,
JPEG-compressed chart, and those few dozen corners are all the pose had. The print beside the ball holds far
more: every pixel of every marker edge and of the colour field, each a known texel of the chart. A plane
seen by a pinhole camera is a homography of it, so (:func:`align_print`):

1. *The start.* The homography from the photo to the chart's texels through the markers' corners
   (``cv2.findHomography``; one marker's four corners are enough).
2. *Which pixels.* The print seen directly: inside the print and outside the ball's silhouette grown by
   :data:`BALL_MARGIN` (the ball's rim, and its shadow and caustics on the print near it).
3. *The chart as the sensor records it.* The photo's exposure (the median ratio of photo to chart where the
   chart is bright and the photo unclipped), and the chart read at :data:`UPSAMPLE` × its texels, blurred by
   the photo's own blur, at that exposure, clipped at the sensor's white: ``min(gain · blur(chart), 1)``.
   An over-exposed photo's white is flat at 1 and its marker edges are ramps cut off at 1, the blur rounding
   their shoulder before the cut. (Leaving the clipped parts out leaves the marker edges out with them: on a
   Cycles photo over-exposed by 15 % the corners came 0.016 px RMS from the truth; aligned to the clipped
   chart, 0.003 px; on one over-exposed by 17 % with one marker in view, 0.07 px without the blur and
   0.005 px with it.) The blur (a Gaussian's σ in photo pixels) is the one of :data:`BLURS_PX` whose chart
   correlates best with the photo once aligned. In an unclipped photo a symmetric blur moves no edge: it
   matters only where the photo clips. For the last alignment the exposure is read as a field
   (:func:`_gain_field`, smoothed over :data:`LOCAL_GAIN` marker sides) where it varies across the print: a
   phone's local tone curve brightens the print unevenly, and one exposure for all of it leaves a slope that
   moves every edge.
4. *Alignment.* OpenCV's ECC (``cv2.findTransformECCWithMask``, Evangelidis & Psarakis 2008): the
   homography that maximises the correlation between the photo's linear green channel and that chart's,
   read bilinearly between texel centres as the renderer reads it. The correlation is invariant to the
   exposure's gain and offset. No Gaussian prefilter: it would blur the photo in photo pixels and the chart
   in texels, a different blur wherever a texel is not one pixel, which biases the fit (0.5–1 px measured).
   *The file's JPEG* (:func:`jpeg_bias`, given the file's encoding): at a marker's edge against a clipped
   white the JPEG's blocks ring, and in linear light the white beside every edge reads darker, the markers
   larger, the print nearer; by hundredths of a pixel, enough to move a fitted ball by half a millimetre. So
   the chart as sensed at the aligned homography is put through the file's own JPEG, the bias found there
   is taken off the photo, and the alignment is made once more. (Calibrate asks for it only under
   ``calibrate.ALIGN_JPEG``, off: it helped Mitsuba's and Cycles' photos and harmed noisier ones.)
5. *How well.* The homography's covariance from the alignment's own residuals: Gauss–Newton on
   ``photo ≈ a · chart(H x) + b`` at the aligned H, ``σ² (JᵀJ)⁻¹`` with σ² the residuals' variance, ×
   :data:`INFLATE`² (the residuals are not independent: JPEG's blocks and the pixel filter correlate them).
   A photo whose print seen directly is small, or smooth, or clipped, gets a wider covariance.
6. *The points.* A lattice of up to :data:`GRID` × :data:`GRID` points over the print seen directly: their
   places on the print (world), where the homography puts them in the photo, and the covariance of those
   (rank 8: they all come from one homography, so their number adds no information).

Limits: one homography for the whole print: the photo's lens distortion is undone before
(:mod:`predistort.lens`); the print must be
flat; an alignment that does not converge gives None (:func:`align_print`), and the fit keeps the markers'
own corners.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from . import trace
from .encoding import jpeg_round_trip, linear_8bit, linear_to_srgb

BALL_MARGIN = 1.15      # the ball's silhouette is left out this much wider than it is
WHITE = 1.0             # the sensor's clip, linear
EXPOSED = (0.2, 0.9)    # the exposure is read where the chart is above the first and the photo below the second
UPSAMPLE = 4            # the chart is read at this many times its texels: the photo's blur is a fraction of one
START_BLUR_PX = 0.5     # the photo's blur (Gaussian σ, photo pixels) while aligning ...
BLURS_PX = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)   # ... and those tried for the last alignment
CHANNEL = 1             # the colour channel aligned: green (the chart's markers are black on white in all three)
ITERATIONS, EPSILON = 100, 1e-7     # ECC's stopping rule: at most these iterations, or this gain in correlation
WINDOWS = (3, 6, 12)    # the alignment grows through windows of these many marker sides about the markers found
GRID = 5                # the points: a GRID × GRID lattice over the print seen directly, those on it kept
INFLATE = 4.0           # the covariance's σ × this (measured: the aligned points' error against the truth is
                        # 2–5 × the statistical σ on 5 Blender Cycles photos, 960 × 720, JPEG 80)
COVARIANCE_PIXELS = 300_000   # the covariance from at most this many of the aligned pixels, evenly spread
MIN_PIXELS = 1000       # fewer pixels of the print seen directly than this: nothing to align
MIN_CORRELATION = 0.95  # an alignment correlating less is taken as failed (measured: 0.997–0.9997 when right)
LOCAL_GAIN = 1.0        # the last alignment reads the exposure as a field, smoothed over this many marker sides
                        # (a phone's local tone curve); 0: one exposure for the whole print ...
LOCAL_GAIN_SEEN = 0.015  # ... where the field varies more than this (its sd ÷ its mean). Measured (2026-12-07):
                        # untouched photos 0.0004–0.006, tone-mapped ones (tests/photos.local_tone 0.3–0.6,
                        # bench/cycles.py's local_tone_gain) 0.034–0.11; read as a field, the untouched 640 × 480
                        # photo of tests/test_app_calibrate.py fitted its ball 0.62 mm off (0.48 as one exposure)


@dataclass
class PrintView:
    """The print seen directly, aligned. ``objects`` [K, 3] world points on the print (z = 0), ``pixels``
    [K, 2] where the photo shows them (photo pixels, centres at integers), ``covariance`` [2K, 2K] of
    ``pixels`` flattened (x, y per point; px²), ``correlation`` ECC's, ``warp`` [3, 3] photo pixel → chart
    texel (centres at integers)."""
    objects: np.ndarray
    pixels: np.ndarray
    covariance: np.ndarray
    correlation: float
    warp: np.ndarray

    def to_photo(self, objects, config, size):
        """Photo pixels [N, 2] of world points `objects` [N, ≥2] on the print, by the aligned homography
        (``size`` the chart's texels a side)."""
        return _apply(np.linalg.inv(self.warp), _texels(objects, config, size))


def _texels(objects, config, size):
    """[N, 2] texel coordinates of world points `objects` [N, ≥2] on the print (:func:`trace.texel_coordinates`)."""
    objects = np.asarray(objects)
    return np.stack(trace.texel_coordinates(objects[:, 0], objects[:, 1], config.plane_scale, size), -1)


def _world(texels, config, size):
    """The inverse of :func:`_texels`: [N, 3] world points (z = 0)."""
    xy = ((texels + 0.5) / size * 2 - 1) * config.plane_scale
    return np.concatenate([xy, np.zeros((len(xy), 1))], 1)


def _apply(H, points):
    p = np.concatenate([points, np.ones((len(points), 1))], 1) @ H.T
    return p[:, :2] / p[:, 2:]


def _homography_jacobian(H, points):
    """[N, 2, 8] derivatives of ``_apply(H, points)`` by H's first eight entries (H[2, 2] = 1)."""
    x, y = points[:, 0], points[:, 1]
    w = H[2, 0] * x + H[2, 1] * y + 1
    p = _apply(H, points)
    J = np.zeros((len(points), 2, 8))
    for row in range(2):
        J[:, row, 3 * row:3 * row + 3] = np.stack([x, y, np.ones_like(x)], -1) / w[:, None]
        J[:, row, 6:8] = -p[:, row:row + 1] * np.stack([x, y], -1) / w[:, None]
    return J


def _point_jacobian(H, points):
    """[N, 2, 2] derivatives of ``_apply(H, points)`` by the points."""
    w = H[2, 0] * points[:, 0] + H[2, 1] * points[:, 1] + 1
    q = _apply(H, points)
    return (H[None, :2, :2] - q[:, :, None] * H[None, 2:3, :2]) / w[:, None, None]


def _sample(image, points):
    """`image` read bilinearly at [N, 2] (x, y) pixel positions (centres at integers), as warpPerspective does."""
    n = len(points)
    xy = np.zeros((-(-n // 1024) * 1024, 2), np.float32)       # remap's maps: fewer than 2¹⁵ a side
    xy[:n] = points
    read = cv2.remap(image, xy.reshape(-1, 1024, 2), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return read.ravel()[:n].astype(np.float64)


def warp_covariance(photo, sensed, mask, warp, to_fine):
    """[8, 8] covariance of the homography `warp` (photo → chart texels) aligning `photo` to `sensed` (the chart
    at fine texels: `to_fine` maps texels to them) on `mask`: Gauss–Newton on ``photo ≈ a · sensed(warp x) + b``
    (a, b the gain and offset ECC is blind to), from at most :data:`COVARIANCE_PIXELS` of the mask's pixels (the
    covariance scaled back to all of them)."""
    index = np.flatnonzero(mask)
    used = index[np.linspace(0, len(index) - 1, min(len(index), COVARIANCE_PIXELS)).astype(int)]
    ys, xs = np.divmod(used, photo.shape[1])
    points = np.stack([xs, ys], -1).astype(np.float64)
    fine = _apply(to_fine @ warp, points)
    chart = _sample(sensed, fine)
    y = photo.ravel()[used].astype(np.float64)
    (a, b), *_ = np.linalg.lstsq(np.stack([chart, np.ones_like(chart)], 1), y, rcond=None)
    residual = y - a * chart - b
    # The chart's gradient (the bilinear read's slope, by central differences, per texel: to_fine scales
    # texels by its diagonal), chained through the homography's derivative: d chart(warp x) / d warp.
    step = 1e-3
    gradient = to_fine[0, 0] * np.stack([(_sample(sensed, fine + [step, 0]) - _sample(sensed, fine - [step, 0])),
                                         (_sample(sensed, fine + [0, step]) - _sample(sensed, fine - [0, step]))],
                                        -1) / (2 * step)
    J = np.concatenate([a * np.einsum("nr,nrk->nk", gradient, _homography_jacobian(warp, points)),
                        chart[:, None], np.ones((len(chart), 1))], 1)
    variance = float(residual @ residual) / max(1, len(residual) - J.shape[1])
    return variance * np.linalg.inv(J.T @ J)[:8, :8] * (len(used) / len(index))


def _lattice(mask):
    """[K, 2] photo pixels: a GRID × GRID lattice over `mask`'s bounding box, the points on the mask."""
    ys, xs = np.nonzero(mask)
    gx, gy = np.meshgrid(np.linspace(xs.min(), xs.max(), GRID), np.linspace(ys.min(), ys.max(), GRID))
    points = np.stack([gx.ravel(), gy.ravel()], -1)
    return points[mask[np.round(points[:, 1]).astype(int), np.round(points[:, 0]).astype(int)] > 0]


def _fine(chart):
    """`chart` [R, R] at :data:`UPSAMPLE` × its texels, bilinear between texel centres as the renderer reads it,
    and the map ``S`` from texel coordinates to the fine ones (texel centres at integers in both)."""
    n, up = chart.shape[0], UPSAMPLE
    fine = cv2.resize(chart, (n * up, n * up), interpolation=cv2.INTER_LINEAR)
    return fine, np.array([[up, 0, (up - 1) / 2], [0, up, (up - 1) / 2], [0, 0, 1.0]])


def _warped(fine, to_fine, photo_shape):
    """`fine` as the photo sees it through the homography `to_fine` (photo pixel → fine texel); −1 off the print."""
    height, width = photo_shape
    return cv2.warpPerspective(fine, to_fine, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)


def _exposure(photo, fine, to_fine, away):
    """``(mask, gain)``: the pixels on the print away from the ball (`away`) as the homography puts the chart,
    and the photo's exposure there (the median ratio of photo to chart where the chart is bright and the photo
    unclipped); ``(None, None)`` where too few pixels tell either."""
    seen = _warped(fine, to_fine, photo.shape)
    mask = cv2.erode((away & (seen >= 0)).astype(np.uint8), np.ones((3, 3), np.uint8))   # no read past the border
    gain = _gain(photo, seen, mask)
    if mask.sum() < MIN_PIXELS or gain is None:
        return None, None
    return mask, gain


def _gain(photo, seen, mask):
    """The photo's exposure on `mask`: the median ratio of `photo` to the chart `seen` where the chart is bright
    and the photo unclipped (:data:`EXPOSED`), or None where fewer than :data:`MIN_PIXELS` tell it."""
    exposed = (mask > 0) & (seen > EXPOSED[0]) & (photo < EXPOSED[1])
    if exposed.sum() < MIN_PIXELS:
        return None
    return float(np.median(photo[exposed] / seen[exposed]))


def _gain_field(photo, fine, to_fine, mask, gain, sigma_px):
    """The photo's exposure on the print: `gain` (one for the whole print, :func:`_gain`), or, where the photo
    shows it varying (beyond :data:`LOCAL_GAIN_SEEN`), a field [F, F] float32 at the fine texels.

    The field is read as :func:`_gain` reads one exposure, but locally: the ratio of the photo to the chart
    (`fine` through `to_fine`), each summed under a Gaussian of σ `sigma_px` photo pixels over the exposed
    pixels of `mask`; `gain` where few pixels tell it. A phone's local tone curve multiplies the light by a
    gain that follows the surroundings' brightness; ECC is blind to one gain, not to one that varies across
    the print, and such a gain's slope moves every edge a little its way (the 24 MP Cycles setup2 photo under
    bench/cycles.py's local tone curve: the aligned points alone pulled the fitted ball 0.77 mm)."""
    seen = _warped(fine, to_fine, photo.shape)
    exposed = ((mask > 0) & (seen > EXPOSED[0]) & (photo < EXPOSED[1])).astype(np.float32)
    # The sums at a scale where σ is ~4 pixels (the field is smooth; a 24 MP photo's 3 MP copy has σ ~80 px).
    shrink = max(1.0, sigma_px / 4)
    small = (max(1, round(photo.shape[1] / shrink)), max(1, round(photo.shape[0] / shrink)))

    def blur(x):
        x = cv2.resize(x, small, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(x, (0, 0), sigma_px / shrink, borderType=cv2.BORDER_CONSTANT)
    chart, weight = blur(seen * exposed), blur(exposed)
    trust = np.clip(weight / 0.1, 0, 1)                  # under a tenth of the window exposed: the print's gain
    field = trust * blur(photo * exposed) / np.maximum(chart, 1e-6) + (1 - trust) * gain
    field = np.where(chart > 1e-6, field, gain).astype(np.float32)
    told = field[trust > 0.99]
    if len(told) < 2 or np.std(told) <= LOCAL_GAIN_SEEN * np.mean(told):
        return gain
    field = cv2.resize(field, photo.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return cv2.warpPerspective(field, to_fine, fine.shape[::-1], flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def _sensed(fine, gain, blur_px, warp, photo_shape):
    """The chart as the sensor records it (module doc, 3): `fine` blurred by the photo's blur (Gaussian σ
    `blur_px` photo pixels, in fine texels at the photo's centre through `warp`), × `gain`, clipped at white."""
    if blur_px > 0:
        height, width = photo_shape
        centre = np.array([[width / 2, height / 2], [width / 2 + 1, height / 2]])
        texels_per_pixel = float(np.linalg.norm(np.diff(_apply(warp, centre), axis=0)))
        fine = cv2.GaussianBlur(fine, (0, 0), blur_px * texels_per_pixel * UPSAMPLE)
    return np.minimum(gain * fine, WHITE).astype(np.float32)


def _correlation(photo, sensed, to_fine, mask):
    """The zero-mean normalised correlation of `photo` and `sensed` seen through `to_fine`, on `mask`: ECC's
    criterion at a fixed homography."""
    m = mask > 0
    return float(np.corrcoef(photo[m], _warped(sensed, to_fine, photo.shape)[m])[0, 1])


def jpeg_bias(linear, texture, mask, warp, blur_px, encoding):
    """[H, W] float32: what the photo's JPEG adds to the aligned channel (:data:`CHANNEL`, linear) of the print
    seen directly (`mask`), as the chart sensed there at the homography `warp` and blur `blur_px` shows it.

    1. *The chart as sensed*, each colour at its own exposure (:func:`_gain`), blurred and
       clipped (:func:`_sensed`), where `mask` is; elsewhere (the ball, the world beyond the print) the photo's
       own colours, so that the blocks across the mask's edge hold what the file's held.
    2. *Its JPEG*: sRGB-encoded to 8 bits, saved with the file's own tables and subsampling (`encoding`:
       :func:`predistort.encoding.jpeg_encoding`) and read back.
    3. *The bias*: the two in linear light, their difference on `mask`.

    Why: a marker's edge against a white at or past the clip rings in the JPEG's blocks, and the convex sRGB
    curve turns that ringing into a darker white beside every edge in linear light: the black squares look
    larger, the print nearer. On bench/calibrate.py's setup4 (JPEG 80) the aligned points so moved the fitted
    camera 1.1 mm and the ball 0.6 mm (bench/results/calibrate_scatter_2026-12-07.md). `linear` must be the
    file's own pixels (not averaged down), for the blocks to fall where the file's did."""
    predicted = np.array(linear, dtype=np.float32, copy=True)
    for c in range(3):
        fine, S = _fine(np.ascontiguousarray(texture[..., c], dtype=np.float32))
        photo = np.ascontiguousarray(linear[..., c], dtype=np.float32)
        gain = _gain(photo, _warped(fine, S @ warp, photo.shape), mask)
        if gain is None:                       # this colour too dark on the print to tell its exposure: as it is
            continue
        sensed = _warped(_sensed(fine, gain, blur_px, warp, photo.shape), S @ warp, photo.shape)
        predicted[..., c] = np.where(mask > 0, sensed, photo)
    codes = np.round(linear_to_srgb(np.clip(predicted, 0, 1)) * 255).astype(np.uint8)
    through = linear_8bit(jpeg_round_trip(codes, encoding))
    return (through[..., CHANNEL] - linear_8bit(codes)[..., CHANNEL]) * (mask > 0)


def _near_markers(corners, shape):
    """[H, W] float32: each pixel's distance (pixels) from the nearest marker found (its centre)."""
    seeds = np.ones(shape, np.uint8)
    centres = np.round(corners.mean(1)).astype(int)
    seeds[centres[:, 1].clip(0, shape[0] - 1), centres[:, 0].clip(0, shape[1] - 1)] = 0
    return cv2.distanceTransform(seeds, cv2.DIST_L2, 5)


def _ecc(photo, sensed, window, warp, to_fine):
    """One ECC alignment of `photo` to `sensed` (fine texels: `to_fine`) on `window` from the homography `warp`
    (photo → texels): ``(correlation, warp)``. Raises ``cv2.error`` when it does not converge."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ITERATIONS, EPSILON)
    correlation, found = cv2.findTransformECCWithMask(photo, sensed, window, np.ones(sensed.shape, np.uint8),
                                                      (to_fine @ warp).astype(np.float32), cv2.MOTION_HOMOGRAPHY,
                                                      criteria, 1)
    warp = np.linalg.inv(to_fine) @ found.astype(np.float64)
    return correlation, warp / warp[2, 2]


def align_print(linear, texture, layout, ids, corners, config, circle, start=None, jpeg=None, field=True):
    """The print seen directly, aligned (a :class:`PrintView`), or None when the alignment fails or the print seen
    directly is too small to align.

    Parameters: ``linear`` the full-size photo [H, W, 3] in linear light; ``texture`` the chart [R, R, 3] as
    made for ``config``; ``layout`` its markers; ``ids`` and ``corners`` [N, 4, 2] those found in the photo
    (the inset undone; one marker will do); ``circle`` the ball's silhouette ``(x, y, radius)`` in photo
    pixels; ``start`` a homography to start from (a :class:`PrintView`'s ``warp``: the print aligned again
    with the ball found better), else the markers' corners'; ``jpeg`` the file's JPEG encoding
    (:func:`predistort.encoding.jpeg_encoding`) when ``linear`` is the file's own pixels: the last alignment is
    made again with the JPEG's bias at the aligned chart taken off the photo (:func:`jpeg_bias`); ``field``
    False: one exposure for the whole print, never a field (:func:`_gain_field`; predistort.lens compares
    alignments under one exposure model)."""
    size = texture.shape[0]
    fine, S = _fine(np.ascontiguousarray(texture[..., CHANNEL], dtype=np.float32))
    photo = np.ascontiguousarray(linear[..., CHANNEL], dtype=np.float32)
    warp = start
    if warp is None:
        warp, _ = cv2.findHomography(corners.reshape(-1, 2), _texels(layout.object_points(ids), config, size))
        if warp is None:
            return None
    x, y, radius = circle
    away = np.ones(photo.shape, np.uint8)
    cv2.circle(away, (round(x), round(y)), round(BALL_MARGIN * radius), 0, -1)
    away = away > 0

    # -- alignment: ECC on the linear green channel, no prefilter, grown from the markers out -------------
    # One marker's corners (~1 px off) fix the homography near it but can leave it tens of pixels off at the
    # photo's far side, beyond ECC's basin: the print is aligned first within WINDOWS marker sides of the
    # markers found, each window from the homography of the one before, then wholly; the exposure and the
    # pixels on the print are read again at each homography found. A window whose alignment fails is passed.
    near = _near_markers(corners, photo.shape) if start is None else None
    if len(corners):
        side = float(np.linalg.norm(corners[:, 0] - corners[:, 1], axis=-1).mean())
    else:                                       # no marker found: a marker's side where the start puts the print
        texels = np.linalg.norm(layout.corners[0, 1] - layout.corners[0, 0]) / (2 * config.plane_scale) * size
        side = float(texels / np.sqrt(abs(np.linalg.det(warp[:2, :2] / warp[2, 2]))))
    for reach in (*(w * side for w in WINDOWS if start is None), np.inf):
        mask, gain = _exposure(photo, fine, S @ warp, away)
        if mask is None:
            return None
        window = mask if reach == np.inf else (mask * (near < reach)).astype(np.uint8)
        if window.sum() < MIN_PIXELS or (reach < np.inf and window.sum() == mask.sum()):
            continue
        try:
            _, warp = _ecc(photo, _sensed(fine, gain, START_BLUR_PX, warp, photo.shape), window, warp, S)
        except cv2.error:                       # ECC did not converge in this window
            if reach == np.inf:
                return None
    # The photo's blur: of BLURS_PX, the one whose chart correlates best with the photo here; then the last
    # alignment with it.
    mask, gain = _exposure(photo, fine, S @ warp, away)
    if mask is None:
        return None
    if LOCAL_GAIN and field:
        gain = _gain_field(photo, fine, S @ warp, mask, gain, LOCAL_GAIN * side)
    blur = max(BLURS_PX, key=lambda b: _correlation(photo, _sensed(fine, gain, b, warp, photo.shape), S @ warp, mask))
    sensed = _sensed(fine, gain, blur, warp, photo.shape)
    try:
        correlation, warp = _ecc(photo, sensed, mask, warp, S)
    except cv2.error:
        return None
    if correlation < MIN_CORRELATION:          # converged elsewhere: not this print, or not where the markers say
        return None
    if jpeg is not None:                       # again, on the photo with its JPEG's bias at the aligned chart taken off
        photo = np.ascontiguousarray(photo - jpeg_bias(linear, texture, mask, warp, blur, jpeg), dtype=np.float32)
        mask, gain = _exposure(photo, fine, S @ warp, away)
        if mask is None:
            return None
        if LOCAL_GAIN and field:
            gain = _gain_field(photo, fine, S @ warp, mask, gain, LOCAL_GAIN * side)
        sensed = _sensed(fine, gain, blur, warp, photo.shape)
        try:
            correlation, warp = _ecc(photo, sensed, mask, warp, S)
        except cv2.error:
            return None

    # -- how well, and the points: a lattice over the print seen directly, its covariance through H⁻¹ -----
    covariance = warp_covariance(photo, sensed, mask, warp, S) * INFLATE ** 2
    pixels = _lattice(mask)
    objects = _world(_apply(warp, pixels), config, size)
    # The points are fixed on the print (texels t) and the photo shows them where H p = t: implicitly,
    # dp/dH = −(∂(H p)/∂p)⁻¹ ∂(H p)/∂H.
    d_pixels = -np.linalg.solve(_point_jacobian(warp, pixels), _homography_jacobian(warp, pixels))
    G = d_pixels.reshape(-1, 8)
    return PrintView(objects, pixels, G @ covariance @ G.T, float(correlation), warp)
