"""Where each camera ray lands on the print, through the ball or past it: analytic, differentiable (torch).

The optics (the scene of :mod:`predistort.scene`, traced without Mitsuba so that every quantity is a smooth
torch function of the setup and can be differentiated, the workaround the issue names for ``prb``'s biased
gradients at refraction discontinuities and for sensor parameters it cannot differentiate):

1. *Camera.* A pinhole at ``origin`` with the world-from-camera rotation ``rotation`` [3, 3] (columns:
   left, up, forward, as Mitsuba's ``look_at`` builds them); film position (s, t) ∈ [0, 1]² looks along
   ``(−(2s−1)·tan(fov/2), −(2t−1)·tan(fov/2)·H/W, 1)`` in camera space (``fov`` horizontal).
2. *Ball.* A ray meets the sphere (centre ``centre``, radius r) where ``|o + λd − c| = r``; it refracts in
   by Snell's law (index 1 → n), crosses the ball along the chord ``λ₂ = −2 d₂·(p₁ − c)`` and refracts out
   (n → 1). The weight of this chain (TT) is ``(1 − F₁)(1 − F₂)``, F the unpolarised Fresnel reflectance.
   Inside a sphere every chord meets the surface at the same angle, so every inner reflection has the same F₂
   and each chord turns the ray by the same angle. Traced to where they land, besides TT: the front
   reflection R (weight F₁), which near the rim goes on towards the print and shows it, not the environment
   (taken as white, the ball's edge reads too bright and a fit puts the ball too near the print); TRT
   (``(1 − F₁)F₂(1 − F₂)``), which near the rim leaves on the print's side too; TRRT
   (``(1 − F₁)F₂²(1 − F₂)``, up to 1 % of a pixel's light at 0.9 of the radius: without it a fit's colours
   inside the ball are biased dark). The chains reflected three times or more inside (TR³T + TR⁵T + ... =
   ``(1 − F₁)(1 − F₂)F₂³/(1 − F₂²)``) are taken to see the white environment.
3. *Print.* Every ray, refracted or direct, meets z = 0 at ``λ = −o_z / d_z``; the textured rectangle's uv
   is ``((x/plane_scale + 1)/2, (y/plane_scale + 1)/2)`` (row = v), as :mod:`predistort.target` reads it.

:func:`trace` returns, per ray, the landing uv, the chain's weight, the reflected part, whether the ray
meets the ball, and its impact parameter (distance of the ray from the centre ÷ r: 0 on the centre, 1 at the
rim). :func:`look` reads a texture there (bilinear, differentiable in uv) and adds the environment.

Limits: float64 on the CPU; no film filter (a point sample per position: callers supersample if needed).
"""
import math

import torch

WHITE = 1.0                    # the constant environment's radiance
SPRAY = (0.92, 0.97)           # impact parameters over which a rim pixel's view goes over to the print's mean
CHAINS = ("", "2", "_r", "3")    # traced to the print: TT, TRRT, the front reflection R, TRT (suffixes of trace's keys)


def dot(a, b):
    """Σ over the last axis of ``a * b`` ([N, 3] → [N]): as a product with ones, which the CPU computes ~5× faster
    than torch's ``.sum(-1)`` over three (measured at 9,000 and 36,000 rows, float64), to the same bits."""
    return (a * b) @ a.new_ones(a.shape[-1])


def look_at_rotation(origin, target, up):
    """[3, 3] world-from-camera rotation of Mitsuba's ``look_at`` (columns left, up, forward); torch in, out."""
    forward = target - origin
    forward = forward / forward.norm()
    left = torch.linalg.cross(up, forward)
    left = left / left.norm()
    return torch.stack([left, torch.linalg.cross(forward, left), forward], dim=1)


def rodrigues(w):
    """[3, 3] rotation of the rotation vector `w` [3] (axis × angle), smooth at 0 (differentiable)."""
    theta2 = (w * w).sum()
    theta = torch.sqrt(theta2 + 1e-30)
    K = torch.zeros(3, 3, dtype=w.dtype)
    K = K.index_put((torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([1, 2, 0, 2, 0, 1])),
                    torch.stack([-w[2], w[1], w[2], -w[0], -w[1], w[0]]))
    small = theta2 < 1e-12
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta2 + 1e-30))
    return torch.eye(3, dtype=w.dtype) + a * K + b * (K @ K)


def film_directions(rotation, fov_deg, film, s, t):
    """World directions [N, 3] (unit) of the rays through film positions `s`, `t` [N] of a ``film`` = (W, H)."""
    width, height = film
    tan_x = torch.tan(torch.as_tensor(fov_deg, dtype=torch.float64) * (math.pi / 360))
    cam = torch.stack([-(2 * s - 1) * tan_x, -(2 * t - 1) * tan_x * height / width, torch.ones_like(s)], -1)
    d = cam @ rotation.T
    return d / dot(d, d).sqrt()[..., None]


