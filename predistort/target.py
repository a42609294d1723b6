"""What a camera should see: the print as that camera sees it with the ball removed.

The goal of a pre-distortion is that the camera, looking through the ball, sees the picture as if the ball
were not there. For any camera that is the *ball-free view* (:func:`ball_free_view`): the picture printed
flat on the plane, seen by that camera with the sphere taken out of the scene. It is computed here without
Mitsuba, by the same geometry the renderer uses:

1. *Camera.* A pinhole at ``camera_origin`` looking at ``camera_target`` (Mitsuba's ``look_at``: camera
   x = up × forward ("left"), camera y = forward × left, z = forward). The film is ``film_width`` ×
   ``film_height`` pixels; ``fov`` is the *horizontal* field of view (Mitsuba's ``fov_axis`` 'x'), so the
   film's half width at unit distance is tan(fov/2) and its half height tan(fov/2)·H/W. Film position
   (s, t) ∈ [0,1]² (s to the right, t down) looks along ``(−(2s−1)·tan, −(2t−1)·tan·H/W, 1)`` in camera
   space.
2. *Plane.* Each ray meets z = 0 at ``o + λ d`` (λ = −o_z / d_z > 0); the textured rectangle covers
   ``|x|, |y| ≤ plane_scale`` and its uv is ``((x/plane_scale + 1)/2, (y/plane_scale + 1)/2)``.
3. *Texture.* The bitmap is read at uv with bilinear interpolation between texel centres, row = v, wrap
   mode repeat: exactly the lookup of :mod:`predistort.probe`. Without the sphere the diffuse plane sees
   the whole white environment (radiance 1), so a point renders as its reflectance; a ray that misses the
   plane sees the environment: 1.0.
4. *Pixel.* The mean of an n × n grid of rays inside the pixel (a box filter). Mitsuba's film filter is a
   Gaussian of σ = 0.5 px, which blurs a little more; the target is the sharp picture, as today's is.

Which target a scene uses (:func:`target_for`, the one rule every solve and score follows): a scene whose
film equals its texture (``film_size == (R, R)``) and whose camera is the on-axis framing of
:class:`predistort.physical.PhysicalSetup` (camera on the axis through the print's centre, aiming at it,
top up, the print 3.9 % wider than the view: the tutorial's scene and every scene ``advise`` proposes)
keeps the picture itself on the film's grid, the target of every number this project has measured. Every
other scene uses the ball-free view. (For the on-axis scenes the two differ by the print's 3.9 % margin.)

Limits: pure torch on the CPU, no rendering; memory is bounded by working in bands of film rows.
"""
import math

import numpy as np
import torch

from .physical import PLANE_MARGIN

SUPERSAMPLING = 4            # rays per film pixel and axis of the ball-free view (box filter)
FILTER_STDDEV = 0.5          # Mitsuba's default film filter: Gaussian, σ = 0.5 px, radius 4σ
BAND_RAYS = 1 << 20          # rays traced at once
WHITE = 1.0                  # what a ray that misses the plane sees: the constant environment's radiance


def film_size(config):
    """``(width, height)`` of the camera's film in pixels (the texture's side for scenes that state none)."""
    size = getattr(config, "film_size", None)
    return tuple(size) if size is not None else (config.resolution, config.resolution)


def camera_frame(config):
    """The camera's ``(origin, left, up, forward)`` [3] float64 arrays, as Mitsuba's ``look_at`` builds them."""
    origin, target, up = (np.asarray(v, dtype=np.float64) for v in
                          (config.camera_origin, config.camera_target, config.camera_up))
    forward = (target - origin) / np.linalg.norm(target - origin)
    left = np.cross(up, forward)
    left /= np.linalg.norm(left)
    return origin, left, np.cross(forward, left), forward


def film_rays(config, s, t):
    """World directions [N, 3] (not normalised) of the camera rays through film positions `s`, `t` [N] ∈ [0,1]."""
    _, left, up, forward = (torch.from_numpy(v) for v in camera_frame(config))
    width, height = film_size(config)
    tan_x = math.tan(math.radians(config.fov) / 2)              # fov is horizontal (fov_axis 'x')
    cx, cy = -(2 * s - 1) * tan_x, -(2 * t - 1) * tan_x * height / width
    return cx[:, None] * left + cy[:, None] * up + forward


