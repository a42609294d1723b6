"""Calibrate from one photo of the chart through the ball: fit the camera, the ball's centre and IOR, the print's distance.

The fit, in physical phases (:func:`calibrate`):

1. *The photo.* Read upright (EXIF orientation, :func:`predistort.images.load_image`; JPEG, HEIC, PNG,
   WebP), its 35 mm-equivalent focal length from EXIF when it states one (``FocalLengthIn35mmFilm``;
   ``focal_mm`` overrides), its sRGB encoding undone, averaged down in linear light by a whole factor to at
   most :data:`ALIGN_PIXELS` (a phone's 12–50 MP: phases 2 and 3 need no more, and their cost grows with the
   pixels) and to :data:`WORK_SIDE` pixels on its long side (the colour fit), and, for a JPEG of at most
   :data:`JPEG_MODEL_PIXELS`, its quantisation tables kept (phase 4 models what they did near clipped
   colours). Too dark a photo is refused before anything else.
2. *Markers → camera.* OpenCV's ArUco detector finds the chart's markers (:mod:`predistort.chart`, whose
   layout gives each corner's place on the print), reading each cell at :data:`CELL_PIXELS` pixels; the
   candidates it rejected near where the layout puts a marker are read again (``refineDetectedMarkers``), and
   the rest are identified by their cells' correlation with the layout's markers (:func:`identify`: the small
   markers of a tightly framed chart, smeared in a small or blurred photo); a marker cut by the photo's edge
   is dropped; a marker that disagrees with the others' pose, e.g. one
   decoded in the ball's rim, is dropped by ``cv2.solvePnPRansac``; the detector's inset (every corner a few
   pixels inside the blurred square) is undone (:func:`undo_inset`); ``cv2.solvePnP`` (IPPE, then iterative)
   gives the camera's pose against the print for a focal length: EXIF's, else each of a scan
   (:data:`FOCAL_SCAN`). A print seen nearly face on hardly tells focal length from distance: phase 3 does.
   A photo with no whole marker (a ball that fills it) is refused with a sentence saying to zoom out: a start
   from the camera the scene describes (:data:`DESCRIBED_START`) was measured and is off.
3. *The ball.* Where the photo departs from the chart seen without the ball, the largest disc is the ball's
   silhouette (:func:`find_ball`; misplaced markers beside it differ too); its known radius sets its distance.
   The print seen beside it is then aligned to the chart
   (:mod:`predistort.printview`, OpenCV's ECC at full size, grown from the markers out: one marker is enough
   to start it): a lattice of points on the print, a few thousandths of a pixel from the truth, with the
   alignment's covariance. They pin the camera against the print (its sideways position, which the ball's
   optics alone leave loose against its aim, and the perspective that tells the focal length from the
   distance); the camera and the ball are found again from them and the print aligned once more, then
   through the lens's residual radial distortion k1 (:func:`predistort.lens.find_k1`: the k1 at which the
   print seen directly is most nearly one homography of the chart; fitted when beyond :data:`K1_SEEN`, else
   held at 0). The start (:func:`start_for`): that
   camera, that ball, the scene's IOR, the exposure by least squares, that k1; of the scan, the focal length
   whose start explains the photo best.
4. *Everything at once* (:mod:`predistort.photofit`): the camera (position, rotation, focal length), the
   ball's centre, its IOR, the lens's k1 and the photo's colour gains fitted to the print's points and the
   photo's colours inside the ball and beside it (a Huber loss), the colours compared under a *local
   exposure* of their own around each pixel (:meth:`predistort.photofit.Model.scaled`: a phone's local tone
   curve and a vignette vary slowly, and it takes them up; by their hues alone for the start and where the
   photo is tone-mapped or vignetted, :data:`TONE_SEEN`, :data:`VIGNETTE_SEEN`), first at the scene's IOR,
   then with the IOR free within its material's spread (its pixels chosen at its start: :data:`FOLLOW`);
   then the focal length's profile along the depth–focal valley (with EXIF too: its whole millimetres a
   prior flat within their rounding, :data:`predistort.photofit.FOCAL_ROUNDING`). Each time the fitted pixels
   are chosen again, a JPEG's bias near the colours predicted clipped is taken off the photo's
   (:meth:`predistort.photofit.Model.jpeg_bias`).
5. *The answer* (:mod:`predistort.fitreport`). A :class:`Calibration`: the fitted scene (the camera as fitted,
   a film of the photo's aspect at :func:`film_for` pixels, everything else from the input scene), each
   quantity against its nominal value with the fit's standard uncertainty (from the Gauss–Newton covariance
   scaled by the residuals' spread: the noise's share only), the residuals, an overlay of the fitted
   prediction on the photo, and warnings, first in every report, where the fit did not explain the photo
   (:func:`unexplained`: the print's points or the colours off, or a global tone curve). The photo's vignette
   and tone curve, global or local (HDR), are measured after the fit
   (:meth:`predistort.photofit.Model.tone_mapping`) and reported: the vignette as a quantity, a local tone
   curve in a note, a global one in a warning (it bends each colour on its own: not modelled).

Bad photos raise :class:`CalibrationError` with one sentence saying what to do (:data:`MESSAGES`).

Where the seconds go (``bench/calibrate_big.py``, 2 cores; a 24.5 MP photo, 5712 × 4284, of the chart rendered by
Cycles and upsampled, a local tone curve, no EXIF; wall seconds on an idle machine, 2026-12-07,
bench/results/fit_speed_2026-12-07.md; *before*: fcae9ae, CPU seconds):

=====================================  ==================================  ==================================
phase                                  before (fcae9ae)                    now
=====================================  ==================================  ==================================
1. read, decode, linear light          ~2-6 s                              2-3 s
2-3. markers, ball, print aligned, k1  ~80 s (ECC on 24.5 MP)              8-10 s (ECC on 2.7 MP)
4. the JPEG modelled (clipped photo)   ~3 × 120 s (traced at 24.5 MP)      0 (not above JPEG_MODEL_PIXELS)
4. start, fit, focal profile           ~35 s (work size: the same)         22-34 s
total                                  81 / 443 CPU s, 3.3 / 4.1 GB        37-44 s, 1.1 GB
=====================================  ==================================  ==================================

The fit's own cost (phase 4) does not grow with the photo: it traces ~9,000 work pixels, 2 × 2 rays each, ~15
times an iteration (the Jacobian's forward differences), in :mod:`predistort.trace`.

Limits: 27-51 s a photo on two idle cores (a 640-px test photo ~27 s, the 960 × 720 bench photos 28-51 s, 24.5 MP
37-44 s: bench/results/fit_speed_2026-12-07.md); memory
~1.1 GB (peak resident, a 24.5 MP photo); one ball, the scene's chart; the lens's distortion beyond one radial
term (k1, OpenCV's convention, :mod:`predistort.lens`) is not modelled; the photometric model is a gain per
colour under a local exposure (photofit.GAIN_BLUR's reach, or each pixel's own): a global tone curve other
than sRGB's, which bends each colour on its own, is not modelled (measured:
bench/results/calibrate_phone_processing.md); colours too far
from the chart's are refused (MESSAGES["colours"]).
"""
import functools
import io
import math
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from . import backend, chart, trace
from .photofit import GAIN_BLUR, GAIN_BLUR_HDR, IOR_PRIOR, K1_PRIOR, Model, fit, profile_focal
from .lens import find_k1
from .printview import align_print
from .target import camera_frame
from .encoding import jpeg_encoding, linear_8bit, linear_to_srgb
from .fitreport import Calibration, film_for, overlay, quantities
from .images import ImageError, load_image

