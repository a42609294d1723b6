"""Where each camera ray lands on the print, through the ball or past it: analytic, differentiable (torch).

The optics (the scene of :mod:`predistort.scene`, traced without Mitsuba so that every quantity is a smooth
torch function of the setup and can be differentiated, the workaround the issue names for ``prb``'s biased
gradients at refraction discontinuities and for sensor parameters it cannot differentiate):

1. *Camera.* A pinhole at ``origin`` with the world-from-camera rotation ``rotation`` [3, 3] (columns:
   left, up, forward, as Mitsuba's ``look_at`` builds them); film position (s, t) ∈ [0, 1]² looks along
   ``(−(2s−1)·tan(fov/2), −(2t−1)·tan(fov/2)·H/W, 1)`` in camera space (``fov`` horizontal).
2. *Ball.* A ray meets the sphere (centre ``centre``, radius r) where ``|o + λd − c| = r``; it refracts in
   by Snell's law (index 1 → n), crosses the ball along the chord ``λ₂ = −2 d₂·(p₁ − c)`` and refracts out
   (n → 1). The weight of this chain (TT) is ``(1 − F₁)(1 − F₂)``, F the unpolarised Fresnel reflectance;
   the front surface reflects F₁ of the white environment towards the camera (R). Inside a sphere every
   chord meets the surface at the same angle, so every inner reflection has the same F₂ and each chord turns
   the ray by the same angle: the chains reflected an odd number of times inside (TRT, TR³T, ...) leave on
   the camera's side and see the environment, weight ``(1 − F₁)(1 − F₂)·F₂/(1 − F₂²)`` in all; the chain
   reflected twice (TRRT, weight ``(1 − F₁)F₂²(1 − F₂)``) leaves on the print's side and is traced to its own
   landing point (up to 1 % of a pixel's light at 0.9 of the radius, growing towards the rim; without it a
   fit's colours inside the ball are biased dark). Chains reflected four times or more (≤ F₂⁴) are left
   out.
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
    return d / d.norm(dim=-1, keepdim=True)


def fresnel(cos_i, eta):
    """Unpolarised Fresnel reflectance of a smooth interface, `cos_i` ≥ 0 the incident cosine, `eta` = n_t / n_i."""
    sin_t2 = (1 - cos_i ** 2) / eta ** 2
    cos_t = torch.sqrt((1 - sin_t2).clamp_min(0))
    rs = (cos_i - eta * cos_t) / (cos_i + eta * cos_t)
    rp = (eta * cos_i - cos_t) / (eta * cos_i + cos_t)
    return torch.where(sin_t2 >= 1, torch.ones_like(cos_i), 0.5 * (rs ** 2 + rp ** 2))


def _refract(d, n, eta):
    """Snell: direction `d` through a surface of facing normal `n` (n·d < 0), index ratio `eta` = n_i / n_t."""
    cos_i = -(d * n).sum(-1, keepdim=True)
    k = (1 - eta ** 2 * (1 - cos_i ** 2)).clamp_min(1e-12)
    return eta * d + (eta * cos_i - torch.sqrt(k)) * n


def trace(origin, d, centre, radius, ior, plane_scale):
    """Follow rays from `origin` [3] along unit `d` [N, 3] past or through the ball to the print.

    Returns a dict of [N] tensors: ``u``, ``v``, ``on_print`` (the refracted ray's landing uv, and whether it
    lands on the rectangle going towards it; meaningful where ``hit``), ``weight`` (the TT chain's
    (1−F₁)(1−F₂)), ``reflect`` (the environment's part: R and the chains leaving on the camera's side),
    ``u2``, ``v2``, ``on_print2``, ``weight2`` (the same for the TRRT chain), ``u_direct``, ``v_direct``,
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
    cos1 = -(d * n1).sum(-1)
    d2 = _refract(d, n1, 1.0 / ior)
    # 2. Across the chord, out at the far side (normal outward; facing normal −n2 for the inside ray).
    lam2 = -2 * (d2 * (p1 - centre)).sum(-1)
    p2 = p1 + lam2[:, None] * d2
    n2 = (p2 - centre) / radius
    cos2 = (d2 * n2).sum(-1)
    d3 = _refract(d2, -n2, ior)
    f1, f2 = fresnel(cos1.clamp(0, 1), ior), fresnel(cos2.clamp(0, 1), 1.0 / ior)
    weight = (1 - f1) * (1 - f2)
    # The environment the camera sees in the ball: the front reflection (R) and the chains that leave again on
    # the camera's side, TRT + TR³T + ... = (1 − F₁)(1 − F₂)(F₂ + F₂³ + ...), a geometric series.
    env = f1 + weight * f2 / (1 - f2 ** 2)
    # 2'. Reflected at the far side and again at the next point (chords of equal length λ₂), out at the third.
    d_r = _reflect(d2, n2)
    p3 = p2 + lam2[:, None] * d_r
    d_rr = _reflect(d_r, (p3 - centre) / radius)
    p4 = p3 + lam2[:, None] * d_rr
    d4 = _refract(d_rr, -(p4 - centre) / radius, ior)
    # 3. To the print, z = 0: the refracted rays, and the ray as if the ball were not there.
    u, v, on_print = _land(p2, d3, plane_scale)
    u2, v2, on_print2 = _land(p4, d4, plane_scale)
    u_direct, v_direct, on_print_direct = _land(origin.expand_as(d), d, plane_scale)
    return {"u": u, "v": v, "on_print": on_print, "weight": weight, "reflect": env,
            "u2": u2, "v2": v2, "on_print2": on_print2, "weight2": weight * f2 ** 2,
            "u_direct": u_direct, "v_direct": v_direct, "on_print_direct": on_print_direct,
            "hit": hit, "impact": impact}


