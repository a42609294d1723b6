"""Photos of the calibration chart that the project renders itself (Mitsuba), from setups the fit is not told.

:func:`perturbed` moves and turns a scene's camera, moves its ball, changes its IOR and field of view;
:func:`photograph` renders a texture in a scene with the project's renderer and makes it a phone's photo:
exposure off, sensor noise, sRGB encoding, JPEG (quality 80), optionally EXIF (focal length, orientation);
:func:`errors` says how far a fitted scene is from the true one. A phone's processing beyond that, on the linear
render before :func:`photograph`: :func:`distort` (a lens's residual radial distortion k1), :func:`vignette`,
:func:`local_tone` (HDR-like local tone mapping). Used by tests/test_calibrate.py, tests/test_calibrate_phone.py,
tests/test_app_calibrate.py, bench/calibrate.py and bench/calibrate_phone.py.
"""
import io
import math

import cv2
import numpy as np
import torch
from PIL import Image

from predistort.calibrate import DIAGONAL_35MM, linear_to_srgb
from predistort.target import camera_frame


def _turn(v, axis, degrees):
    """`v` turned by `degrees` about unit `axis` (Rodrigues)."""
    a = math.radians(degrees)
    return v * math.cos(a) + np.cross(axis, v) * math.sin(a) + axis * (axis @ v) * (1 - math.cos(a))


def perturbed(config, camera_mm=(0, 0, 0), turn_deg=(0, 0, 0), ball_mm=(0, 0, 0), ior=0.0, fov=None, film=None):
    """`config` with the camera moved by `camera_mm` (world x, y, z), turned by (yaw, pitch, roll) degrees, the
    ball moved by `ball_mm`, its IOR changed by `ior`, another horizontal `fov` and `film` (width, height)."""
    origin, left, up, forward = camera_frame(config)
    unit = config.units_mm
    forward = _turn(_turn(forward, up, turn_deg[0]), left, turn_deg[1])
    up = _turn(np.cross(forward, np.cross(up, forward)), forward, turn_deg[2])
    origin = origin + np.array(camera_mm) / unit
    changes = dict(camera_origin=tuple(origin), camera_target=tuple(origin + forward * 4), camera_up=tuple(up),
                   sphere_center=tuple(np.array(config.sphere_center) + np.array(ball_mm) / unit),
                   sphere_ior=config.sphere_ior + ior)
    if fov:
        changes["fov"] = fov
    if film:
        changes["film_width"], changes["film_height"] = film
    return config.replace(**changes)


def errors(fitted, true):
    """Camera position (mm), ball centre (mm), IOR and field of view (°) errors of a fitted scene against the
    true one."""
    unit = true.units_mm
    camera = np.linalg.norm(np.subtract(fitted.camera_origin, true.camera_origin)) * unit
    ball = np.linalg.norm(np.subtract(fitted.sphere_center, true.sphere_center)) * unit
    return camera, ball, abs(fitted.sphere_ior - true.sphere_ior), abs(fitted.fov - true.fov)


def focal_35mm(config):
    """The 35 mm-equivalent focal length of `config`'s camera (what a phone writes in EXIF, unrounded)."""
    width, height = config.film_size
    return DIAGONAL_35MM * width / (2 * math.hypot(width, height) * math.tan(math.radians(config.fov) / 2))


def render(config, texture, spp=16, seed=0):
    """The project's render of `texture` in `config`: [H, W, 3] linear float numpy."""
    from predistort.render import Renderer
    return Renderer(config).render(torch.as_tensor(texture, dtype=torch.float32), spp=spp, seed=seed).cpu().numpy()


def photograph(image, exposure=1.0, noise=0.01, quality=80, seed=0, focal=None, orientation=None):
    """JPEG bytes of a linear render `image` as a phone would store it (module doc). ``orientation`` 6 or 8
    stores the picture turned (as a phone held upright stores it), with the EXIF tag that turns it back."""
    rng = np.random.default_rng(seed)
    linear = np.clip(image * exposure + rng.normal(0, noise, image.shape), 0, 1)
    picture = Image.fromarray((linear_to_srgb(linear) * 255 + 0.5).astype(np.uint8))
    exif = Image.Exif()
    if focal:
        exif.get_ifd(0x8769)[0xA405] = int(round(focal))
    if orientation:
        # The tag says how to turn the stored pixels upright: store them turned the other way.
        picture = picture.transpose({6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation])
        exif[0x0112] = orientation
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality, exif=exif.tobytes())
    return out.getvalue()


def _film(shape, fov):
    """Normalised camera coordinates (x, y: ÷ the focal length) of the pixel centres of a photo of `shape` whose
    horizontal field of view is `fov` degrees, and tan(fov / 2)."""
    h, w = shape[:2]
    tan_x = math.tan(math.radians(fov) / 2)
    j, i = np.mgrid[0:h, 0:w].astype(np.float64)
    return (2 * (i + 0.5) / w - 1) * tan_x, (2 * (j + 0.5) / h - 1) * tan_x * h / w, tan_x


def distort(image, k1, fov):
    """The linear render `image` [H, W, 3] (a pinhole's, horizontal `fov` degrees) as a lens with residual radial
    distortion `k1` shows it (OpenCV's convention: x_d = x_u (1 + k1 r²), r in focal lengths): each photo pixel
    reads the render where its ray goes (x_u from x_d by fixed-point rounds), bilinearly (``cv2.remap``)."""
    h, w = image.shape[:2]
    xd, yd, tan_x = _film(image.shape, fov)
    x, y = xd, yd
    for _ in range(10):
        radial = 1 + k1 * (x * x + y * y)
        x, y = xd / radial, yd / radial
    col = ((x / tan_x + 1) / 2 * w - 0.5).astype(np.float32)
    row = ((y / (tan_x * h / w) + 1) / 2 * h - 0.5).astype(np.float32)
    return cv2.remap(np.asarray(image, np.float32), col, row, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def vignette(image, c):
    """`image` [H, W, 3] × (1 + c ρ²), ρ the distance from its centre ÷ its half-diagonal (1 at the corners)."""
    h, w = image.shape[:2]
    j, i = np.mgrid[0:h, 0:w].astype(np.float64)
    rho2 = (((2 * i + 1) / w - 1) ** 2 * w * w + ((2 * j + 1) / h - 1) ** 2 * h * h) / (w * w + h * h)
    return image * (1 + c * rho2)[..., None]


def local_tone(image, power, blur=0.1):
    """`image` [H, W, 3] linear, tone-mapped locally as HDR+-like processing does: divided by its brightness blurred
    over `blur` of its long side (a Gaussian's σ) raised to `power` (0: nothing; 1: the local mean flattened),
    then scaled to keep its median brightness."""
    h, w = image.shape[:2]
    brightness = np.asarray(image, np.float64).mean(-1)
    local = cv2.GaussianBlur(brightness.astype(np.float32), (0, 0), max(h, w) * blur).clip(1e-3)
    out = image * (local.astype(np.float64) ** -power)[..., None]
    return out * (np.median(brightness) / np.median(out.mean(-1)))