WORK_SIDE = 256                  # the photo's long side, pixels, for the colour fit
JPEG_MODEL_PIXELS = 4_000_000    # a JPEG with more pixels is not modelled: its blocks are a small part of a work
                                 # pixel, and tracing it costs ~150 s a time at 24 MP (bench/calibrate_big.py)
ALIGN_PIXELS = 3_000_000         # a photo with more pixels is averaged down (a whole factor, linear light) to at
                                 # most this many for the markers and the print's alignment (bench/calibrate_big.py)
FOCAL_SCAN, FOCAL_STEPS = 0.35, 11   # without EXIF: focal lengths within exp(±0.35) of the scene's are tried
SATURATED = 0.95                 # photo pixels this bright (linear, any channel) are taken as clipped by find_ball
BALL_DIFFERS = 0.08              # where the photo differs this much from the chart without the ball: the ball
WRONG_LAYOUT = 0.25               # corners this far off (÷ a marker's side) after PnP: another layout
MIN_MARKERS = 2                  # markers a photo must show (one is enough when the print beside it aligns)
CELL_PIXELS = 8                  # ArUco reads a marker's cells at this many pixels each (its default 4 misread 3 of
                                 # the 8 whole markers, 40 px a side, of a 640 × 480 photo 100 mm from the ball)
REFIND_PX = 10.0                 # a rejected candidate this near where the layout puts a marker is read again ...
EDGE_PX = 3                      # ... and a marker with a corner this near the photo's edge dropped (cut off)
MATCH_SAMPLES = 4                # identify: a code cell read at this many samples each way ...
MATCH, MATCH_MARGIN = 0.75, 0.15   # ... and a candidate taken as the marker its cells correlate with this well, by
                                   # this much more than with any other marker or orientation, ...
MIN_IDENTIFIED = 3               # ... where ArUco read none, when this many agree on one view of the print
FLAT_STEP, FLAT_SHARE = 1e-4, 0.05   # _looks_like_the_field: pixels whose sRGB changes less than this a work pixel
                                 # are flat; a photo of the field has less than this share of them
DARK = 0.04                      # a photo whose bright end (99th percentile, linear) is below this is too dark
SHARP = 25.0                     # variance of the Laplacian (8-bit, at WORK_SIDE) below which a photo is blurred
BALL_RESIDUAL = 0.08             # mean colour error inside the ball above which the photo is refused ("colours")
EXPLAINED_POINTS = 3.0           # a fit whose print's points are off by more σ than this (RMS) ...
EXPLAINED_COLOUR = 0.03          # ... or its colours by more than this (mean absolute, linear): not explained
TONE_LOCAL = 0.15                # a photo whose brightness follows its local brightness more than this (the
                                 # slope's size, Model.tone_mapping) is said to be tone-mapped locally (HDR)
TONE_SEEN = 0.1                  # ... more than this after the first fit (by hues): the fit goes on by hues
                                 # (photofit.GAIN_BLUR_HDR), else with the brightness within GAIN_BLUR too. Measured
                                 # (2026-12-07): the 4:3 test photo untouched ±0.02, tone-mapped (tests/photos.local_tone)
                                 # at 0.1, −0.08; the Cycles 960 × 720 photo of bench/calibrate_big.py --tone local −0.79
                                 # (camera 0.66 mm, ball 0.25 mm by hues; 1.24 and 1.18 with 3 px of brightness)
VIGNETTE_SEEN = 0.1              # ... or whose vignette (Model.tone_mapping's) is beyond this: by hues too (the seed-12
                                 # photo02 of bench/calibrate_phone.py, over-exposed, vignette −0.3: camera 3.28 mm,
                                 # ball 3.49 mm, no warning, with GAIN_BLUR's brightness; 0.55 and 0.15 mm by hues)
TONE_GLOBAL = 0.1                # ... and whose brightness follows its own more than this: another global tone curve,
                                 # which bends each colour on its own: not modelled, a warning (the same photo at
                                 # linear light^0.8: −0.19, camera 96 mm and ball 54 mm off)
ALIGN_JPEG = False               # the print's alignment models the file's JPEG (printview.jpeg_bias): measured,
                                 # not used (bench/results/calibrate_scatter_2026-12-07.md: 18 of 22 photos within the
                                 # bounds both ways; Mitsuba's and Cycles' 8 → 10 of 10, the trace's envelope 10 → 8 of 12)
FOLLOW = 0                       # times the second fit chooses its pixels again where it converges (photofit.fit):
                                 # none. Measured (bench/results/chart_envelope_follow_2026-12-07.md): twice took
                                 # the 100 mm envelope photo 9 from 2.6 mm to 0.08 mm (pixels chosen at a start
                                 # 9 mm off had favoured it), 6 of 14 photos within bounds to 8 (Cycles: 4 → 5
                                 # of 5), but tests/test_calibrate.py's over-exposed 4:3 photo from 0.07 mm to
                                 # 1.31 mm: its own cost is least 1.3 mm from the true setup, which pixels chosen
                                 # 5.5 mm off had hidden
DESCRIBED_START = False          # a photo with fewer than MIN_MARKERS markers and no print aligned beside a ball that
                                 # fills it: refused ("markers", which says to zoom out), not fitted from the camera
                                 # the scene describes. Measured (bench/results/chart_envelope_described_2026-12-07.md):
                                 # the 100 mm envelope's photos 0 and 2 end 159 / 196 mm off from there (warned), and
                                 # even started at the true setup their colours alone leave the ball 3.2 / 2.7 mm off
DESCRIBED_BALL_MM = 25.0         # a fit that puts the ball farther than this from where the scene says (five times
                                 # the envelope's 5 mm) ...
DESCRIBED_IOR = 0.15             # ... or its IOR farther than this from the scene's (3 σ of photofit.IOR_PRIOR)
                                 # contradicts the setup the person measured: a warning (bench/chart_envelope.py's
                                 # 100 mm photo 12, the ball filling the photo and 8 markers in one strip: ball
                                 # 86 mm and IOR 0.20 off, its residuals within EXPLAINED_*)
K1_SEEN = 0.01                   # a k1 found (predistort.lens) beyond this is fitted; else held at 0 (measured:
                                 # −0.0005 untouched, −0.030 and +0.025 for k1 = ∓0.02 at the scene's focal length)
TONE_NOTE = ("The photo looks tone-mapped (HDR: its brightness follows the brightness around it, slope "
             "{slope:+.2f}, where a photo's own is 0). The fit takes that up: it compares the colours under an "
             "exposure of their own around each pixel (predistort.photofit.Model.scaled).")