def fresnel(cos_i, eta):
    """Unpolarised Fresnel reflectance of a smooth interface, `cos_i` ≥ 0 the incident cosine, `eta` = n_t / n_i."""
    sin_t2 = (1 - cos_i ** 2) / eta ** 2
    cos_t = torch.sqrt((1 - sin_t2).clamp_min(0))
    rs = (cos_i - eta * cos_t) / (cos_i + eta * cos_t)
    rp = (eta * cos_i - cos_t) / (eta * cos_i + cos_t)
    return torch.where(sin_t2 >= 1, torch.ones_like(cos_i), 0.5 * (rs ** 2 + rp ** 2))


def _refract(d, n, eta):
    """Snell: direction `d` through a surface of facing normal `n` (n·d < 0), index ratio `eta` = n_i / n_t."""
    cos_i = -dot(d, n)[..., None]
    k = (1 - eta ** 2 * (1 - cos_i ** 2)).clamp_min(1e-12)
    return eta * d + (eta * cos_i - torch.sqrt(k)) * n


def trace(origin, d, centre, radius, ior, plane_scale):
    """Follow rays from `origin` [3] along unit `d` [N, 3] past or through the ball to the print.

    Returns a dict of [N] tensors: ``u``, ``v``, ``on_print`` (the refracted ray's landing uv, and whether it
    lands on the rectangle going towards it; meaningful where ``hit``), ``weight`` (the TT chain's
    (1−F₁)(1−F₂)), ``reflect`` (the environment's part: the chains reflected three times or more inside),
    ``u2``, ``v2``, ``on_print2``, ``weight2`` (the same for the TRRT chain; suffix ``_r``: the front
    reflection R; ``3``: TRT; :data:`CHAINS` lists them), ``u_direct``, ``v_direct``,
    ``on_print_direct`` (the same for the ray without the ball), ``hit`` (bool: the ray meets the ball),
    ``impact`` (the ray's distance from the centre ÷ radius; the ball's edge is at 1).
    """
    oc = origin - centre
    b = d @ oc                                                  # ray: o + λd; |oc + λd|² = r²
    closest2 = (oc @ oc) - b ** 2                                # squared distance of the ray from the centre
    impact = torch.sqrt(closest2.clamp_min(0)) / radius
    hit = (closest2 < radius ** 2) & (b < 0)
    # 1. Into the ball at its near side; the normal there faces the camera.
    lam1 = -b - torch.sqrt((radius ** 2 - closest2).clamp_min(1e-12))
    p1 = origin + lam1[:, None] * d
    n1 = (p1 - centre) / radius
    cos1 = -dot(d, n1)
    d2 = _refract(d, n1, 1.0 / ior)
    # 2. Across the chord, out at the far side (normal outward; facing normal −n2 for the inside ray).
    lam2 = -2 * dot(d2, p1 - centre)
    p2 = p1 + lam2[:, None] * d2
    n2 = (p2 - centre) / radius
    cos2 = dot(d2, n2)
    d3 = _refract(d2, -n2, ior)
    f1, f2 = fresnel(cos1.clamp(0, 1), ior), fresnel(cos2.clamp(0, 1), 1.0 / ior)
    weight = (1 - f1) * (1 - f2)
    # 2'. Reflected at the far side, out at the next point (TRT, weight (1 − F₁)F₂(1 − F₂)); reflected again
    # there and out at the third (TRRT, (1 − F₁)F₂²(1 − F₂)): chords of equal length λ₂.
    d_r = _reflect(d2, n2)
    p3 = p2 + lam2[:, None] * d_r
    n3 = (p3 - centre) / radius
    d_trt = _refract(d_r, -n3, ior)
    d_rr = _reflect(d_r, n3)
    p4 = p3 + lam2[:, None] * d_rr
    d4 = _refract(d_rr, -(p4 - centre) / radius, ior)
    # The front reflection (R) turns a ray of impact b by π − 2·asin(b): beyond b = 1/√2 it goes on towards
    # the print's side, and near the rim (b → 1) it lands on the print, close to where the ray was heading:
    # the bright rim is partly the print's colour. TRT leaves towards the print's side too for rays near the
    # rim. Both are traced to where they land (the white environment where they miss the print); the chains
    # reflected three times or more inside (TR³T + TR⁵T + ... = (1 − F₁)(1 − F₂)F₂³/(1 − F₂²)) see the
    # environment.
    d_front = _reflect(d, n1)
    env = weight * f2 ** 3 / (1 - f2 ** 2)
    # 3. To the print, z = 0: the refracted and reflected rays, and the ray as if the ball were not there.
    u, v, on_print = _land(p2, d3, plane_scale)
    u2, v2, on_print2 = _land(p4, d4, plane_scale)
    u_r, v_r, on_print_r = _land(p1, d_front, plane_scale)
    u3, v3, on_print3 = _land(p3, d_trt, plane_scale)
    u_direct, v_direct, on_print_direct = _land(origin.expand_as(d), d, plane_scale)
    return {"u": u, "v": v, "on_print": on_print, "weight": weight, "reflect": env,
            "u2": u2, "v2": v2, "on_print2": on_print2, "weight2": weight * f2 ** 2,
            "u_r": u_r, "v_r": v_r, "on_print_r": on_print_r, "weight_r": f1,
            "u3": u3, "v3": v3, "on_print3": on_print3, "weight3": weight * f2,
            "u_direct": u_direct, "v_direct": v_direct, "on_print_direct": on_print_direct,
            "hit": hit, "impact": impact}


