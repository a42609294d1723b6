"""The photo's lens beyond a pinhole: its residual radial distortion k1, found by aligning the print through it.

A phone's main camera corrects its lens's distortion, and leaves a residual of a few hundredths (OpenCV's
convention, used throughout: a pinhole's normalised point (x_u, y_u) = camera coordinates ÷ depth, r² = x_u² +
y_u², is seen at x_d = x_u (1 + k1 r²); r in focal lengths, the principal point the photo's centre). k1 = −0.02
moves a 4:3 photo's corners by ~0.5 % of its width, ~2–3 px in 640: nothing for the markers, everything for the
print's alignment (:mod:`predistort.printview`, a homography a few thousandths of a pixel from the truth on an
undistorted photo), which must then see the print as a pinhole would.

:func:`find_k1` (phase 3 of :func:`predistort.calibrate.calibrate`):

1. *Candidates.* The photo (reduced to at most :data:`SCAN_PIXELS`) is undistorted for each k1 of
   :data:`K1_TRIED` (``cv2.remap``: each pixel of the pinhole's picture reads the photo where the lens put it)
   and the print aligned again there, from the homography found at k1 = 0.
2. *The best.* ECC's correlation is highest where the print seen directly is one homography of the chart: a
   parabola through the three gives k1 (kept within :data:`K1_LIMIT`).
3. *The points.* The print aligned once more at full size on the photo undistorted by that k1, and its lattice
   of points taken back to the photo's own pixels (with their covariance, through the distortion's Jacobian),
   where :class:`predistort.photofit.Model` projects with its own k1.

Limits: one radial term about the photo's centre (no k2, no tangential terms); the focal length is the one the
markers' pose was made with (k1 / f² is what the pixels tell: the fit's k1 is for its own focal length);
the photo's border is repeated where a pincushion (k1 > 0) undistorts it past its edge.
"""
import cv2
import numpy as np

from .printview import align_print

K1_TRIED = (-0.03, 0.0, 0.03)      # the k1 tried (they bracket a phone's residual: a few hundredths)
K1_LIMIT = 0.06                    # the parabola's k1 is kept within ± this
SCAN_PIXELS = 1_000_000            # the candidates are aligned on the photo averaged down to at most this many pixels


def _focal_px(tan_x, size):
    return size[0] / (2 * tan_x)


def distort_points(points, k1, tan_x, size):
    """Photo pixels [N, 2] (centres at integers) of a pinhole's pixels `points` through the lens (x_d = x_u (1 +
    k1 r²)), and the Jacobians [N, 2, 2] of that map."""
    centre = (np.asarray(size, np.float64) - 1) / 2
    f = _focal_px(tan_x, size)
    u = (np.asarray(points, np.float64) - centre) / f
    r2 = (u * u).sum(-1, keepdims=True)
    jac = (1 + k1 * r2)[..., None] * np.eye(2) + 2 * k1 * u[:, :, None] * u[:, None, :]
    return centre + u * (1 + k1 * r2) * f, jac


def undistort_points(points, k1, tan_x, size, rounds=10):
    """The inverse of :func:`distort_points` (fixed-point rounds): a pinhole's pixels of photo pixels `points`."""
    centre = (np.asarray(size, np.float64) - 1) / 2
    f = _focal_px(tan_x, size)
    d = (np.asarray(points, np.float64) - centre) / f
    u = d
    for _ in range(rounds):
        u = d / (1 + k1 * (u * u).sum(-1, keepdims=True))
    return centre + u * f


def undistort_image(image, k1, tan_x):
    """`image` [H, W, C] as a pinhole shows it: each pixel reads the photo where the lens put it (bilinear; the
    border repeated past the photo's edge)."""
    h, w = image.shape[:2]
    j, i = np.mgrid[0:h, 0:w].astype(np.float64)
    at, _ = distort_points(np.stack([i.ravel(), j.ravel()], -1), k1, tan_x, (w, h))
    at = at.reshape(h, w, 2).astype(np.float32)
    return cv2.remap(np.ascontiguousarray(image), at[..., 0], at[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _aligned(linear, k1, tan_x, texture, layout, ids, corners, config, circle, start, scale):
    """The print aligned on `linear` (the photo × `scale`) undistorted by `k1`: a PrintView in that picture's
    pixels, or None. `corners`, `circle` and the homography `start` are the photo's (at scale 1)."""
    size = (linear.shape[1], linear.shape[0])
    picture = undistort_image(linear, k1, tan_x) if k1 else linear
    to_scaled = np.diag([scale, scale, 1.0])
    x, y, radius = circle
    (cx, cy), = undistort_points([[x * scale, y * scale]], k1, tan_x, size)
    points = undistort_points(corners.reshape(-1, 2) * scale, k1, tan_x, size).reshape(corners.shape)
    return align_print(picture, texture, layout, ids, points, config, (cx, cy, radius * scale),
                       start @ np.linalg.inv(to_scaled), field=False)      # the candidates under one exposure


def find_k1(linear, tan_x, texture, layout, ids, corners, config, circle, view):
    """``(k1, view)``: the photo's residual radial distortion and the print aligned through it, its points and
    covariance in the photo's own pixels (module doc). `linear` the photo [H, W, 3] (linear light; the pixels
    of `corners`, `circle` and `view`), `tan_x` the focal length's tan(fov / 2), `view` the print aligned at
    k1 = 0 (its homography starts each alignment). Returns ``(0.0, view)`` when an alignment fails."""
    h, w = linear.shape[:2]
    scale = min(1.0, float(np.sqrt(SCAN_PIXELS / (w * h))))
    small = linear if scale == 1.0 else cv2.resize(linear, (round(w * scale), round(h * scale)),
                                                   interpolation=cv2.INTER_AREA)
    scale = small.shape[1] / w
    tried = []
    for k1 in K1_TRIED:
        found = _aligned(small, k1, tan_x, texture, layout, ids, corners, config, circle, view.warp, scale)
        if found is None:
            return 0.0, view
        tried.append(found.correlation)
    a, b, c = tried
    step = K1_TRIED[1] - K1_TRIED[0]
    curvature = a - 2 * b + c
    k1 = K1_TRIED[1] + (0.5 * (a - c) / curvature * step if curvature < 0 else 0.0)
    k1 = float(np.clip(k1, -K1_LIMIT, K1_LIMIT))
    final = _aligned(linear, k1, tan_x, texture, layout, ids, corners, config, circle, view.warp, 1.0)
    if final is None:
        return 0.0, view
    pixels, jac = distort_points(final.pixels, k1, tan_x, (w, h))
    blocks = np.zeros((2 * len(pixels), 2 * len(pixels)))
    for n, J in enumerate(jac):
        blocks[2 * n:2 * n + 2, 2 * n:2 * n + 2] = J
    final.pixels, final.covariance = pixels, blocks @ final.covariance @ blocks.T
    return k1, final