DIAGONAL_35MM = math.hypot(36, 24)   # the 35 mm frame's diagonal: what "35 mm-equivalent" refers to
OTHER_DICTIONARIES = ("DICT_4X4_1000", "DICT_APRILTAG_16h5", "DICT_5X5_1000", "DICT_6X6_1000", "DICT_7X7_1000", "DICT_ARUCO_ORIGINAL",
                      "DICT_APRILTAG_36h11")

MESSAGES = {
    "dark": "The photo is too dark: light the chart evenly (daylight or a bright room) and take it again.",
    "blurred": "The photo is too blurred to read the chart's markers: hold the camera still, focus on the "
               "chart and take it again.",
    "markers": "The chart's markers were not found beside the ball: photograph the chart from where you will look "
               "at the print, with the lens the setup says (zoom out, not in, if the ball fills the picture), so "
               "that the markers around the ball show.",
    "wrong": "These markers are not this scene's chart: print chart.pdf made for this scene (python -m "
             "predistort chart) and photograph that one.",
    "other": "This does not look like a photo of the calibration chart: print chart.pdf, put it behind the ball "
             "as the scene says and photograph it through the ball.",
    "unexplained": "This setup does not explain the photo (the print's points {sigma:.1f} σ off, colours "
                   "{colour:.3f} off), so do not print for it: check that the scene's ball diameter and print "
                   "size are the ones you measured, turn off HDR and filters, and calibrate again.",
    "described": "This setup is not the one the scene describes (the ball {ball_mm:.0f} mm from where it says, "
                 "the IOR {ior:.2f} against its {nominal_ior:.2f}), so do not print for it unless you measure that: "
                 "take the photo from farther back, with more of the chart beside the ball, and calibrate again.",
    "tone": "The photo's tone curve is not sRGB's (its brightness goes as the light^{power:.2f}: a filter, a "
            "camera app's own curve or a raw editor's), which this fit does not model, so do not print for this "
            "setup: take the photo again with the phone's own camera app, filters off.",
    "impossible": "No possible setup explains this photo: check that the scene's ball diameter and print size "
                  "are the ones you measured, turn off HDR and filters, and take the photo again.",
    "colours": "The colours seen through the ball do not match the chart's: turn off HDR, filters and night "
               "mode, light the chart evenly without glare on the ball, and take the photo again.",
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


def tan_half_fov(focal_35mm, width, height):
    """tan(horizontal fov / 2) of a `width` × `height` photo whose 35 mm-equivalent focal length is given."""
    return DIAGONAL_35MM / (2 * focal_35mm) * width / math.hypot(width, height)


@dataclass
class Photo:
    """A photo ready to fit: ``rgb`` [H, W, 3] uint8 upright, ``linear`` [h, w, 3] float64 linear light at the
    work size, ``linear_full`` [H, W, 3] float32 linear light (the print's alignment), ``focal_35mm`` (None if
    unknown), ``jpeg`` how its file was compressed (:func:`predistort.encoding.jpeg_encoding`; None if not a
    JPEG), ``file_size`` the file's upright (width, height). ``rgb`` and ``linear_full`` are the file's pixels
    averaged down by a whole factor in linear light when it has more than :data:`ALIGN_PIXELS`
    (:attr:`reduction`): the markers, the print's alignment and the points fitted are in their pixels."""
    rgb: np.ndarray
    linear: np.ndarray
    linear_full: np.ndarray
    focal_35mm: float = None
    jpeg: dict = None
    file_size: tuple = None

    @property
    def size(self):
        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def reduction(self):
        """The file's pixels per pixel of ``rgb`` (1 when it was not reduced)."""
        return (self.file_size or self.size)[0] / self.size[0]


def read_photo(source, focal_mm=None):
    """The :class:`Photo` of `source` (a path, bytes, PIL image or array; see ``images.load_image``)."""
    try:
        image = load_image(source)
    except ImageError as e:
        raise CalibrationError(str(e)) from None
    rgb = np.asarray(image)
    width, height = image.size
    # Light adds up in linear units: undo sRGB first (a table of the 256 codes), then average blocks down, to
    # at most ALIGN_PIXELS by a whole factor (the markers and the print's alignment), and to the work size.
    factor = max(1, math.ceil(math.sqrt(width * height / ALIGN_PIXELS)))
    if factor > 1:
        reduced = (round(width / factor), round(height / factor))
        full = np.empty((reduced[1], reduced[0], 3), np.float32)
        band = 64 * factor                       # by bands of rows: no float copy of the whole file
        for top in range(0, height, band):
            rows = slice(top // factor, min(reduced[1], round(min(height, top + band) / factor)))
            part = cv2.resize(linear_8bit(rgb[top:top + band]), (reduced[0], rows.stop - rows.start),
                              interpolation=cv2.INTER_AREA)
            full[rows] = part
        del image
        rgb = np.round(linear_to_srgb(full) * 255).astype(np.uint8)
    else:
        full = linear_8bit(rgb)
    linear = full
    scale = WORK_SIDE / max(full.shape[1], full.shape[0])
    if scale < 1:
        size = (max(8, round(full.shape[1] * scale)), max(8, round(full.shape[0] * scale)))
        linear = cv2.resize(full, size, interpolation=cv2.INTER_AREA)
    jpeg = jpeg_encoding(source) if width * height <= JPEG_MODEL_PIXELS else None
    return Photo(rgb, linear.astype(np.float64), full, focal_mm if focal_mm else _focal_35mm(source), jpeg,
                 (width, height))


# ---------------------------------------------------------------------------------------------------------
# 2. Markers and the camera's pose
# ---------------------------------------------------------------------------------------------------------
def _detector(name=None):
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_CONTOUR     # the least biased on blurred markers
    params.perspectiveRemovePixelPerCell = CELL_PIXELS
    codes = chart.dictionary() if name is None else cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name))
    return cv2.aruco.ArucoDetector(codes, params)


def _board(layout):
    """The chart's markers as an OpenCV board (their corners on the print, z = 0)."""
    objects = np.concatenate([layout.corners, np.zeros(layout.corners.shape[:2] + (1,))], -1).astype(np.float32)
    return cv2.aruco.Board(list(objects), chart.dictionary(), layout.ids.astype(np.int32))


def _detect(gray, layout):
    """``(corners, ids, rejected)`` of the chart's dictionary's markers in `gray`: ArUco's detector, then the
    markers the layout puts where the ones found say (a homography through them) read again among the candidates
    it rejected (``refineDetectedMarkers``: a marker small, blurred or with a misread cell); markers with a corner
    within :data:`EDGE_PX` of the photo's edge are dropped (the frame may cut them, and their corners with them).
    ``rejected``: the candidates left, [K, 4, 2]."""
    detector = _detector()
    corners, ids, rejected = detector.detectMarkers(gray)
    if ids is not None and len(ids) and len(rejected):
        try:
            corners, ids, rejected, _ = cv2.aruco.ArucoDetector(
                chart.dictionary(), detector.getDetectorParameters(),
                cv2.aruco.RefineParameters(REFIND_PX, 3.0, True)).refineDetectedMarkers(
                    gray, _board(layout), corners, ids, rejected)
        except cv2.error:                       # a homography it cannot make: the markers found stand
            pass
    rejected = np.array([c.reshape(4, 2) for c in rejected], np.float64).reshape(-1, 4, 2)
    if ids is None or not len(ids):
        return np.zeros((0, 4, 2)), np.zeros(0, int), rejected
    corners = np.array([c.reshape(4, 2) for c in corners], np.float64)
    return corners, ids.ravel().astype(int), rejected