def _reflect(d, n):
    """Mirror direction `d` about the surface of normal `n` (either orientation)."""
    return d - 2 * dot(d, n)[..., None] * n


def _land(start, direction, plane_scale):
    """uv [N] where rays meet the print z = 0, and whether they land on it going towards it."""
    lam = -start[:, 2] / direction[:, 2]
    x, y = start[:, 0] + lam * direction[:, 0], start[:, 1] + lam * direction[:, 1]
    u, v = (x / plane_scale + 1) / 2, (y / plane_scale + 1) / 2
    return u, v, (lam > 0) & (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)


def texel_coordinates(x, y, plane_scale, size):
    """Texel coordinates (column, row; texel centres at integers) in a `size`-texel texture of world points
    (x, y) on the print: their uv as :func:`_land` gives it, read as :func:`sample` reads it. numpy or torch."""
    return (x / plane_scale + 1) / 2 * size - 0.5, (y / plane_scale + 1) / 2 * size - 0.5


def sample(texture, u, v):
    """`texture` [R, R, 3] (float64 tensor) read at uv [N] bilinearly between texel centres, edge texels
    extended: [N, 3]. Gathers and lerps (not ``grid_sample``), so forward-mode AD (``torch.func.jacfwd``)
    differentiates it in uv."""
    res, channels = texture.shape[0], texture.shape[-1]
    x, y = u * res - 0.5, v * res - 0.5                          # texel centres at integers
    x0, y0 = torch.floor(x).detach(), torch.floor(y).detach()
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    i0, j0 = y0.long(), x0.long()
    row0, row1 = i0.clamp(0, res - 1) * res, (i0 + 1).clamp(0, res - 1) * res
    col0, col1 = j0.clamp(0, res - 1), (j0 + 1).clamp(0, res - 1)
    flat = texture.reshape(-1, channels)
    top = torch.lerp(flat.index_select(0, row0 + col0), flat.index_select(0, row0 + col1), fx)
    bottom = torch.lerp(flat.index_select(0, row1 + col0), flat.index_select(0, row1 + col1), fx)
    return torch.lerp(top, bottom, fy)


def look(texture, traced, coverage=None):
    """What each traced ray sees: [N, 3]. Through the ball, the texture at the refracted landing point × the
    chain's weight + the environment's part; past it, the texture at the direct landing point; the white
    environment where a ray misses the print. ``coverage`` [N] (default: ``hit``) blends the two: a soft
    coverage of the ball's edge keeps the colour a continuous function of the setup."""
    white = torch.full((len(traced["u"]), 3), WHITE, dtype=texture.dtype)
    # Near the rim the landing points race across the print faster than a pixel resolves them: a pixel there
    # sees about the print's mean colour where its rays land on the print (blended in from SPRAY[0] to
    # SPRAY[1] of the radius), and the white environment where they miss it.
    spray = ((traced["impact"] - SPRAY[0]) / (SPRAY[1] - SPRAY[0])).clamp(0, 1)[:, None]
    inside = traced["reflect"][:, None] * WHITE
    mean = texture.mean((0, 1))
    for chain in CHAINS:
        on_print = sample(texture, traced["u" + chain], traced["v" + chain])
        on_print = (1 - spray) * on_print + spray * mean
        seen = torch.where(traced["on_print" + chain][:, None], on_print, white)
        inside = inside + seen * traced["weight" + chain][:, None]
    direct = torch.where(traced["on_print_direct"][:, None],
                         sample(texture, traced["u_direct"], traced["v_direct"]), white)
    coverage = traced["hit"].to(texture.dtype) if coverage is None else coverage
    return coverage[:, None] * inside + (1 - coverage[:, None]) * direct
