"""The print seen directly: its homography in the photo by image alignment, and the markers' corners from it.

ArUco finds a marker's corners from its thresholded outline, ~1 px off in a 960 × 720 photo of a blurred,
JPEG-compressed chart, and those few dozen corners are all the pose had. The print beside the ball holds far
more: every pixel of every marker edge and of the colour field, each a known texel of the chart. A plane
seen by a pinhole camera is a homography of it, so (:func:`refine_corners`):

1. *The start.* The homography from the photo to the chart's texels through the markers' corners
   (``cv2.findHomography``).
2. *Which pixels.* The print seen directly: inside the print, outside the ball's silhouette grown by
   :data:`BALL_MARGIN` (the ball's rim, and its shadow and caustics on the print near it), and where the
   chart, at the photo's exposure, stays below the sensor's clipping (a clipped ramp is no longer a linear
   image of the chart, and the choice is made on the prediction, not on the noisy photo, so it is unbiased).
3. *Alignment.* OpenCV's ECC (``cv2.findTransformECCWithMask``, Evangelidis & Psarakis 2008): the
   homography that maximises the correlation between the photo's linear green channel and the chart's,
   read bilinearly between texel centres as the renderer reads it. The correlation is invariant to the
   exposure's gain and offset. No Gaussian prefilter: it would blur the photo in photo pixels and the chart
   in texels, a different blur wherever a texel is not one pixel, which biases the fit (0.5–1 px measured).
4. *The corners.* Each marker's corners where the homography puts them.

Limits: the photo's lens distortion is not modelled (one homography for the whole print); the print must be
flat; a fit that does not converge leaves the markers' own corners (:func:`refine_corners` says so).
"""
import cv2
import numpy as np

BALL_MARGIN = 1.15      # the ball's silhouette is left out this much wider than it is
UNCLIPPED = 0.9         # pixels whose predicted brightest channel is above this share of the clip are left out
ERODE_PX = 5            # ... and this many pixels around them (a pixel filter and JPEG spread the clip)
CHANNEL = 1             # the colour channel aligned: green (the chart's markers are black on white in all three)
ITERATIONS, EPSILON = 100, 1e-7     # ECC's stopping rule: at most these iterations, or this gain in correlation


def _texel_points(layout, ids, config, size):
    """[N·4, 2] texel coordinates (texel centres at integers, as :func:`predistort.trace.sample` reads them)
    of the markers' corners: the print's [−s, s]² onto the texture's `size` texels a side."""
    xy = layout.object_points(ids)[:, :2]
    return (xy / config.plane_scale + 1) / 2 * size - 0.5


def _apply(H, points):
    p = np.concatenate([points, np.ones((len(points), 1))], 1) @ H.T
    return p[:, :2] / p[:, 2:]


def refine_corners(linear, texture, layout, ids, corners, config, circle):
    """The markers' corners [N, 4, 2] (photo pixels, centres at integers) from the print's homography, and the
    alignment's correlation; ``(corners, None)`` unchanged when the alignment fails or the print seen directly
    is too small to align.

    Parameters: ``linear`` the full-size photo [H, W, 3] in linear light; ``texture`` the chart [R, R, 3] as
    made for ``config``; ``layout`` its markers; ``ids`` and ``corners`` [N, 4, 2] those found in the photo
    (the inset undone); ``circle`` the ball's silhouette ``(x, y, radius)`` in photo pixels."""
    height, width = linear.shape[:2]
    chart = np.ascontiguousarray(texture[..., CHANNEL], dtype=np.float32)
    texels = _texel_points(layout, ids, config, texture.shape[0])
    H, _ = cv2.findHomography(corners.reshape(-1, 2), texels)
    if H is None:
        return corners, None

    # -- which pixels: the print seen directly, the ball and clipped ramps left out ----------------------
    def seen(channel_image, warp):
        return cv2.warpPerspective(channel_image, warp, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
    yy, xx = np.mgrid[0:height, 0:width]
    x, y, radius = circle
    away = np.hypot(xx - x, yy - y) > BALL_MARGIN * radius
    brightest = seen(np.ascontiguousarray(texture.max(-1), dtype=np.float32), H)
    on_print = brightest >= 0
    if (on_print & away).sum() < 1000:
        return corners, None
    # The exposure (brightest channel against the chart's): most of the print is seen directly.
    gain = np.median(linear.max(-1)[on_print & away] / np.clip(brightest[on_print & away], 0.05, None))
    unclipped = cv2.erode((brightest * gain < UNCLIPPED).astype(np.uint8), np.ones((ERODE_PX, ERODE_PX), np.uint8))
    mask = (on_print & away & (unclipped > 0)).astype(np.uint8)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))           # no pixel whose bilinear read touches the border
    if mask.sum() < 1000:
        return corners, None

    # -- alignment: ECC on the linear green channel, no prefilter --------------------------------------
    photo = np.ascontiguousarray(linear[..., CHANNEL], dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ITERATIONS, EPSILON)
    try:
        correlation, warp = cv2.findTransformECCWithMask(photo, chart, mask, np.ones(chart.shape, np.uint8),
                                                         H.astype(np.float32), cv2.MOTION_HOMOGRAPHY, criteria, 1)
    except cv2.error:
        return corners, None

    # -- the corners where the homography puts them ------------------------------------------------------
    refined = _apply(np.linalg.inv(warp.astype(np.float64)), texels).reshape(corners.shape)
    return refined, float(correlation)