def _inside(corners, size, margin):
    """[N] bool: quads `corners` [N, 4, 2] wholly `margin` pixels or more inside a photo of `size` (w, h)."""
    width, height = size
    return ((corners >= margin) & (corners <= np.array([width - 1 - margin, height - 1 - margin]))).all((1, 2))


@functools.lru_cache(maxsize=4)
def _templates(ids):
    """[M, S²] the code cells (the 4 × 4 inside the black border) of the markers `ids` (a tuple), MATCH_SAMPLES
    samples a cell each way, zero mean and unit norm; and the ids with a code that is not all one colour."""
    codes = chart.dictionary()
    n = MATCH_SAMPLES
    out, kept = [], []
    for i in ids:
        bits = cv2.aruco.generateImageMarker(codes, int(i), chart.MARKER_CELLS).astype(np.float64)[1:-1, 1:-1]
        t = np.kron(bits, np.ones((n, n))).ravel()
        t -= t.mean()
        if np.linalg.norm(t) > 0:
            out.append(t / np.linalg.norm(t))
            kept.append(int(i))
    return np.array(out), np.array(kept)


def _read_codes(luminance, quads):
    """[K, 4, S²] the code cells of candidates `quads` [K, 4, 2] read from `luminance` (bilinear), for each of the
    four corners taken as the marker's top left (the quads clockwise as the photo shows them), zero mean and unit
    norm."""
    n = MATCH_SAMPLES
    inner = chart.MARKER_CELLS - 2
    c = 1 + (np.arange(inner * n) + 0.5) / n                          # cell coordinates of the samples
    gx, gy = np.meshgrid(c, c)
    grid = np.stack([gx.ravel(), gy.ravel()], -1)
    square = np.array([[0, 0], [6, 0], [6, 6], [0, 6]], np.float32) * (chart.MARKER_CELLS / 6)
    points = []
    for quad in quads:
        for r in range(4):
            H = cv2.getPerspectiveTransform(square, np.roll(quad, -r, axis=0).astype(np.float32))
            p = np.concatenate([grid, np.ones((len(grid), 1))], 1) @ H.T
            points.append(p[:, :2] / p[:, 2:])
    points = np.array(points, np.float32)                             # [K·4, S², 2]: rows under remap's 2¹⁵
    read = cv2.remap(luminance, points[..., 0], points[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    read = read.reshape(len(quads), 4, -1).astype(np.float64)
    read -= read.mean(-1, keepdims=True)
    return read / np.linalg.norm(read, axis=-1, keepdims=True).clip(1e-12)


def identify(photo, layout, corners, ids, candidates):
    """The markers among ArUco's rejected `candidates` [K, 4, 2] (quads with a black border whose cells it could
    not read: a small marker of a blurred photo smears its cells), each read as the layout's marker whose code
    cells correlate best with the photo's (linear light, every corner tried as the top left): a marker is taken
    when its correlation is at least :data:`MATCH` and beats every other marker's and orientation's by
    :data:`MATCH_MARGIN`, its id not among `ids`. Returns ``(ids, corners)`` with them added (ArUco's order)."""
    if not len(candidates):
        return ids, corners
    # Clockwise as the photo shows them (y down), and not where a marker was found.
    area = (candidates[:, :, 0] * np.roll(candidates[:, :, 1], -1, 1) -
            np.roll(candidates[:, :, 0], -1, 1) * candidates[:, :, 1]).sum(1)
    candidates = np.where((area < 0)[:, None, None], candidates[:, ::-1], candidates)
    if len(corners):
        side = np.linalg.norm(corners[:, 0] - corners[:, 1], axis=-1).mean()
        near = np.linalg.norm(candidates.mean(1)[:, None] - corners.mean(1)[None], axis=-1).min(1) < side / 2
        candidates = candidates[~near]
    if not len(candidates):
        return ids, corners
    templates, known = _templates(tuple(int(i) for i in layout.ids))
    luminance = np.ascontiguousarray(photo.linear_full.mean(-1), dtype=np.float32)
    scores = np.einsum("kra,ma->krm", _read_codes(luminance, candidates), templates)    # [K, 4, M]
    flat = scores.reshape(len(candidates), -1)
    order = np.argsort(-flat, 1)
    best, second = np.take_along_axis(flat, order[:, :1], 1)[:, 0], np.take_along_axis(flat, order[:, 1:2], 1)[:, 0]
    taken = {int(i) for i in ids}
    new_ids, new_corners = [], []
    for k in np.argsort(-best):
        r, m = divmod(int(order[k, 0]), len(known))
        if best[k] >= MATCH and best[k] - second[k] >= MATCH_MARGIN and int(known[m]) not in taken:
            taken.add(int(known[m]))
            new_ids.append(int(known[m]))
            new_corners.append(np.roll(candidates[k], -r, axis=0))
    if not new_ids:
        return ids, corners
    # Only those that agree with one view of the print: a homography through every marker's corners (RANSAC,
    # within WRONG_LAYOUT of a marker's side), the markers ArUco read kept whatever it says. Without one read,
    # MIN_IDENTIFIED must agree (text and patterns have quads whose cells correlate with some marker).
    all_ids = np.concatenate([ids, new_ids]).astype(int)
    all_corners = np.concatenate([corners.reshape(-1, 4, 2), np.array(new_corners)]).astype(np.float64)
    side = float(np.linalg.norm(all_corners[:, 0] - all_corners[:, 1], axis=-1).mean())
    index = {int(i): k for k, i in enumerate(layout.ids)}            # the markers' corners in the print's plane
    objects = np.concatenate([layout.corners[index[int(i)]] for i in all_ids])
    H, inliers = cv2.findHomography(objects, all_corners.reshape(-1, 2), cv2.RANSAC, WRONG_LAYOUT * side)
    if H is None:
        return ids, corners
    agree = inliers.reshape(-1, 4).all(1)
    agree[:len(ids)] = True
    if not len(ids) and agree.sum() < MIN_IDENTIFIED:
        return ids, corners
    return all_ids[agree], all_corners[agree]


def find_markers(photo, layout):
    """``(ids [N], corners [N, 4, 2] pixel coordinates of the full photo)`` of the chart's markers (ArUco's,
    :func:`_detect`, and those :func:`identify` reads among its rejected candidates; none cut by the photo's
    edge), or raise :class:`CalibrationError` saying why none can be used (dark, another chart, blurred, the
    markers out of the picture, no chart)."""
    gray = cv2.cvtColor(photo.rgb, cv2.COLOR_RGB2GRAY)
    if np.percentile(photo.linear.mean(-1), 99) < DARK:
        raise CalibrationError(MESSAGES["dark"])
    corners, ids, rejected = _detect(gray, layout)
    if not len(ids):
        # A phone's tone curve (HDR, shadows lifted) can leave the markers' black too grey for the detector's
        # threshold in sRGB: the grey levels spread evenly (measured: none of the 4:3 test photo's markers
        # under x / (x + 0.25), 20 after equalising).
        corners, ids, rejected = _detect(cv2.equalizeHist(gray), layout)
    known = np.isin(ids, layout.ids)
    # Another chart: its markers read, none of this layout's (one stray read, e.g. in the ball's rim, is not one).
    if (len(ids) >= MIN_MARKERS and not known.any()) or (len(ids) >= 4 and known.mean() < 0.5):
        raise CalibrationError(MESSAGES["wrong"])
    ids, corners = identify(photo, layout, corners[known], ids[known], rejected)
    whole = _inside(corners, photo.size, EDGE_PX)
    if whole.sum() >= 1:
        return ids[whole], corners[whole]
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
    nearly every hue (the field's middle shows through the ball: five of six sixths of the hue circle, as a ball
    that fills the picture shows part of it), and no flat areas (:data:`FLAT_SHARE`: the field and its photo vary
    everywhere; a graphic has areas of one colour). A heuristic: it tells a photo too close to the chart from a
    photo of something else. Measured: photos of the chart through the ball 100 mm from the camera, 0.54–0.81 of
    the pixels strong, 5–6 hues (a 50° lens: the ball fills the picture, 5), flat 0.001–0.002 (640 × 480 and
    1920 × 1440); examples/landscape.png, 0.97 strong, 5 hues, flat 0.13; six blocks of colour on white, flat
    0.39. (Its grain, the median gradient, was the test before: 0.0034 at 640 × 480 but 0.0017 at 1920 × 1440,
    against a bound of 0.003, so a larger photo of the same view was told it is not the chart.)"""
    x = linear_to_srgb(photo.linear)
    chroma = x.max(-1) - x.min(-1)
    hue = np.arctan2(np.sqrt(3) * (x[..., 1] - x[..., 2]), 2 * x[..., 0] - x[..., 1] - x[..., 2])
    strong = chroma > 0.15
    hues = np.histogram(hue[strong], 6, (-np.pi, np.pi))[0].astype(bool).sum()
    gy, gx = np.gradient(x.mean(-1))
    flat = (np.hypot(gx, gy) < FLAT_STEP) & (x.max(-1) < 0.98)          # (a clipped white is flat in any photo)
    return 0.3 < strong.mean() < 0.92 and hues >= 5 and flat.mean() < FLAT_SHARE


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
    if len(ids) < MIN_MARKERS:
        return ids, corners
    objects, pixels = layout.object_points(ids), corners.reshape(-1, 2)
    side = float(np.linalg.norm(corners[:, 0] - corners[:, 1], axis=-1).mean())
    ok, _, _, inliers = cv2.solvePnPRansac(objects, pixels, intrinsics(tan_x, *size), None,
                                           reprojectionError=WRONG_LAYOUT * side, iterationsCount=200)
    if not ok or inliers is None:
        return ids, corners
    whole = np.bincount(inliers.ravel() // 4, minlength=len(ids)) == 4
    return (ids[whole], corners[whole]) if whole.sum() >= MIN_MARKERS else (ids, corners)


def _corner_directions(corners):
    """[N, 4, 2] unit vectors from each marker's centre to its corners (in the photo)."""
    out = corners - corners.mean(1, keepdims=True)
    return out / np.linalg.norm(out, axis=-1, keepdims=True).clip(1e-9)


def undo_inset(layout, ids, corners, tan_x, size):
    """`corners` moved out along their marker's diagonals by the inset the detector leaves, and the inset (px).

    ArUco finds a marker as a dark blob thresholded against its surroundings; on a blurred photo (a phone's
    optics, the render's pixel filter, JPEG) stored in sRGB, where the dark half of every edge's ramp reads
    darker than it is, that blob is smaller than the black square, so every corner sits inside the true one
    along the marker's diagonal: ~3 px in a 960 × 720 photo of a 256-texel chart. The inset shrinks each marker
    about its own centre and barely moves the pose, yet it is as large as every other corner error together.
    It is the median radial residual of the markers' pose (a few fixed-point rounds); the corners come back
    with their noise alone (~1 px RMS, :data:`CORNER_PX`)."""
    outward = _corner_directions(corners)
    objects, K, inset = layout.object_points(ids), intrinsics(tan_x, *size), 0.0
    for _ in range(4):
        pose = _solve_pnp(objects, (corners + inset * outward).reshape(-1, 2), K)
        if pose is None:
            return corners, 0.0
        projected = cv2.projectPoints(objects, *pose, K, None)[0].reshape(corners.shape)
        inset = float(np.median(((projected - corners) * outward).sum(-1)))
    return corners + inset * outward, inset


def _solve_pnp(objects, pixels, K):
    """``(rvec, tvec)`` of the print's points `objects` seen at `pixels` by camera matrix `K`: ``cv2.solvePnP``,
    IPPE for the plane, then refined iteratively; None when it finds no pose."""
    ok, rvec, tvec = cv2.solvePnP(objects, pixels, K, None, flags=cv2.SOLVEPNP_IPPE)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(objects, pixels, K, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
    return (rvec, tvec) if ok else None


def print_warp(config, origin, rotation, tan_x, size, texels):
    """The homography [3, 3] from photo pixels to the chart's texels (a `texels`-texel texture) of the print seen
    directly by the camera at `origin`, `rotation` (world-from-camera: left, up, forward), `tan_x`, on a photo of
    `size` (w, h): the start of the print's alignment where no marker gives one."""
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * config.plane_scale * 0.5
    q = (np.concatenate([corners, np.zeros((4, 1))], 1) - origin) @ rotation        # camera: left, up, forward
    K = intrinsics(tan_x, *size)
    pixels = np.stack([K[0, 2] - K[0, 0] * q[:, 0] / q[:, 2], K[1, 2] - K[1, 1] * q[:, 1] / q[:, 2]], -1)
    texel = np.stack(trace.texel_coordinates(corners[:, 0], corners[:, 1], config.plane_scale, texels), -1)
    return cv2.getPerspectiveTransform(pixels.astype(np.float32), texel.astype(np.float32)).astype(np.float64)


def pose_from_points(objects, pixels, tan_x, size):
    """The camera's ``(origin [3], rotation [3, 3] world-from-camera: left, up, forward)`` from world points on
    the print `objects` [N, 3] seen at photo pixels `pixels` [N, 2] (:func:`_solve_pnp`), and the reprojection
    RMS in pixels."""
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    K = intrinsics(tan_x, *size)
    pose = _solve_pnp(objects, pixels, K)
    if pose is None:
        raise CalibrationError(MESSAGES["wrong"])
    rvec, tvec = pose
    projected = cv2.projectPoints(objects, rvec, tvec, K, None)[0].reshape(-1, 2)
    rms = float(np.sqrt(((projected - pixels) ** 2).sum(-1).mean()))
    # OpenCV's camera looks along +z with x right and y down; Mitsuba's camera frame is (left, up, forward).
    R_cv = cv2.Rodrigues(rvec)[0]
    flip = np.diag([-1.0, -1.0, 1.0])
    rotation = R_cv.T @ flip
    origin = (-R_cv.T @ tvec).ravel()
    return origin, rotation, rms


# ---------------------------------------------------------------------------------------------------------
# 3. The ball and the start (4., the joint fit: predistort.photofit)
# ---------------------------------------------------------------------------------------------------------
def find_ball(model, origin, rotation, tan_x):
    """The ball in the photo: ``(s, t, radius)`` of its silhouette on the film (film fractions; the radius in
    film widths), as the largest disc (:func:`_largest_disc`) of the region where the photo departs from the
    chart seen without the ball (the markers' camera `origin`, `rotation`, `tan_x`), or the circle around the
    region where the two agree. Raises CalibrationError when there is none, or when the region fills less than
    half of that disc."""
    w, h = model.work_size
    every = torch.arange(w * h)
    col, row = (every % w).double(), (every // w).double()
    d = trace.film_directions(torch.from_numpy(rotation), math.degrees(2 * math.atan(tan_x)), (w, h),
                              (col + 0.5) / w, (row + 0.5) / h)
    u, v, on = trace._land(torch.from_numpy(origin).expand_as(d), d, model.config.plane_scale)
    free = torch.where(on[:, None], trace.sample(model.texture, u, v), torch.ones(len(u), 3, dtype=torch.float64))
    free, photo = free.numpy().reshape(h, w, 3), model.work
    # The exposure: most of the photo is the print seen directly, but an over-exposed photo's clipped pixels
    # read darker than the print is, so only the unclipped ones tell it.
    unclipped = photo.max(-1) < SATURATED
    ratios = (photo / free.clip(1e-3))[unclipped] if unclipped.mean() > 0.05 else (photo / free.clip(1e-3)).reshape(-1, 3)
    gain = np.median(ratios, 0)
    expected = np.minimum(free * gain, 1.0)                          # what the photo shows without the ball, clipped
    differs = (np.abs(photo - expected).mean(-1) > BALL_DIFFERS * gain.mean()).astype(np.uint8)
    size = max(3, round(w / 40))                 # opens away the thin edges of a camera a little off
    differs = cv2.morphologyEx(differs, cv2.MORPH_OPEN, np.ones((size, size), np.uint8))
    contours, _ = cv2.findContours(differs, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        raise CalibrationError(MESSAGES["ball"])
    # The ball's middle may match the print's middle seen directly (a far ball shows it shrunk): the region's
    # holes are filled. Markers the pose misplaces (one marker found, the focal length off) differ too, and may
    # touch the ball: the ball is the largest disc inside the region, not the circle around all of it.
    filled = np.zeros_like(differs)
    cv2.drawContours(filled, contours, -1, 1, -1)
    filled = _fill_open_holes(filled, max(contours, key=cv2.contourArea))
    if filled.all():                 # nothing in the photo is the print as the markers put it: a ball that fills
        raise CalibrationError(MESSAGES["markers"])          # the photo, seen from one marker's rough pose
    circle = _largest_disc(filled)
    if circle is None:
        raise CalibrationError(MESSAGES["ball"])
    x, y, radius = circle
    # Where nothing touches the ball, the circle around its region's biggest piece (its convex hull: a broken
    # ring) agrees with that disc and takes in the rim's outermost pixels: the better start (the 4:3 test photo's
    # ball 0.26 mm from the truth from it, 0.71 mm from the disc's edge fit).
    hull = cv2.convexHull(max(contours, key=lambda c: cv2.contourArea(cv2.convexHull(c))))
    (hx, hy), around = cv2.minEnclosingCircle(hull)
    if abs(around - radius) < DISC_AGREE * radius and math.hypot(hx - x, hy - y) < DISC_AGREE * radius:
        x, y, radius = hx, hy, around
    disc = np.zeros_like(filled)
    cv2.circle(disc, (round(x), round(y)), round(radius), 1, -1)
    if not radius >= 4 or (filled & disc).sum() < 0.5 * disc.sum():     # (the disc's part inside the photo)
        raise CalibrationError(MESSAGES["ball"])
    return (x + 0.5) / w, (y + 0.5) / h, radius / w


DISC_DIRECTIONS = 90             # _largest_disc: the region's edge is found along this many directions ...
DISC_AGREE = 0.1                 # ... and those within this share of the median radius fit the circle ...
DISC_RIM = 12                    # ... when at least this many end on the rim inside the photo (a ball cut by three
                                 # of the photo's edges: 14 of 90 from its disc's peak, at the photo's edge)


def _fill_open_holes(filled, piece):
    """`filled` with the holes of its largest `piece` that the photo's edge opens filled too: a ball wider than
    the photo whose middle matches the print seen directly (a camera close to the ball sees a small part of
    the print, magnified, and it may be about the print's colour there) shows as a ring cut by the edge, and
    its hole reaches the edge. Only what lies inside the piece's convex hull and touches the edge is filled;
    a hole the edge does not reach was filled already."""
    hull = np.zeros_like(filled)
    cv2.drawContours(hull, [cv2.convexHull(piece)], -1, 1, -1)
    _, labels = cv2.connectedComponents((hull & (1 - filled)).astype(np.uint8), connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    for label in edge[edge > 0]:
        filled[labels == label] = 1
    return filled


def _largest_disc(region):
    """``(x, y, radius)`` pixels of the disc that `region` (uint8 [h, w], holes filled) is made of, or None:
    started at the largest disc inside it (the distance transform's peak), the region's edge is found along
    :data:`DISC_DIRECTIONS` directions from there; those that leave the photo are dropped, those that run out
    into something touching the disc (past :data:`DISC_AGREE` of the median radius) too, and a circle is
    fitted to the rest (Kåsa's least squares), twice. A ball cut by the photo's edge is found whole."""
    h, w = region.shape
    distance = cv2.distanceTransform(region, cv2.DIST_L2, 5)
    _, peak, _, (x, y) = cv2.minMaxLoc(distance)
    if not 2 <= peak <= math.hypot(w, h):   # (no pixel outside the region: the transform's FLT_MAX)
        return None
    x, y, radius = float(x), float(y), float(peak)
    angles = np.linspace(0, 2 * np.pi, DISC_DIRECTIONS, endpoint=False)
    steps = np.arange(0, 2 * max(w, h), 0.5)
    for _ in range(2):
        px = x + np.cos(angles)[:, None] * steps
        py = y + np.sin(angles)[:, None] * steps
        outside = (px < 0) | (py < 0) | (px > w - 1) | (py > h - 1)
        on = ~outside
        on[on] = region[np.round(py[on]).astype(int), np.round(px[on]).astype(int)] > 0
        ends = np.argmin(on, axis=1)                    # the first step off the region (or out of the photo)
        kept = ~outside[np.arange(len(angles)), ends] & (ends > 0)
        if kept.sum() < DISC_RIM:
            break
        radii = steps[ends[kept]]
        agree = np.abs(radii - np.median(radii)) < DISC_AGREE * np.median(radii)
        ex, ey = x + np.cos(angles[kept][agree]) * radii[agree], y + np.sin(angles[kept][agree]) * radii[agree]
        if len(ex) < 8:
            break
        A = np.stack([ex, ey, np.ones_like(ex)], 1)
        (a, b, c), *_ = np.linalg.lstsq(A, ex ** 2 + ey ** 2, rcond=None)
        x, y = a / 2, b / 2
        radius = float(np.sqrt(max(c + x * x + y * y, 0)))
        if not 0 <= x < w and 0 <= y < h:
            return None
    return x, y, radius


def start_for(model, config, circle, tan_x, pose=None):
    """θ to start the fit from, for the focal length of horizontal tan(fov/2) = `tan_x`: the camera from the
    model's points on the print (PnP), or at ``pose`` = (origin, rotation) when given, the ball where its
    silhouette `circle` puts it (its known radius sets its distance), the scene's IOR, the exposure by least
    squares. Sets the model's starting camera."""
    if pose is None:
        origin, rotation, _ = pose_from_points(model.objects.numpy(), model.points, tan_x, model.photo_size)
    else:
        origin, rotation = pose
    model.rotation0, model.tan_x0 = torch.from_numpy(rotation), tan_x
    s, t, radius = circle
    rays = trace.film_directions(model.rotation0, math.degrees(2 * math.atan(tan_x)), model.work_size,
                                 torch.tensor([s, s + radius], dtype=torch.float64),
                                 torch.tensor([t, t], dtype=torch.float64))
    angle = torch.arccos((rays[0] * rays[1]).sum().clamp(-1, 1))
    centre = torch.from_numpy(origin) + rays[0] * config.sphere_radius / torch.sin(angle)
    theta = torch.tensor([*origin, 0, 0, 0, 0, *centre.tolist(), config.sphere_ior, 1, 1, 1, 0, 0],
                         dtype=torch.float64)
    # The exposure by least squares, twice: the fitted pixels are chosen by their predicted brightness.
    for _ in range(2):
        model.choose_pixels(theta)
        if model.ball_pixels < 50:
            raise CalibrationError(MESSAGES["ball"])
        p = model.predict(theta, model.pixels)
        used = model.channels
        theta[11:14] = theta[11:14] * (used * p * model.observed).sum(0) / (used * p * p).sum(0).clamp_min(1e-12)
    return theta


# ---------------------------------------------------------------------------------------------------------
# 5. The answer
# ---------------------------------------------------------------------------------------------------------
def unexplained(residual):
    """The warnings (sentences saying what to do) of a fit whose `residual` (:class:`Calibration`'s) says it did not
    explain the photo: the print's points fitted farther than :data:`EXPLAINED_POINTS` of their own σ (RMS; the
    markers' corners at :data:`predistort.photofit.CORNER_PX` where the print was not aligned), or its colours
    farther than :data:`EXPLAINED_COLOUR` from the prediction (mean absolute, linear ÷ the exposure's gain).
    Measured on tests/test_calibrate.py's 4:3 setup (640 × 480, exposure 1.0): the scene of the true ball,
    points 0.88 σ, colours 0.006 (camera 1.0 mm, ball 0.14 mm off); a scene whose ball is 10 % too big, points
    14.7 σ, colours 0.007 (camera 52.5 mm, ball 7.8 mm off); 10 % too small (another chart layout), the print
    not aligned, corners 64 px off, colours 0.056 (camera 129 mm off). The colours are compared under their
    local exposure (:meth:`predistort.photofit.Model.scaled`), so a photo tone-mapped locally (HDR) is not
    among these: tests/test_calibrate_phone.py fits one to within the bounds. And first, a global tone curve
    beyond :data:`TONE_GLOBAL` (``residual["tone_global"]``, :meth:`predistort.photofit.Model.tone_mapping`),
    which bends each colour on its own, as no exposure does. And last, a fit that is not the setup the scene
    describes (``residual["described"]``: the ball beyond :data:`DESCRIBED_BALL_MM` from its place, or the IOR
    beyond :data:`DESCRIBED_IOR` from the scene's), though its residuals are small: a photo the ball fills
    explains itself with a setup centimetres off."""
    warnings = []
    if abs(residual.get("tone_global", 0.0)) > TONE_GLOBAL:
        warnings.append(MESSAGES["tone"].format(power=1 + residual["tone_global"]))
    # "not ≤": a residual that is not a number (nothing left to compare) is not an explanation either.
    if not (residual["points_sigma"] <= EXPLAINED_POINTS and residual["colour"] <= EXPLAINED_COLOUR):
        warnings.append(MESSAGES["unexplained"].format(sigma=residual["points_sigma"], colour=residual["colour"]))
    described = residual.get("described")
    if described and not (described["ball_mm"] <= DESCRIBED_BALL_MM
                          and abs(described["ior"] - described["nominal_ior"]) <= DESCRIBED_IOR):
        warnings.append(MESSAGES["described"].format(**described))
    return warnings


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
    except ValueError:                      # the fit ran to a setup that cannot be (the scene's checks)
        raise CalibrationError(MESSAGES["impossible"]) from None


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
    width, height = image.size
    if image.focal_35mm:
        tan_x = tan_half_fov(image.focal_35mm, width, height)
    else:
        tan_x = math.tan(math.radians(config.fov) / 2)
    try:
        ids, corners = find_markers(image, layout)
    except CalibrationError as e:           # no whole marker beside a ball that fills the photo: the described start
        if not DESCRIBED_START or str(e) != MESSAGES["markers"]:
            raise
        ids, corners = np.zeros(0, int), np.zeros((0, 4, 2))
    inset = 0.0
    if len(ids):
        ids, corners = consistent_markers(layout, ids, corners, tan_x, image.size)
        corners, inset = undo_inset(layout, ids, corners, tan_x, image.size)
    objects = layout.object_points(ids) if len(ids) else np.zeros((0, 3))
    # (DESCRIBED_START) Fewer than MIN_MARKERS: the camera where the scene describes it (one marker's corners put
    # it farther off: measured, the ball not found from there), until the print beside the ball says.
    described = DESCRIBED_START and len(ids) < MIN_MARKERS
    if described:
        origin, left, up, forward = camera_frame(config)
        rotation = np.stack([left, up, forward], 1)
    else:
        origin, rotation, rms = pose_from_points(objects, corners, tan_x, image.size)
        if rms > WRONG_LAYOUT * np.linalg.norm(corners[:, 0] - corners[:, 1], axis=-1).mean():
            raise CalibrationError(MESSAGES["wrong"])
    say(0.2, f"{len(ids)} markers: finding the ball")
    model = Model(config, layout, texture, image, objects, corners, rotation, tan_x, image.focal_35mm)
    circle = find_ball(model, origin, rotation, tan_x)
    # The print seen beside the ball, aligned to the chart at full size (ECC): its points ~1 px → a few
    # thousandths, and the camera and the ball found again from them (one marker's corners start far off).
    say(0.25, "aligning the print seen beside the ball")
    ball_px = (circle[0] * width - 0.5, circle[1] * height - 0.5, circle[2] * width)
    # The JPEG's bias at the print's marker edges, modelled (ALIGN_JPEG) where the alignment reads the file's pixels.
    jpeg = image.jpeg if ALIGN_JPEG and image.reduction == 1 else None
    start_warp = print_warp(config, origin, rotation, tan_x, image.size, texture.shape[0]) if described else None
    view = align_print(image.linear_full, texture, layout, ids, corners, config, ball_px, start_warp, jpeg=jpeg)
    if view is None and len(ids) < MIN_MARKERS and not described:
        raise CalibrationError(MESSAGES["markers"])
    if view is not None:
        origin, rotation, _ = pose_from_points(view.objects, view.pixels, tan_x, image.size)
        circle = find_ball(model, origin, rotation, tan_x)
        ball_px = (circle[0] * width - 0.5, circle[1] * height - 0.5, circle[2] * width)
        view = align_print(image.linear_full, texture, layout, ids, corners, config, ball_px, view.warp,
                           jpeg=jpeg) or view
        # The lens's residual distortion: where the print aligns best as one homography (predistort.lens).
        say(0.27, "the lens's residual distortion")
        k1, through = find_k1(image.linear_full, tan_x, texture, layout, ids, corners, config, ball_px, view)
        if abs(k1) > K1_SEEN:                        # fitted, from there, with the print aligned through it
            view, model.k1_prior = through, K1_PRIOR
        else:                                        # held at 0: a freedom the photo does not need only takes up
            k1 = 0.0                                 # the model's own errors (and a wrong ball's: tests)
        model.use_points(view.objects, view.pixels, view.covariance)
    else:
        k1 = 0.0
    # (DESCRIBED_START) No print aligned: the camera where the scene describes it, the colours inside the ball
    # and beside it to tell the rest.
    pose = (origin, rotation) if view is None and described else None
    k1_tan_x = tan_x                                 # k1 is in units of this focal length (predistort.lens)
    # The focal length: EXIF's, else the one (of a scan around the scene's) whose start explains the photo best.
    say(0.28, "the start: the focal length whose start explains the photo best")
    # The start and the first fit compare the colours pixel by pixel under an exposure of each pixel's own
    # (Model.scaled at a reach of 0: their hues), which no tone curve that scales the light moves.
    model.gain_blur = GAIN_BLUR_HDR * max(model.work_size)
    scan = [tan_x] if image.focal_35mm else tan_x * np.exp(np.linspace(-FOCAL_SCAN, FOCAL_SCAN, FOCAL_STEPS))
    starts = []
    for candidate in scan:
        try:
            theta = start_for(model, config, circle, candidate, pose)
            theta[14] = k1 * (k1_tan_x / candidate) ** 2           # the same pixels moved at this focal length
        except CalibrationError:             # a focal length far off: the ball it puts shows too little colour
            continue
        starts.append((model.cost(theta), candidate, theta))
    if not starts:
        raise CalibrationError(MESSAGES["ball"])
    _, tan_x, theta = min(starts, key=lambda x: x[0])
    start_for(model, config, circle, tan_x, pose)       # (the model's starting camera: the θ kept is the scan's)
    say(0.3, f"{len(ids)} markers, ball found: fitting the camera, the ball and its IOR")
    # First at the scene's IOR (the focal length, the distances and the IOR trade against each other from a
    # poor start), then with the IOR free within its material's spread.
    model.ior_prior = 1e-4
    theta = fit(model, theta, None, covariance=False)[0]
    # Then, unless the photo is tone-mapped locally or vignetted (measured at that fit), the brightness within
    # GAIN_BLUR too.
    tone_local, _, vignette, _ = model.tone_mapping(theta)
    if abs(tone_local) <= TONE_SEEN and abs(vignette) <= VIGNETTE_SEEN:
        model.gain_blur = GAIN_BLUR * max(model.work_size)
    model.ior_prior = IOR_PRIOR
    theta = fit(model, theta, say, reselect=(0,), covariance=False, follow=FOLLOW)[0]
    # The focal length's profile (with EXIF too: its whole millimetres are a prior flat within ±0.5 mm, not the answer).
    say(0.82, "the focal length: refitting along the depth–focal valley")
    theta = profile_focal(model, theta, say)
    w, h = model.work_size
    theta, covariance, r = fit(model, theta, reselect=(), iterations=0)
    predicted = model.scaled(model.predict(theta, model.pixels))
    counted = model.channels.sum(-1)
    error = ((predicted - model.observed).abs() / theta[11:14] * model.channels).sum(-1) / counted.clamp(min=1)
    error[counted == 0] = float("nan")             # a pixel none of whose channels is fitted (clipped): left out
    ball_error = float(error[model.inside].nanmean())
    if not ball_error < BALL_RESIDUAL:               # the fit ran through, yet the ball's colours are not the chart's
        raise CalibrationError(MESSAGES["colours"])
    point_px = ((model.project(theta) - model.points_st) * torch.tensor([width, height])).norm(dim=-1)
    whitened = model.whiten @ (model.project(theta) - model.points_st).reshape(-1)
    points_sigma = float(whitened.pow(2).mean().sqrt()) if len(whitened) else 0.0     # no points: none off
    moved = (theta[7:10].numpy() - np.asarray(config.sphere_center)) * config.units_mm
    residual = {"colour": float(error.nanmean()), "ball_colour": ball_error,      # pixels: the file's
                "markers_px": float(point_px.pow(2).mean().sqrt()) * image.reduction, "markers": int(len(ids)),
                "marker_inset_px": round(inset * image.reduction, 3),
                "aligned": None if view is None else view.correlation,
                "points": len(model.points), "pixels": int(len(model.pixels)), "points_sigma": points_sigma,
                "described": {"ball_mm": float(np.linalg.norm(moved)), "ior": float(theta[10]),
                              "nominal_ior": float(config.sphere_ior)}}
    scene = _fitted_scene(config, model, theta, image.size)
    say(0.95, "drawing the overlay")
    every = model.predict(theta, torch.arange(w * h))          # the prediction everywhere: overlay, tone mapping
    residual["tone_local"], residual["tone_global"], *vignette = model.tone_mapping(theta, every)
    result = Calibration(scene, quantities(config, model, theta, covariance, vignette), residual,
                         overlay(model, theta, every), time.perf_counter() - start, image.focal_35mm)
    result.warnings = unexplained(residual)
    if not image.focal_35mm:
        result.notes.append("No focal length in the photo's EXIF: the field of view was fitted from the ball.")
    if abs(residual["tone_local"]) > TONE_LOCAL:
        result.notes.append(TONE_NOTE.format(slope=residual["tone_local"]))
    say(1.0, "done")
    return result