def is_on_axis_framing(config):
    """True for a scene whose film equals its texture and whose camera is :class:`PhysicalSetup`'s on-axis
    framing (on the z axis, aiming at the print's centre, up −y, print = view + 3.9 % margin)."""
    ox, oy, oz = config.camera_origin
    if film_size(config) != (config.resolution, config.resolution) or (ox, oy) != (0.0, 0.0) or not oz < 0 \
            or tuple(config.camera_target) != (0.0, 0.0, 0.0) or tuple(config.camera_up) != (0.0, -1.0, 0.0):
        return False
    framing = PLANE_MARGIN * -oz * math.tan(math.radians(config.fov) / 2)
    return math.isclose(config.plane_scale, framing, rel_tol=1e-6)


def _bilinear(picture, u, v):
    """The picture [R, R, 3] read at uv [N] as Mitsuba's bitmap reads it: bilinear, row = v, wrap repeat."""
    res = picture.shape[0]
    x, y = u * res - 0.5, v * res - 0.5                          # texel centres at integers
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.long(), y0.long()

    def at(dy, dx):
        return picture[(y0 + dy) % res, (x0 + dx) % res]
    return ((1 - fy) * ((1 - fx) * at(0, 0) + fx * at(0, 1)) + fy * ((1 - fx) * at(1, 0) + fx * at(1, 1)))