def _reflect(d, n):
    """Mirror direction `d` about the surface of normal `n` (either orientation)."""
    return d - 2 * (d * n).sum(-1, keepdim=True) * n


def _land(start, direction, plane_scale):
    """uv [N] where rays meet the print z = 0, and whether they land on it going towards it."""
    lam = -start[:, 2] / direction[:, 2]
    x, y = start[:, 0] + lam * direction[:, 0], start[:, 1] + lam * direction[:, 1]
    u, v = (x / plane_scale + 1) / 2, (y / plane_scale + 1) / 2
    return u, v, (lam > 0) & (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)


def sample(texture, u, v):
    """`texture` [R, R, 3] (float64 tensor) read at uv [N] bilinearly between texel centres, edge texels
    extended: [N, 3]. Gathers and lerps (not ``grid_sample``), so forward-mode AD (``torch.func.jacfwd``)
    differentiates it in uv."""
    res = texture.shape[0]
    x, y = u * res - 0.5, v * res - 0.5                          # texel centres at integers
    x0, y0 = torch.floor(x).detach(), torch.floor(y).detach()
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    i0, j0 = y0.long(), x0.long()
    flat = texture.reshape(-1, texture.shape[-1])

    def at(di, dj):
        return flat.index_select(0, (i0 + di).clamp(0, res - 1) * res + (j0 + dj).clamp(0, res - 1))
    return (1 - fy) * ((1 - fx) * at(0, 0) + fx * at(0, 1)) + fy * ((1 - fx) * at(1, 0) + fx * at(1, 1))


def look(texture, traced, coverage=None):
    """What each traced ray sees: [N, 3]. Through the ball, the texture at the refracted landing point × the
    chain's weight + the environment's part; past it, the texture at the direct landing point; the white
    environment where a ray misses the print. ``coverage`` [N] (default: ``hit``) blends the two: a soft
    coverage of the ball's edge keeps the colour a continuous function of the setup."""
    white = torch.full((len(traced["u"]), 3), WHITE, dtype=texture.dtype)
    # Near the rim the landing points race across the print faster than a pixel resolves them: a pixel there
    # sees about the print's mean colour (blended in from SPRAY[0] to SPRAY[1] of the radius).
    spray = ((traced["impact"] - SPRAY[0]) / (SPRAY[1] - SPRAY[0])).clamp(0, 1)[:, None]
    inside = traced["reflect"][:, None] * WHITE
    for chain in ("", "2"):                                    # TT, then TRRT
        seen = torch.where(traced["on_print" + chain][:, None],
                           sample(texture, traced["u" + chain], traced["v" + chain]), white)
        seen = (1 - spray) * seen + spray * texture.mean((0, 1))
        inside = inside + seen * traced["weight" + chain][:, None]
    direct = torch.where(traced["on_print_direct"][:, None], sample(texture, traced["u_direct"], traced["v_direct"]),
                         white)
    coverage = traced["hit"].to(texture.dtype) if coverage is None else coverage
    return coverage[:, None] * inside + (1 - coverage[:, None]) * direct