@torch.no_grad()
def ball_free_view(picture, config, supersampling=SUPERSAMPLING):
    """The picture [R, R, 3] (tensor or array, R = ``config.resolution``), printed on the scene's plane, as
    the scene's camera sees it with the ball removed: [film_height, film_width, 3] float32 CPU tensor.

    ``supersampling``: rays per pixel and axis (their mean is the pixel). See the module doc for the optics.
    """
    picture = torch.as_tensor(np.asarray(picture) if not isinstance(picture, torch.Tensor) else picture)
    picture = picture.detach().to("cpu", torch.float64)
    res = config.resolution
    if tuple(picture.shape) != (res, res, 3):
        raise ValueError(f"ball_free_view: expected a picture of shape [{res}, {res}, 3] (the scene's texture), "
                         f"got {list(picture.shape)}")
    width, height = film_size(config)
    n = supersampling
    origin = torch.from_numpy(camera_frame(config)[0])
    rows_per_band = max(1, BAND_RAYS // (width * n * n))
    bands = []
    for row0 in range(0, height, rows_per_band):
        row1 = min(height, row0 + rows_per_band)
        # 1. The rays: an n × n grid inside every pixel of film rows row0 .. row1 − 1.
        fy = torch.arange(row0 * n, row1 * n, dtype=torch.float64)
        fx = torch.arange(width * n, dtype=torch.float64)
        t, s = torch.meshgrid((fy + 0.5) / (height * n), (fx + 0.5) / (width * n), indexing="ij")
        d = film_rays(config, s.reshape(-1), t.reshape(-1))
        # 2. Where they meet the plane z = 0 (only rays going towards it, λ > 0).
        lam = -origin[2] / d[:, 2]
        hit = origin + lam[:, None] * d
        u = (hit[:, 0] / config.plane_scale + 1) / 2
        v = (hit[:, 1] / config.plane_scale + 1) / 2
        on_plane = (d[:, 2] * -origin[2] > 0) & (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
        # 3. The texture there; the white environment elsewhere.
        colour = torch.full((d.shape[0], 3), WHITE, dtype=torch.float64)
        colour[on_plane] = _bilinear(picture, u[on_plane], v[on_plane])
        # 4. Each pixel: the mean of its n × n rays.
        colour = colour.reshape(row1 - row0, n, width, n, 3).mean((1, 3))
        bands.append(colour)
    return torch.cat(bands).to(torch.float32)


def target_for(picture, config):
    """The render a pre-distortion of `picture` [R, R, 3] aims at in scene `config` (the rule of the module
    doc): the picture itself (as a float32 tensor) for the on-axis framing with film = texture, else
    :func:`ball_free_view` [film_height, film_width, 3]."""
    if is_on_axis_framing(config):
        return torch.as_tensor(picture, dtype=torch.float32)
    return ball_free_view(picture, config)


# ---------------------------------------------------------------------------------------------------------
# Any world: the target rectangle (given, the print, or a mirror's card), and the pixels it covers
# ---------------------------------------------------------------------------------------------------------
def filter_taps(res, n, stddev=FILTER_STDDEV):
    """One axis of the film's filter K (:mod:`predistort.probe`'s, and the glass world's target's): ``(fine, weight)`` [R, k], the fine samples pixel p sees and their
    normalised weights. Mitsuba's Gaussian filter: exp(−d²/2σ²) − exp(−(4σ)²/2σ²), zero beyond 4σ = 2 px;
    the film divides by the summed weight, and it has no samples beyond its edge (weight 0 there)."""
    offsets = torch.arange(-3 * n, 4 * n)                        # fine-sample offsets from the pixel's first sample
    d = (offsets + 0.5) / n - 0.5                                # distance from the pixel centre, in pixels
    w = (torch.exp(-d * d / (2 * stddev ** 2)) - np.exp(-8.0)).clamp_min(0)
    offsets, w = offsets[w > 0], w[w > 0]
    fine = torch.arange(res)[:, None] * n + offsets[None, :]
    w = w[None, :] * ((fine >= 0) & (fine < res * n))
    return fine.clamp(0, res * n - 1), w / w.sum(1, keepdim=True)


def filter_image(image, width, height, n):
    """K applied to a dense [H·n, W·n] map over the fine samples: the [H, W] film (K = K_y ⊗ K_x)."""
    def k1(res):
        fine, w = filter_taps(res, n)
        return torch.zeros(res, res * n).scatter_add_(1, fine, w)
    return k1(height) @ image @ k1(width).T


def fit_picture(picture, aspect, fit="crop"):
    """The picture [h, w, 3] fitted to `aspect` (width ÷ height): ``crop`` keeps its centre (nothing
    squashed), ``resize`` keeps it whole (squashed). Returns a view or a copy, [h', w', 3]."""
    picture = torch.as_tensor(picture)
    h, w = picture.shape[:2]
    if fit == "resize" or math.isclose(w / h, aspect, rel_tol=1e-3):
        return picture
    if fit != "crop":
        raise ValueError(f"fit must be crop or resize for a world's picture, got {fit!r}")
    if w / h > aspect:                                           # too wide: cut its sides
        keep = max(1, round(h * aspect))
        return picture[:, (w - keep) // 2:(w - keep) // 2 + keep]
    keep = max(1, round(w / aspect))
    return picture[(h - keep) // 2:(h - keep) // 2 + keep]


def on_print(picture, config, fit="crop"):
    """The picture printed plain on the world's print: a texture [rows, cols, 3] of the print's aspect (the
    baseline a pre-distortion is scored against, and the glass solve's start)."""
    rows, cols = config.texture_shape
    picture = fit_picture(picture, cols / rows, fit).permute(2, 0, 1)[None].float()
    return torch.nn.functional.interpolate(picture, size=(rows, cols), mode="area" if picture.shape[-1] > cols
                                           else "bilinear", align_corners=False)[0].permute(1, 2, 0).clamp(0, 1)


def mirror_card(config):
    """A mirror's default target: a card through the (first mirror) object's axis, facing the camera, as wide
    and tall as the object looks from the camera (its outline's box, projected on the card's plane)."""
    from .scene import Rect
    solid = next(o for o in config.objects if o.mirror)
    points = solid.points(128)
    origin = np.asarray(config.camera_origin, np.float64)
    if solid.shape in ("cylinder", "cone"):
        up = np.asarray(solid.axis, np.float64)
        centre = np.asarray(solid.base) + up / np.linalg.norm(up) * solid.height / 2
    else:
        up = camera_frame(config)[2]
        centre = points.mean(0)
    up = up / np.linalg.norm(up)
    right = np.cross(up, origin - centre)
    right /= np.linalg.norm(right)
    normal = np.cross(right, up)
    # The outline seen from the camera, projected along the camera's rays onto the card's plane.
    d = points - origin
    lam = ((centre - origin) @ normal) / (d @ normal)
    on = origin + lam[:, None] * d - centre
    x, y = on @ right, on @ up
    mid = centre + (x.max() + x.min()) / 2 * right + (y.max() + y.min()) / 2 * up
    return Rect(tuple(mid), tuple(right), tuple(up), (float(np.ptp(x)), float(np.ptp(y))))


def target_rect(config):
    """The rectangle where the picture should appear: the world's ``target``, else for a mirror its card
    (:func:`mirror_card`), else (glass) the print itself."""
    if config.target is not None:
        return config.target
    return mirror_card(config) if config.has_mirror else config.plane


@torch.no_grad()
def world_target(picture, config, fit="crop", supersampling=SUPERSAMPLING):
    """What the camera should see in any world: ``(image [H, W, 3], mask [H, W] bool)``.

    The picture (any size, fitted to the target's aspect as `fit` says) lies on :func:`target_rect`; each film
    pixel is the mean of n × n camera rays that meet it (bilinear lookup, row 0 on the +up edge), and `mask`
    holds the pixels all of whose rays meet it. For glass without a target, the rectangle is the print:
    every pixel counts, and rays that miss the print see the white environment (the object-free view).
    """
    rect = target_rect(config)
    picture = fit_picture(torch.as_tensor(picture).float(), rect.size[0] / rect.size[1], fit).double()
    width, height = film_size(config)
    n = supersampling
    origin = torch.from_numpy(camera_frame(config)[0])
    centre, right, up = (torch.tensor(v, dtype=torch.float64) for v in (rect.center, rect.right, rect.up))
    normal = torch.cross(right, up, dim=0)
    fy = torch.arange(height * n, dtype=torch.float64)
    fx = torch.arange(width * n, dtype=torch.float64)
    t, s = torch.meshgrid((fy + 0.5) / (height * n), (fx + 0.5) / (width * n), indexing="ij")
    d = film_rays(config, s.reshape(-1), t.reshape(-1))
    lam = ((centre - origin) @ normal) / (d @ normal)
    rel = origin + lam[:, None] * d - centre
    u, v = rel @ right / rect.size[0] + 0.5, 0.5 - rel @ up / rect.size[1]
    inside = (lam > 0) & (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    colour = torch.full((d.shape[0], 3), WHITE, dtype=torch.float64)
    colour[inside] = _bilinear_any(picture, u[inside], v[inside])
    mask = inside.reshape(height, n, width, n).all(3).all(1)
    if rect is config.plane and not config.has_mirror:
        # The object-free view as the film records it: Mitsuba's Gaussian pixel filter, not a box, so that
        # the print seen beside the object is aimed at as it will look (a box would ask for a sharper print).
        colour = colour.reshape(height * n, width * n, 3).float()
        image = torch.stack([filter_image(colour[..., c], width, height, n) for c in range(3)], -1)
        return image, torch.ones_like(mask)
    return colour.reshape(height, n, width, n, 3).mean((1, 3)).float(), mask


def _bilinear_any(picture, u, v):
    """The picture [h, w, 3] read at uv [N] (u across, v down), bilinear between texel centres, edges clamped."""
    h, w = picture.shape[:2]
    x, y = (u * w - 0.5).clamp(0, w - 1), (v * h - 0.5).clamp(0, h - 1)
    x0, y0 = torch.floor(x).long().clamp(max=w - 2 if w > 1 else 0), torch.floor(y).long().clamp(max=h - 2 if h > 1 else 0)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    return ((1 - fy) * ((1 - fx) * picture[y0, x0] + fx * picture[y0, x1])
            + fy * ((1 - fx) * picture[y1, x0] + fx * picture[y1, x1]))
