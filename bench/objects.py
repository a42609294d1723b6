"""How right a print looks through an optical object: the exact inverse trace, the maker's recipe, the project.

An independent check of issue 32 ("Any optical object"). This script does not import ``predistort``: it reads a
*world* (the issue's JSON in millimetres), builds its own Mitsuba 3 scene from it (``llvm_ad_rgb``,
``mi.load_dict``), traces its own rays in numpy, and scores textures the way the issue's hidden check does.

    python bench/objects.py                              # cylinder mirror on A3, camera 45° above; 3 pictures
    python bench/objects.py --kind cylinder cone sphere glass-sphere glass-ellipsoid   # every kind, one run
    python bench/objects.py --write-world W.json         # the world it uses, for `predistort apply --scene W.json`
    python bench/objects.py --project P1.png P2.png P3.png   # also score the project's textures (one a picture)
    python bench/objects.py --apply                      # run the project's `apply` on the world, time and score it
    python bench/objects.py --world W.json               # another world (mirrors, or glass sphere/cylinder/cone)
    python bench/objects.py --quick                      # half-size film, 32 spp, 512 print: a smoke run (~5 s)

Kinds (:func:`make_world`): ``cylinder`` (the issue's "Done when": a mirror r 30 × 100 mm standing on an A3
print, the camera 45° above, 350 mm away), ``cone`` and ``sphere`` (mirrors on the same print), ``glass-sphere``
and ``glass-ellipsoid`` (IOR 1.5 before an upright A4 print, an off-axis camera, a 4:3 film; the ellipsoid is an
OBJ mesh of 65k triangles with vertex normals that the bench writes, Mitsuba renders the mesh and the numpy
tracer the exact ellipsoid it was made from).

What it does, per kind and picture (``--pictures``, the repo's ``examples/*.png`` by default):

1. **Exact inverse trace** (:func:`exact_print`). For every camera pixel that sees an object (glass: every
   pixel), ``--rays``² jittered rays go camera → the exact analytic surfaces (reflected by a mirror; refracted
   by glass, total internal reflection included, one chain per ray) → the print. Each ray carries the colour
   that its pixel should show: for a mirror, the picture where the *camera ray* meets the target card; for
   glass, the picture where the camera ray meets the print with the objects removed. Geometry only: the
   colour is not corrected for Fresnel losses and the sky's reflection (a first-order correction, print =
   (wanted − F) / T, scored 0.004–0.005 worse on the glass silhouettes here, so it is not used). The colour
   is splatted (bilinear weights) at the ray's print point into a texture with ``--resolution`` texels on the
   print's long side, so a texel that several pixels see (directly and through glass, or two branches of a
   fold) gets the mean of what they want. Holes are filled from coarser levels of the splat (push-pull, 2⁴
   texels for a mirror, 2² for glass); beyond that a mirror's print is white and glass keeps the plain picture.
2. **The maker recipe** (:func:`recipe_print`, cylinder only). The polar grid that tutorials and the Victorian
   toy prints use for a cylinder mirror (a semicircular image around the mirror: Dover's *The Magic Mirror*
   reprints; anamorphicart.wordpress.com, "Cylindrical Mirror Anamorphoses", 2010, which calls it the simple
   approximation; the GIMP "Distorts → Polar Coordinates" recipe): with the picture's column ``s`` ∈ [0, 1] and
   row ``t`` ∈ [0, 1] (0 = top),

       angle  φ = (s − ½) · 180°            measured on the print from the direction of the camera, towards
                                             the camera's right (so the picture's left is on the viewer's left)
       radius r = R_out − t · (R_out − R)    the picture's top outermost, its bottom against the mirror

   with R the cylinder's radius and R_out the distance from the axis at which the top of the mirror, seen
   straight from the camera, reflects the print (the tutorials' "height of the image": this is the most
   favourable choice for the recipe, since it uses the real camera). Texels outside the annulus are white.
   Glass has no recipe: its baseline is the plain print (the picture itself, cropped to the print's aspect).
3. **Render and score** (:func:`render`, :func:`mirror_metric`, :func:`l1`). Mitsuba renders the world with
   each texture (``path``, ``max_depth`` 8, every render with the same seed).
   - Mirrors: the issue's metric (item 4): over the mirror's pixels whose reflection reaches the print, the mean
     over pixels and RGB channels of |render ÷ render of an all-white print − wanted|, where *wanted* is the
     picture on the target card as the camera sees it (pixel-centre ray → card → picture, bilinear). The mask
     (:func:`mirror_mask`) is traced with Mitsuba's own ``ray_intersect``: a pixel counts when its centre ray
     first hits a mirror, the reflected ray (about Mitsuba's shading normal) hits the print, and the centre ray
     crosses the target card. "eroded" repeats the score without the mask's edge pixels.
   - Glass: L1 (both clipped to [0, 1]) against the object-free view (the plain print, the objects removed,
     rendered), over the frame and over the object's silhouette; the ratios are against the plain print. A
     second render of the object-free view with another seed gives the noise floor in every glass number.
   The numpy tracer's mask is compared with Mitsuba's and the bench's pinhole camera with Mitsuba's
   ``sample_ray`` (both printed): a check of the two geometries.
4. **The project** (``--project`` PNGs, or ``--apply``): textures written by ``python -m predistort apply --scene
   WORLD.json --method solve --resolution R --fit crop --texture PIC --out-dir OUT`` for the world of
   ``--write-world``, scored the same way. ``--apply`` runs that command in a subprocess per picture and times it.
   Each row is checked against the issue's "Done when" bars (:func:`table`).

Conventions (the issue's, fixed). Millimetres. The print is a two-sided Lambertian rectangle of ``size`` =
[width, height] facing right × up; texture row 0 on its +up edge, column 0 on its −right edge; reflectance =
8-bit value / 255, no gamma. A uniform white ``constant`` environment of radiance 1. A ``cylinder`` / ``cone``
(``base``, ``axis``, ``radius``, ``height``) is a solid: its side is the mirror, its caps are black diffuse (a
cone is a smooth 512-segment PLY the bench writes). ``"mirror"`` is Mitsuba's ``conductor`` with ``material:
"none"``; ``{"ior": n}`` is ``dielectric`` (``ext_ior`` 1). The camera is ``perspective`` with ``look_at(origin,
target, up)``, horizontal ``fov``, ``film`` = [width, height] pixels, Gaussian filter; the image's right is
forward × up. The target card has the print's row/column convention; the picture is centre-cropped to its
aspect (``--fit crop``). When a mirror world has no target, the bench makes one as the issue says: a card
through the object's axis (its centre for a sphere), facing the camera, as wide and tall as the mirror looks
(the bounding box of the mirror pixels' rays on that plane); the written world carries it.

Limits. The numpy tracer knows spheres, cylinders, cones and the bench's own ellipsoid (``_bench_ellipsoid`` in
the mesh object, an extra field); another mesh can be rendered but not traced. The exact trace is exact in
geometry, not in imaging: the render has Mitsuba's Gaussian pixel filter (σ = ½ px) while *wanted* is sampled
at pixel centres, print texels are 8-bit, and where pixels disagree about a texel (glass: direct view against
the view through the object, folds near the rim) it takes their mean: so the exact trace's score is a floor
to compare with, not 0, and for glass it is not the best a texture can do (a least-squares solve through the
renderer could do better). The Fresnel-reflected branch of glass and the interreflection print → mirror → print
are rendered but not traced. The recipe exists for the cylinder only. Times are this machine's (2 CPU cores
shared with other work; Dr.Jit LLVM); the renders and the numpy trace dominate.
"""
import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"

import mitsuba as mi  # noqa: E402
import drjit as dr  # noqa: E402

mi.set_variant("llvm_ad_rgb")


# -- small vector helpers (numpy, rays as [N, 3] arrays) -------------------------------------------------------
def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def dot(a, b):
    return np.sum(a * b, axis=-1)


def reflect(d, n):
    return d - 2 * dot(d, n)[:, None] * n


# -- worlds ----------------------------------------------------------------------------------------------------
A3 = [420, 297]


def camera_at(look, elevation_deg, distance, azimuth_deg=-90.0, fov=18.0, film=(240, 320)):
    """A camera `distance` mm from `look`, `elevation_deg` above the print, seen from `azimuth_deg` (−90: −y)."""
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    origin = np.asarray(look, float) + distance * direction
    return {"origin": [round(x, 3) for x in origin], "target": list(map(float, look)), "up": [0, 0, 1],
            "fov": fov, "film": list(film)}


def make_world(kind, film=None, quick=False, glass_distance=100.0, radii=None, fov=None, aim=None):
    """The bench's world for `kind`. Mirrors: an A3 landscape print on z = 0, the object behind its centre, the
    camera on the −y side 350 mm from the object's middle, 45° above the print (cone: 55°, so that more of the
    cone's flatter reflections land on the print), a 3:4 film. Glass: an upright A4 print (the plane y = 0,
    facing −y), a glass ball (IOR 1.5, r 40 mm) 60 mm before it (beyond its focus: the view is inverted) or an
    ellipsoid (semi-axes 50, 32, 38 mm) as far (``glass_distance``: the object's centre → the print), an
    off-axis camera, a 4:3 film. The target card of a mirror is
    added by :func:`with_target`; glass has none (its target is the object-free view). Other framings of the
    ellipsoid: ``radii`` its semi-axes (mm), ``fov`` the camera's horizontal field (degrees), ``aim`` the point
    the camera looks at (default the print's centre)."""
    film = tuple(film or ((320, 240) if kind.startswith("glass") else (240, 320)))
    if quick:
        film = (film[0] // 2, film[1] // 2)
    prnt = {"center": [0, 0, 0], "right": [1, 0, 0], "up": [0, 1, 0], "size": list(A3)}
    if kind == "cylinder":
        obj = {"shape": "cylinder", "base": [0, 60, 0], "axis": [0, 0, 1], "radius": 30, "height": 100,
               "material": "mirror"}
        cam = camera_at([0, 60, 50], 45, 350, film=film)
    elif kind == "cone":
        obj = {"shape": "cone", "base": [0, 40, 0], "axis": [0, 0, 1], "radius": 30, "height": 110,
               "material": "mirror"}
        cam = camera_at([0, 40, 50], 55, 350, film=film)
    elif kind == "sphere":
        obj = {"shape": "sphere", "center": [0, 60, 40], "radius": 40, "material": "mirror"}
        cam = camera_at([0, 60, 40], 45, 350, film=film, fov=16)
    elif kind == "glass-sphere":
        prnt = {"center": [0, 0, 0], "right": [1, 0, 0], "up": [0, 0, 1], "size": [297, 210]}
        obj = {"shape": "sphere", "center": [0, -glass_distance, 0], "radius": 40, "material": {"ior": 1.5}}
        cam = {"origin": [90, -420, 60], "target": [0, 0, 0], "up": [0, 0, 1], "fov": 40, "film": list(film)}
    elif kind == "glass-ellipsoid":
        prnt = {"center": [0, 0, 0], "right": [1, 0, 0], "up": [0, 0, 1], "size": [297, 210]}
        obj = {"shape": "mesh", "file": "ellipsoid.obj", "material": {"ior": 1.5},
               "_bench_ellipsoid": {"center": [0, -glass_distance, 0], "radii": list(radii or [50, 32, 38])}}
        cam = {"origin": [110, -430, 80], "target": list(aim or [0, 0, 0]), "up": [0, 0, 1], "fov": fov or 40,
               "film": list(film)}
    else:
        raise SystemExit(f"--kind {kind}: not implemented")
    return {"units": "mm", "print": prnt, "objects": [obj], "camera": cam}


def write_ellipsoid_obj(path, center, radii, segments=256):
    """A smooth ellipsoid mesh (OBJ with vertex normals): `segments` around, `segments` / 2 from pole to pole."""
    c, r = np.asarray(center, float), np.asarray(radii, float)
    nu, nv = segments, segments // 2
    th = np.linspace(0, math.pi, nv + 1)[:, None]
    ph = np.linspace(0, 2 * math.pi, nu, endpoint=False)[None]
    unit_pts = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th) * np.ones_like(ph)], -1)
    unit_pts = unit_pts.reshape(-1, 3)
    keep = np.ones(len(unit_pts), bool)
    keep[1:nu], keep[nv * nu + 1:] = False, False                   # one vertex per pole
    index = np.cumsum(keep) - 1
    index[:nu], index[nv * nu:] = 0, index[nv * nu]
    v = c + unit_pts[keep] * r
    n = unit(unit_pts[keep] / r)                                     # ∝ (p − c) / r²
    faces = []
    for i in range(nv):
        for j in range(nu):
            a, b = i * nu + j, i * nu + (j + 1) % nu
            cc, d = a + nu, b + nu
            if i > 0:
                faces.append((index[a], index[b], index[d]))
            if i < nv - 1:
                faces.append((index[a], index[d], index[cc]))
    faces = np.array(faces)
    a, b, cc = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    if np.mean(dot(np.cross(b - a, cc - a), (a + b + cc) / 3 - c)) < 0:      # wind them outwards
        faces = faces[:, [0, 2, 1]]
    lines = [f"v {x:.5f} {y:.5f} {z:.5f}" for x, y, z in v] + [f"vn {x:.6f} {y:.6f} {z:.6f}" for x, y, z in n]
    lines += [f"f {a + 1}//{a + 1} {b + 1}//{b + 1} {cc + 1}//{cc + 1}" for a, b, cc in faces]
    Path(path).write_text("\n".join(lines) + "\n")
    return len(faces)


# -- the camera (numpy; checked against Mitsuba's sample_ray in main) -----------------------------------------
def camera_frame(cam):
    o = np.asarray(cam["origin"], float)
    f = unit(np.asarray(cam["target"], float) - o)
    r = unit(np.cross(f, np.asarray(cam["up"], float)))
    u = np.cross(r, f)
    return o, f, r, u


def camera_rays(cam, px, py):
    """Rays through continuous pixel positions (px right, py down, pixel (i, j) spans [j, j+1] × [i, i+1])."""
    o, f, r, u = camera_frame(cam)
    w, h = cam["film"]
    t = math.tan(math.radians(cam["fov"]) / 2)
    x = (2 * px / w - 1) * t
    y = (1 - 2 * py / h) * t * h / w
    d = unit(f[None] + x[:, None] * r[None] + y[:, None] * u[None])
    return np.broadcast_to(o, d.shape).copy(), d


# -- exact intersections (numpy) -------------------------------------------------------------------------------
EPS = 1e-6


def _first_positive_root(a, b, c):
    """Smallest root t > EPS of a t² + b t + c = 0 for each row, else inf; both roots returned for filtering."""
    disc = b * b - 4 * a * c
    ok = disc >= 0
    s = np.sqrt(np.where(ok, disc, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = np.where(ok, (-b - s) / (2 * a), np.inf)
        t1 = np.where(ok, (-b + s) / (2 * a), np.inf)
    return t0, t1


def hit_sphere(o, d, c, r):
    oc = o - c
    t0, t1 = _first_positive_root(dot(d, d), 2 * dot(oc, d), dot(oc, oc) - r * r)
    t = np.where(t0 > EPS, t0, np.where(t1 > EPS, t1, np.inf))
    n = unit(o + t[:, None] * d - c) if np.isfinite(t).any() else np.zeros_like(o)
    return t, n


def hit_side(o, d, base, axis, radius, height, apex):
    """The side of a finite cylinder (apex False) or cone (apex True, radius at the base, 0 at `height`)."""
    ob = o - base
    ho, hd = dot(ob, axis), dot(d, axis)
    op, dp = ob - ho[:, None] * axis, d - hd[:, None] * axis
    if apex:
        k2 = (radius / height) ** 2
        a = dot(dp, dp) - k2 * hd * hd
        b = 2 * (dot(op, dp) + k2 * (height - ho) * hd)
        c = dot(op, op) - k2 * (height - ho) ** 2
    else:
        a, b, c = dot(dp, dp), 2 * dot(op, dp), dot(op, op) - radius * radius
    best = np.full(len(o), np.inf)
    for t in _first_positive_root(a, b, c):
        h = ho + t * hd
        ok = (t > EPS) & (h >= 0) & (h <= height) & (t < best)
        best = np.where(ok, t, best)
    p = ob + np.where(np.isfinite(best), best, 0)[:, None] * d
    h = dot(p, axis)
    radial = p - h[:, None] * axis
    if apex:
        n = radial + (radius / height) ** 2 * (height - h)[:, None] * axis
    else:
        n = radial
    return best, unit(n + 1e-30)


def hit_disk(o, d, center, normal, radius):
    with np.errstate(divide="ignore", invalid="ignore"):
        t = dot(center - o, normal) / dot(d, normal)
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    ok = np.isfinite(t) & (t > EPS) & (dot(p - center, p - center) <= radius * radius)
    return np.where(ok, t, np.inf), np.broadcast_to(normal, o.shape)


def hit_rect(o, d, rect):
    """Ray → rectangle {center, right, up, size}: t and the texture coordinates (s from −right, t from +up)."""
    c, r, u = (np.asarray(rect[k], float) for k in ("center", "right", "up"))
    w, h = rect["size"]
    n = np.cross(r, u)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = dot(c - o, n) / dot(d, n)
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d - c
    s, v = dot(p, r) / w + 0.5, 0.5 - dot(p, u) / h
    ok = np.isfinite(t) & (t > EPS) & (s >= 0) & (s <= 1) & (v >= 0) & (v <= 1)
    return np.where(ok, t, np.inf), s, v


def hit_ellipsoid(o, d, c, radii):
    """The exact ellipsoid (axes along x, y, z): scaled to the unit sphere, the same t."""
    os_, ds = (o - c) / radii, d / radii
    t0, t1 = _first_positive_root(dot(ds, ds), 2 * dot(os_, ds), dot(os_, os_) - 1)
    t = np.where(t0 > EPS, t0, np.where(t1 > EPS, t1, np.inf))
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    return t, unit((p - c) / radii ** 2 + 1e-30)


def object_parts(obj):
    """[(kind, ior, intersect(o, d) -> (t, outward normal))]: kind "mirror", "glass" or "black" (the caps).
    A mesh is traced only when it carries ``_bench_ellipsoid`` (the exact surface it was made from)."""
    mat = "mirror" if obj["material"] == "mirror" else "glass"
    ior = None if mat == "mirror" else float(obj["material"]["ior"])
    if obj["shape"] == "mesh" and "_bench_ellipsoid" in obj:
        c, r = (np.asarray(obj["_bench_ellipsoid"][k], float) for k in ("center", "radii"))
        return [(mat, ior, lambda o, d: hit_ellipsoid(o, d, c, r))]
    if obj["shape"] == "sphere":
        c, r = np.asarray(obj["center"], float), obj["radius"]
        return [(mat, ior, lambda o, d: hit_sphere(o, d, c, r))]
    if obj["shape"] in ("cylinder", "cone"):
        base, axis = np.asarray(obj["base"], float), unit(obj["axis"])
        radius, height, apex = obj["radius"], obj["height"], obj["shape"] == "cone"
        cap = "black" if mat == "mirror" else mat                    # a glass rod's caps are glass
        parts = [(mat, ior, lambda o, d: hit_side(o, d, base, axis, radius, height, apex)),
                 (cap, ior, lambda o, d: hit_disk(o, d, base, -axis, radius))]
        if not apex:
            parts.append((cap, ior, lambda o, d: hit_disk(o, d, base + height * axis, axis, radius)))
        return parts
    raise SystemExit(f"the numpy tracer has no {obj['shape']!r} (sphere, cylinder, cone, the bench's ellipsoid)")


def refract(d, n_out, ior):
    """Refract (or totally reflect) unit directions `d` at a surface of outward normal `n_out`, glass `ior` in
    air. Returns the new directions and the side offset (+1: the ray stays on the side it came from)."""
    entering = dot(d, n_out) < 0
    n = np.where(entering[:, None], n_out, -n_out)                  # facing the incoming ray
    eta = np.where(entering, 1.0 / ior, ior)
    cos_i = -dot(d, n)
    k = 1 - eta ** 2 * (1 - cos_i ** 2)
    tir = k < 0
    t = eta[:, None] * d + (eta * cos_i - np.sqrt(np.maximum(k, 0)))[:, None] * n
    return np.where(tir[:, None], reflect(d, n), unit(t)), np.where(tir, 1.0, -1.0), n


def trace(world, o, d, max_events=8):
    """Follow rays through the world's mirrors (reflection) and glass (refraction, total internal reflection;
    the Fresnel-reflected part is not followed: one chain per ray, the main one). Returns (events, print s,
    print t, first hit): events = specular events before the ray met the print (0: the print seen directly,
    −1: never: the sky, a black cap, too many events); first hit = "mirror", "glass" or "" per ray."""
    parts = [p for obj in world["objects"] for p in object_parts(obj)]
    n_rays = len(o)
    events = np.full(n_rays, -1)
    s_out, t_out = np.zeros(n_rays), np.zeros(n_rays)
    first = np.full(n_rays, "", dtype=object)
    alive = np.arange(n_rays)
    for depth in range(max_events + 1):
        if not len(alive):
            break
        t_best = np.full(len(alive), np.inf)
        which = np.full(len(alive), -1)
        n_best = np.zeros((len(alive), 3))
        for i, (_, _, fn) in enumerate(parts):
            t, n = fn(o, d)
            closer = t < t_best
            t_best, which = np.where(closer, t, t_best), np.where(closer, i, which)
            n_best[closer] = n[closer]
        t_print, s, v = hit_rect(o, d, world["print"])
        on_print = t_print < t_best
        s_out[alive[on_print]], t_out[alive[on_print]] = s[on_print], v[on_print]
        events[alive[on_print]] = depth
        kinds = np.array([p[0] for p in parts] + [""], dtype=object)[which]      # which = −1 → ""
        if depth == 0:
            first[alive] = np.where(on_print, "", kinds)
        keep = (~on_print) & ((kinds == "mirror") | (kinds == "glass"))
        p = o[keep] + t_best[keep, None] * d[keep]
        n_out, dk = n_best[keep], d[keep]
        iors = np.array([p_[1] or 1.0 for p_ in parts])[which[keep]]
        d_new, side, n_face = refract(dk, n_out, iors)
        mirror = kinds[keep] == "mirror"
        n_m = np.where((dot(dk, n_out) > 0)[:, None], -n_out, n_out)
        d_new[mirror], side[mirror], n_face[mirror] = reflect(dk[mirror], n_m[mirror]), 1.0, n_m[mirror]
        o, d, alive = p + 1e-4 * side[:, None] * n_face, d_new, alive[keep]
    return events, s_out, t_out, first


# -- the target card and the picture on it ---------------------------------------------------------------------
def with_target(world):
    """The world with a target card: the world's own, or the issue's default for a mirror (see the docstring).
    A glass world without one is returned as it is: its target is the print, the objects removed."""
    obj = world["objects"][0]
    if "target" in world or obj["material"] != "mirror":
        return world
    cam = world["camera"]
    o, f, _, _ = camera_frame(cam)
    if obj["shape"] == "sphere":
        center = np.asarray(obj["center"], float)
    else:
        base, axis = np.asarray(obj["base"], float), unit(obj["axis"])
        center = base + axis * obj["height"] / 2
    to_cam = unit(o - center)
    axis_up = np.asarray(cam["up"], float) if obj["shape"] == "sphere" else unit(obj["axis"])
    right = unit(np.cross(-to_cam, axis_up))
    up = unit(np.cross(to_cam, right))            # in the plane of the axis and the view, facing the camera
    w, h = cam["film"]
    py, px = np.mgrid[0:h, 0:w] + 0.5
    ro, rd = camera_rays(cam, px.ravel(), py.ravel())
    first = trace(world, ro, rd, max_events=0)[3] == "mirror"
    ro, rd = ro[first], rd[first]
    n = np.cross(right, up)
    t = dot(center - ro, n) / dot(rd, n)
    p = ro + t[:, None] * rd - center
    x, y = dot(p, right), dot(p, up)
    cx, cy = (x.max() + x.min()) / 2, (y.max() + y.min()) / 2
    card = {"center": [round(v, 3) for v in center + cx * right + cy * up],
            "right": [round(v, 6) for v in right], "up": [round(v, 6) for v in up],
            "size": [round(float(x.max() - x.min()), 2), round(float(y.max() - y.min()), 2)]}
    return {**world, "target": card}


def fit_crop(picture, aspect):
    """The centre crop of `picture` ([H, W, 3] float) with width/height = `aspect` (the project's --fit crop)."""
    h, w = picture.shape[:2]
    if w / h > aspect:
        cw = max(1, round(h * aspect))
        x0 = (w - cw) // 2
        return picture[:, x0:x0 + cw]
    ch = max(1, round(w / aspect))
    y0 = (h - ch) // 2
    return picture[y0:y0 + ch]


def bilinear(img, s, t):
    """Sample `img` [H, W, C] at texture coordinates s, t ∈ [0, 1] (s across, t down), edges clamped."""
    h, w = img.shape[:2]
    x = np.clip(s * w - 0.5, 0, w - 1)
    y = np.clip(t * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    return ((img[y0, x0] * (1 - fx) + img[y0, x1] * fx) * (1 - fy)
            + (img[y1, x0] * (1 - fx) + img[y1, x1] * fx) * fy)


def picture_on_target(world, picture, o, d):
    """The colour of `picture` (fitted to the card) where rays o + t d cross the target card; inside flags."""
    card = world["target"]
    t, s, v = hit_rect(o, d, card)
    colour = bilinear(picture, np.clip(s, 0, 1), np.clip(v, 0, 1))
    return colour, np.isfinite(t)


def wanted_colour(world, picture, o, d):
    """What camera rays should show, and where that is defined: the picture on the target card (a world with a
    target: mirrors), or on the print seen straight with the objects removed (no target: glass)."""
    if "target" in world:
        return picture_on_target(world, picture, o, d)
    t, s, v = hit_rect(o, d, world["print"])
    return bilinear(picture, np.clip(s, 0, 1), np.clip(v, 0, 1)), np.isfinite(t)


def target_aspect(world):
    w, h = world.get("target", world["print"])["size"]
    return w / h


def plain_print(world, picture, resolution):
    """The picture itself as the print texture (the glass baseline): resampled to the print's texels."""
    tw, th = print_shape(world, resolution)
    yy, xx = np.mgrid[0:th, 0:tw] + 0.5
    return to_uint8(bilinear(picture, (xx / tw).ravel(), (yy / th).ravel()).reshape(th, tw, 3))


def read_picture(path, aspect):
    return fit_crop(np.asarray(Image.open(path).convert("RGB"), np.float64) / 255.0, aspect)


def print_shape(world, resolution):
    w, h = world["print"]["size"]
    return (resolution, max(1, round(resolution * h / w))) if w >= h else (max(1, round(resolution * w / h)),
                                                                           resolution)


# -- 1. the exact inverse trace --------------------------------------------------------------------------------
def exact_print(world, picture, resolution, rays, chunk=400_000, seed=0):
    """The print texture ([H, W, 3] uint8) from camera rays through the exact objects (see the docstring).
    Mirror worlds: white where no ray lands. Glass worlds: the plain picture there (the print seen directly)."""
    glass = "target" not in world
    tw, th = print_shape(world, resolution)
    acc, wgt = np.zeros((th, tw, 3)), np.zeros((th, tw))
    cam = world["camera"]
    fw, fh = cam["film"]
    # the pixels to sample: those whose centre, or a neighbour's, sees an object
    py, px = np.mgrid[0:fh, 0:fw] + 0.5
    o, d = camera_rays(cam, px.ravel(), py.ravel())
    first = (trace(world, o, d, max_events=0)[3] != "").reshape(fh, fw) | glass     # glass: every pixel
    near = first.copy()
    for dy in (-2, -1, 0, 1, 2):
        for dx in (-2, -1, 0, 1, 2):
            near |= np.roll(np.roll(first, dy, 0), dx, 1)
    iy, ix = np.nonzero(near)
    rng = np.random.default_rng(seed)
    sub = (np.stack(np.meshgrid(np.arange(rays), np.arange(rays)), -1).reshape(-1, 2) + 0.5) / rays
    per_chunk = max(1, chunk // len(sub))
    for k in range(0, len(iy), per_chunk):
        jx = (ix[k:k + per_chunk, None] + sub[None, :, 0]).ravel()
        jy = (iy[k:k + per_chunk, None] + sub[None, :, 1]).ravel()
        jx = jx + rng.uniform(-0.5, 0.5, jx.shape) / rays
        jy = jy + rng.uniform(-0.5, 0.5, jy.shape) / rays
        o, d = camera_rays(cam, jx, jy)
        events, s, v, _ = trace(world, o, d)
        colour, defined = wanted_colour(world, picture, o, d)
        # mirrors: the reflected rays; glass: the main chain (in, out) and the print seen directly, so that a
        # texel seen both ways gets the mean of what its pixels want
        ok = defined & ((events == 0) | (events == 2) if glass else (events > 0))
        splat(acc, wgt, s[ok] * tw - 0.5, v[ok] * th - 0.5, colour[ok])
    if glass:
        return to_uint8(push_pull(acc, wgt, plain_print(world, picture, resolution) / 255.0, levels=2))
    return to_uint8(push_pull(acc, wgt, np.ones((th, tw, 3))))


def splat(acc, wgt, x, y, colour):
    """Accumulate `colour` at continuous texel positions (x, y) with bilinear weights."""
    h, w = wgt.shape
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        idx = yi[ok] * w + xi[ok]
        wgt.reshape(-1)[:] += np.bincount(idx, wt[ok], minlength=h * w)
        flat = acc.reshape(-1, 3)                     # views: acc and wgt are contiguous
        for c in range(3):
            flat[:, c] += np.bincount(idx, wt[ok] * colour[ok, c], minlength=h * w)


def push_pull(acc, wgt, base, levels=4, floor=1e-3):
    """Texels with splats: their mean colour. Holes: the mean at the finest of `levels` coarser (2×2-summed)
    levels that has weight there. Farther holes: `base`."""
    h, w = wgt.shape
    out = base.astype(np.float64).copy()
    filled = np.zeros((h, w), bool)
    a, g = acc, wgt
    for level in range(levels + 1):
        f = 2 ** level
        have = g > floor
        mean = np.where(have[..., None], a / np.maximum(g, floor)[..., None], 1.0)
        up_have = np.repeat(np.repeat(have, f, 0), f, 1)[:h, :w]
        up_mean = np.repeat(np.repeat(mean, f, 0), f, 1)[:h, :w]
        new = up_have & ~filled
        out[new], filled = up_mean[new], filled | new
        ph, pw = (-a.shape[0]) % 2, (-a.shape[1]) % 2
        a = np.pad(a, ((0, ph), (0, pw), (0, 0)))
        g = np.pad(g, ((0, ph), (0, pw)))
        a = a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]
        g = g[0::2, 0::2] + g[1::2, 0::2] + g[0::2, 1::2] + g[1::2, 1::2]
    return out


def to_uint8(img):
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


# -- 2. the maker recipe ---------------------------------------------------------------------------------------
def recipe_print(world, picture, resolution):
    """The polar-grid recipe for a cylinder mirror (formula in the docstring) as a print texture [H, W, 3] uint8."""
    obj = world["objects"][0]
    if obj["shape"] != "cylinder":
        return None
    prnt, cam = world["print"], world["camera"]
    base, axis, radius = np.asarray(obj["base"], float), unit(obj["axis"]), obj["radius"]
    o, _, cam_right, _ = camera_frame(cam)
    toward = unit((o - base) - dot(o - base, axis) * axis)          # on the print, from the axis to the camera
    rightward = unit(cam_right - dot(cam_right, axis) * axis)
    # R_out: where the top front of the mirror reflects the print, seen from the camera
    top = base + toward * radius + axis * obj["height"] * 0.999
    ro, rd = o[None], unit(top - o)[None]
    events, s, v, _ = trace(world, ro, rd)
    if events[0] < 1:
        raise SystemExit("recipe: the top of the mirror does not reflect the print")
    c, r, u = (np.asarray(prnt[k], float) for k in ("center", "right", "up"))
    pw, ph = prnt["size"]
    hit = c + (s[0] - 0.5) * pw * r + (0.5 - v[0]) * ph * u
    r_out = float(np.linalg.norm((hit - base) - dot(hit - base, axis) * axis))
    # every texel: its polar coordinates about the axis
    tw, th = print_shape(world, resolution)
    yy, xx = np.mgrid[0:th, 0:tw] + 0.5
    p = c + ((xx / tw - 0.5) * pw)[..., None] * r + ((0.5 - yy / th) * ph)[..., None] * u - base
    p = p - dot(p, axis)[..., None] * axis
    rad = np.linalg.norm(p, axis=-1)
    phi = np.arctan2(dot(p, rightward), dot(p, toward))
    ps = phi / math.pi + 0.5
    pt = (r_out - rad) / (r_out - radius)
    inside = (ps >= 0) & (ps <= 1) & (pt >= 0) & (pt <= 1)
    out = np.ones((th, tw, 3))
    out[inside] = bilinear(picture, ps[inside], pt[inside])
    return to_uint8(out), r_out


# -- Mitsuba: the world as a scene -----------------------------------------------------------------------------
def frame_matrix(x, y, origin):
    """The 4×4 matrix with columns x, y, x × y (the z column) and `origin`."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, np.cross(x, y), origin
    return mi.ScalarTransform4f(m.tolist())


def disk_matrix(center, normal, radius):
    n = unit(normal)
    a = unit(np.cross(n, [1, 0, 0] if abs(n[0]) < 0.9 else [0, 1, 0]))
    return frame_matrix(a * radius, np.cross(n, a) * radius, center)


def write_cone_ply(path, obj, segments=512):
    """The cone's side as a smooth binary PLY (apex ring of coincident vertices so each has its own normal)."""
    base, axis = np.asarray(obj["base"], float), unit(obj["axis"])
    r, h = obj["radius"], obj["height"]
    a = unit(np.cross(axis, [1, 0, 0] if abs(axis[0]) < 0.9 else [0, 1, 0]))
    b = np.cross(axis, a)
    ang = np.arange(segments) * 2 * math.pi / segments
    radial = np.cos(ang)[:, None] * a + np.sin(ang)[:, None] * b
    normals = unit(radial * h + axis * r)                           # ⟂ to the slant
    v = np.concatenate([base + r * radial, np.broadcast_to(base + h * axis, radial.shape)])
    nrm = np.concatenate([normals, normals])
    i = np.arange(segments)
    faces = np.stack([i, (i + 1) % segments, segments + i], 1)
    mesh = mi.Mesh("cone", len(v), len(faces), has_vertex_normals=True)
    params = mi.traverse(mesh)
    params["vertex_positions"] = mi.Float(v.astype(np.float32).ravel())
    params["vertex_normals"] = mi.Float(nrm.astype(np.float32).ravel())
    params["faces"] = mi.UInt32(faces.astype(np.uint32).ravel())
    params.update()
    mesh.write_ply(str(path))
    return str(path)


def material(mat):
    if mat == "mirror":
        return {"type": "conductor", "material": "none"}
    return {"type": "dielectric", "int_ior": float(mat["ior"]), "ext_ior": 1.0}


BLACK = {"type": "twosided", "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.0}}}


def scene_dict(world, texture, folder, world_dir=None):
    """The Mitsuba scene of `world` with `texture` ([H, W, 3] uint8) on the print (None: no print texture,
    white). Object i's surfaces are named obj{i}, obj{i}_cap0, obj{i}_cap1."""
    prnt, cam = world["print"], world["camera"]
    w, h = prnt["size"]
    tex = np.ones((2, 2, 3), np.float32) if texture is None else texture.astype(np.float32) / 255.0
    scene = {
        "type": "scene",
        "integrator": {"type": "path", "max_depth": 8},
        "sensor": {"type": "perspective", "fov": float(cam["fov"]), "fov_axis": "x",
                   "to_world": mi.ScalarTransform4f().look_at(origin=cam["origin"], target=cam["target"],
                                                              up=cam["up"]),
                   "film": {"type": "hdrfilm", "width": int(cam["film"][0]), "height": int(cam["film"][1]),
                            "rfilter": {"type": "gaussian"}, "pixel_format": "rgb"}},
        "env": {"type": "constant", "radiance": {"type": "rgb", "value": 1.0}},
        "print": {"type": "rectangle",
                  "to_world": frame_matrix(np.asarray(prnt["right"], float) * w / 2,
                                           -np.asarray(prnt["up"], float) * h / 2, prnt["center"]),
                  "bsdf": {"type": "twosided", "bsdf": {"type": "diffuse", "reflectance": {
                      "type": "bitmap", "bitmap": mi.Bitmap(np.ascontiguousarray(tex)), "raw": True,
                      "wrap_mode": "clamp"}}}},
    }
    for i, obj in enumerate(world["objects"]):
        bsdf, key = material(obj["material"]), f"obj{i}"
        if obj["shape"] == "sphere":
            scene[key] = {"type": "sphere", "center": obj["center"], "radius": obj["radius"], "bsdf": bsdf}
        elif obj["shape"] in ("cylinder", "cone"):
            base, axis = np.asarray(obj["base"], float), unit(obj["axis"])
            top = base + axis * obj["height"]
            if obj["shape"] == "cylinder":
                scene[key] = {"type": "cylinder", "p0": base.tolist(), "p1": top.tolist(),
                              "radius": obj["radius"], "bsdf": bsdf}
                caps = [(base, -axis), (top, axis)]
            else:
                scene[key] = {"type": "ply", "filename": write_cone_ply(Path(folder) / f"cone{i}.ply", obj),
                              "bsdf": bsdf}
                caps = [(base, -axis)]
            for j, (c, n) in enumerate(caps):
                scene[f"{key}_cap{j}"] = {"type": "disk", "to_world": disk_matrix(c, n, obj["radius"]),
                                          "bsdf": BLACK}
        elif obj["shape"] == "mesh":
            f = Path(world_dir or ".") / obj["file"]
            scene[key] = {"type": f.suffix.lower()[1:], "filename": str(f), "bsdf": bsdf}
        else:
            raise SystemExit(f"objects[{i}].shape: unknown {obj['shape']!r}")
    return scene


def render(world, texture, spp, seed=0, world_dir=None):
    """Linear radiance [H, W, 3] of the world with `texture` on the print."""
    with tempfile.TemporaryDirectory() as folder:
        scene = mi.load_dict(scene_dict(world, texture, folder, world_dir))
        return np.asarray(mi.render(scene, spp=spp, seed=seed), np.float64)


# -- 3. the mask and the metric --------------------------------------------------------------------------------
def mirror_mask(world, world_dir=None):
    """Traced with Mitsuba's ray_intersect from pixel centres: (pixels whose ray first hits a mirror, whose
    reflection (about Mitsuba's shading normal, up to 4 mirror bounces) reaches the print, and that see the
    target card; pixels whose ray first hits any object: the silhouette). [H, W] bool each."""
    w, h = world["camera"]["film"]
    py, px = np.mgrid[0:h, 0:w] + 0.5
    o, d = camera_rays(world["camera"], px.ravel(), py.ravel())
    with tempfile.TemporaryDirectory() as folder:
        scene = mi.load_dict(scene_dict(world, None, folder, world_dir))
        shapes = {s.id(): s for s in scene.shapes()}
        mirrors = [shapes[f"obj{i}"] for i, obj in enumerate(world["objects"]) if obj["material"] == "mirror"]
        ray = mi.Ray3f(mi.Point3f(o.T.astype(np.float32)), mi.Vector3f(d.T.astype(np.float32)))
        si = scene.ray_intersect(ray)
        silhouette = dr.zeros(mi.Bool, len(o))
        for i in range(len(world["objects"])):
            silhouette |= si.shape == mi.ShapePtr(shapes[f"obj{i}"])
        silhouette = np.asarray(silhouette).reshape(h, w)
        if not mirrors:
            return silhouette, silhouette
        on_mirror = dr.zeros(mi.Bool, len(o))
        for m in mirrors:
            on_mirror |= si.shape == mi.ShapePtr(m)
        first = np.asarray(on_mirror).copy()
        reached = dr.zeros(mi.Bool, len(o))
        active = mi.Bool(on_mirror)
        for _ in range(4):
            n = si.sh_frame.n
            r = ray.d - 2 * dr.dot(ray.d, n) * n
            ray = si.spawn_ray(r)
            si = scene.ray_intersect(ray, active)
            reached |= active & (si.shape == mi.ShapePtr(shapes["print"]))
            again = dr.zeros(mi.Bool, len(o))
            for m in mirrors:
                again |= si.shape == mi.ShapePtr(m)
            active &= again
    on_card = np.isfinite(hit_rect(o, d, world["target"])[0])
    return (first & np.asarray(reached) & on_card).reshape(h, w), silhouette


def wanted_view(world, picture):
    """The picture on the target card as the camera sees it, at pixel centres (bilinear). [H, W, 3]."""
    w, h = world["camera"]["film"]
    py, px = np.mgrid[0:h, 0:w] + 0.5
    o, d = camera_rays(world["camera"], px.ravel(), py.ravel())
    colour, _ = wanted_colour(world, picture, o, d)
    return colour.reshape(h, w, 3)


def mirror_metric(img, white, wanted, mask):
    ratio = img / np.maximum(white, 1e-6)
    return float(np.abs(ratio - wanted)[mask].mean())


def erode(mask):
    out = mask.copy()
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        out &= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


# -- main ------------------------------------------------------------------------------------------------------
def check_camera(world):
    """Max angle (degrees) between this script's pinhole rays and Mitsuba's sensor.sample_ray."""
    w, h = world["camera"]["film"]
    with tempfile.TemporaryDirectory() as folder:
        scene = mi.load_dict(scene_dict({**world, "objects": []}, None, folder))
    sensor = scene.sensors()[0]
    pts = np.array([[0.5, 0.5], [w - 0.5, 0.5], [0.5, h - 0.5], [w / 3, h * 0.7], [w / 2, h / 2]])
    ray, _ = sensor.sample_ray(0.0, 0.0, mi.Point2f((pts / [w, h]).T.astype(np.float32)), mi.Point2f(0.5, 0.5))
    dm = np.asarray(ray.d).T
    if dm.shape[0] != len(pts):
        dm = dm.T
    _, d = camera_rays(world["camera"], pts[:, 0], pts[:, 1])
    return float(np.degrees(np.arccos(np.clip(dot(unit(dm), d), -1, 1))).max())


def save_png(path, img):
    Image.fromarray(img if img.dtype == np.uint8 else to_uint8(img)).save(path)


def small(img, long_side=512):
    im = Image.fromarray(img)
    f = long_side / max(im.size)
    return np.asarray(im.resize((max(1, round(im.size[0] * f)), max(1, round(im.size[1] * f))), Image.LANCZOS))


def l1(a, b, mask=None):
    """Mean |a − b| over RGB, both clipped to the displayable [0, 1], over `mask` (the whole frame: None)."""
    e = np.abs(np.clip(a, 0, 1) - np.clip(b, 0, 1))
    return float(e.mean() if mask is None else e[mask].mean())


def geometry_checks(world, world_dir):
    """The Mitsuba masks and how the bench's own camera and tracer agree with Mitsuba's."""
    cam_err = check_camera(world)
    mask, silhouette = mirror_mask(world, world_dir)
    fw, fh = world["camera"]["film"]
    py, px = np.mgrid[0:fh, 0:fw] + 0.5
    o, d = camera_rays(world["camera"], px.ravel(), py.ravel())
    events, _, _, first = trace(world, o, d)
    if "target" in world:
        np_mask = (events > 0) & (first == "mirror") & np.isfinite(hit_rect(o, d, world["target"])[0])
    else:
        np_mask = first != ""
    agree = float((np_mask.reshape(fh, fw) == mask).mean())
    return {"mask": mask, "silhouette": silhouette, "agree": agree, "cam_err": cam_err}


def run_kind(kind, world, world_dir, args, out):
    """Score every candidate texture of one world for every picture. Returns (rows, facts for the report)."""
    mirror = "target" in world
    t0 = time.perf_counter()
    g = geometry_checks(world, world_dir)
    mask, silhouette = g["mask"], g["silhouette"]
    eroded = erode(mask)
    print(f"[{kind}] camera model vs Mitsuba {g['cam_err']:.1e}°; object pixels {int(silhouette.sum())}, scored "
          f"{int(mask.sum())}; numpy and Mitsuba masks agree on {100 * g['agree']:.2f}% of the film", flush=True)
    if mask.sum() == 0:
        raise SystemExit(f"[{kind}] no pixel sees the object" + (" reflect the print: move the camera" if mirror
                                                                  else ""))
    white = render(world, None, args.spp, world_dir=world_dir)
    # Glass: what any print can reach. The render is linear in the print's reflectance t ∈ [0, 1], so every
    # pixel of every possible render lies between the all-black print's render (the sky reflected and refracted
    # by the glass, with no print light) and the all-white one's. The nearest point of that interval to the
    # wanted colour is a bound no texture beats (pixels share texels, so the real optimum is higher still).
    black = None if mirror else render(world, np.zeros((8, 8, 3), np.uint8), args.spp, world_dir=world_dir)
    facts = {"world": world, "scored": int(mask.sum()), "eroded": int(eroded.sum()),
             "object_pixels": int(silhouette.sum()), "agree": g["agree"], "cam_err": g["cam_err"],
             "setup_s": time.perf_counter() - t0, "r_out": None}
    rows = []
    for pi, pic_path in enumerate(args.pictures):
        name = Path(pic_path).stem
        picture = read_picture(pic_path, target_aspect(world))
        if mirror:
            wanted = wanted_view(world, picture)
            save_png(out / f"{kind}_{name}_wanted.png", np.where(mask[..., None], wanted, 0.5))
        else:
            free = {**world, "objects": []}
            wanted = render(free, plain_print(world, picture, args.resolution), args.spp, world_dir=world_dir)
            save_png(out / f"{kind}_{name}_wanted.png", wanted)
            t = time.perf_counter()
            again = render(free, plain_print(world, picture, args.resolution), args.spp, seed=1)
            rows.append({"kind": kind, "picture": name, "tag": "floor", "texture": "noise floor",
                         "metric": l1(again, wanted), "metric2": l1(again, wanted, silhouette), "make_s": None,
                         "render_s": time.perf_counter() - t})
        if not mirror:
            reach = np.clip(wanted, np.minimum(black, white), np.maximum(black, white))
            rows.append({"kind": kind, "picture": name, "tag": "bound", "texture": "bound (no print does better)",
                         "metric": l1(reach, wanted), "metric2": l1(reach, wanted, silhouette), "make_s": None,
                         "render_s": 0.0})
        candidates = []
        t = time.perf_counter()
        tex = exact_print(world, picture, args.resolution, args.rays)
        candidates.append(("exact", "exact trace", tex, time.perf_counter() - t))
        if mirror:
            t = time.perf_counter()
            rec = recipe_print(world, picture, args.resolution)
            if rec is not None:
                facts["r_out"] = rec[1]
                candidates.append(("recipe", "maker recipe", rec[0], time.perf_counter() - t))
        else:
            candidates.append(("plain", "plain print", plain_print(world, picture, args.resolution), None))
        project = args.project[pi] if args.project else None
        if args.apply:
            project, facts.setdefault("apply", {})[name] = run_apply(world, pic_path, args.resolution, out, kind, world_dir)
        if project:
            proj = np.asarray(Image.open(project).convert("RGB"))
            pw, ph = world["print"]["size"]
            if abs(proj.shape[1] / proj.shape[0] - pw / ph) > 0.01:
                print(f"warning: {project} is {proj.shape[1]}×{proj.shape[0]}, the print {pw}×{ph} mm")
            candidates.append(("project", "project", proj, None))
        for tag, label, tex, seconds in candidates:
            t = time.perf_counter()
            img = render(world, tex, args.spp, world_dir=world_dir)
            t_render = time.perf_counter() - t
            if mirror:
                m, m2 = mirror_metric(img, white, wanted, mask), mirror_metric(img, white, wanted, eroded)
            else:
                m, m2 = l1(img, wanted), l1(img, wanted, silhouette)
            save_png(out / f"{kind}_{name}_{tag}_print.png", small(tex))
            save_png(out / f"{kind}_{name}_{tag}_view.png", img)
            rows.append({"kind": kind, "picture": name, "tag": tag, "texture": label, "metric": m, "metric2": m2,
                         "make_s": seconds, "render_s": t_render})
            print(f"[{kind}] {name:10s} {label:13s} {m:.4f} ({m2:.4f})  make "
                  f"{'-' if seconds is None else f'{seconds:.1f}'} s, render {t_render:.1f} s", flush=True)
    facts["total_s"] = time.perf_counter() - t0
    return rows, facts


def world_json(world):
    """The world as JSON, one line per top-level field."""
    return "{\n" + ",\n".join(f' "{k}": {json.dumps(v)}' for k, v in world.items()) + "\n}\n"


def run_apply(world, picture, resolution, out, kind, world_dir=None):
    """Run the project's CLI on this world in a subprocess (the bench imports nothing from it) and time it; its
    mesh files are copied beside the world file. Returns (the texture it wrote or None, seconds)."""
    import shutil
    import subprocess
    with tempfile.TemporaryDirectory() as tmp:
        wpath = Path(tmp) / "world.json"
        wpath.write_text(world_json(world))
        for obj in world["objects"]:
            if obj["shape"] == "mesh":
                shutil.copyfile(Path(world_dir or ".") / obj["file"], Path(tmp) / Path(obj["file"]).name)
        cmd = [sys.executable, "-m", "predistort", "apply", "--scene", str(wpath), "--method", "solve",
               "--resolution", str(resolution), "--fit", "crop", "--texture", str(picture), "--out-dir", tmp]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        tex = Path(tmp) / "predistorted.png"
        if proc.returncode != 0 or not tex.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            print(f"[{kind}] the project's apply failed after {seconds:.0f} s: {tail[0]}")
            return None, f"failed after {seconds:.0f} s ({tail[0]})"
        keep = Path(tempfile.gettempdir()) / "predistort-bench-objects" / f"{kind}_{Path(picture).stem}_project.png"
        keep.parent.mkdir(exist_ok=True)                 # the full-size print: scored, not kept with the results
        keep.write_bytes(tex.read_bytes())
        print(f"[{kind}] the project's apply: {seconds:.0f} s")
        return str(keep), f"took {seconds:.0f} s"


def table(kind, rows, mirror):
    """The results of one kind, with the issue's bars ("Done when") for each row: a mirror's error ≤ 1.25 × the
    exact trace's + 0.005 and ≤ 0.25 × the recipe's; glass, error ratio against the plain print ≤ 0.40 over the
    frame and ≤ 0.45 over the silhouette (the issue's bar for the ellipsoid mesh)."""
    head = ("| picture | texture | mirror metric | eroded mask | ÷ exact trace | ÷ recipe | "
            "≤ 1.25 exact + 0.005, ≤ 0.25 recipe | make (s) | render (s) |"
            if mirror else
            "| picture | texture | L1 frame | L1 silhouette | ÷ exact trace (frame) | ÷ plain (frame, silhouette) "
            "| ≤ 0.40, ≤ 0.45 | make (s) | render (s) |")
    lines = [head, "|---" * 9 + "|"]
    base_tag = "recipe" if mirror else "plain"
    for r in rows:
        if r["kind"] != kind:
            continue
        same = {x["tag"]: x for x in rows if x["kind"] == kind and x["picture"] == r["picture"]}
        ex, base = same["exact"], same.get(base_tag)
        vs_base = "–" if base is None else (f"{r['metric'] / base['metric']:.2f}" if mirror else
                                            f"{r['metric'] / base['metric']:.2f}, {r['metric2'] / base['metric2']:.2f}")
        make = "–" if r["make_s"] is None else f"{r['make_s']:.1f}"
        yn = lambda ok: "yes" if ok else "no"                                        # noqa: E731
        if base is None:
            bar = "–"
        elif mirror:
            bar = (f"{yn(r['metric'] <= 1.25 * ex['metric'] + 0.005)}, {yn(r['metric'] <= 0.25 * base['metric'])}")
        else:
            bar = f"{yn(r['metric'] <= 0.40 * base['metric'])}, {yn(r['metric2'] <= 0.45 * base['metric2'])}"
        lines.append(f"| {r['picture']} | {r['texture']} | {r['metric']:.4f} | {r['metric2']:.4f} | "
                     f"{r['metric'] / ex['metric']:.2f} | {vs_base} | {bar} | {make} | {r['render_s']:.1f} |")
    return "\n".join(lines)


KINDS = {"cylinder": "a cylinder mirror", "cone": "a cone mirror", "sphere": "a mirror ball",
         "glass-sphere": "a glass ball before an upright print",
         "glass-ellipsoid": "a glass ellipsoid mesh (OBJ) before an upright print"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", nargs="+", default=["cylinder"], choices=list(KINDS),
                    help="the objects to run, in one run (default: cylinder)")
    ap.add_argument("--world", help="score this world JSON instead of the bench's own (its name is the kind)")
    ap.add_argument("--write-world", help="save the world (with its target card) as JSON here (one --kind)")
    ap.add_argument("--pictures", nargs="+", default=[str(REPO / f"examples/{p}.png")
                                                      for p in ("landscape", "shapes", "text")])
    ap.add_argument("--project", nargs="+", help="the project's textures, one per picture, same order (one kind)")
    ap.add_argument("--apply", action="store_true",
                    help="run `python -m predistort apply --scene WORLD --method solve --resolution R --fit crop` "
                         "per picture (a subprocess, timed) and score its predistorted.png as the project")
    ap.add_argument("--resolution", type=int, default=1024, help="print texels on its long side")
    ap.add_argument("--rays", type=int, default=8, help="exact trace: rays per pixel = rays²")
    ap.add_argument("--spp", type=int, default=128)
    ap.add_argument("--glass-distance", type=float, default=100.0,
                    help="glass kinds: the object's centre → the print, mm (the ellipsoid's horizontal focus is "
                         "near 100: see the results page)")
    ap.add_argument("--ellipsoid-radii", type=float, nargs=3, metavar=("X", "Y", "Z"),
                    help="glass-ellipsoid: its semi-axes in mm (default 50 32 38)")
    ap.add_argument("--fov", type=float, help="glass-ellipsoid: the camera's horizontal field, degrees (default 40)")
    ap.add_argument("--aim", type=float, nargs=3, metavar=("X", "Y", "Z"),
                    help="glass-ellipsoid: the point the camera looks at, mm (default the print's centre 0 0 0)")
    ap.add_argument("--film", type=int, nargs=2, help="film width height of the bench's worlds (default per kind)")
    ap.add_argument("--quick", action="store_true", help="quarter-size film, 32 spp, 512 print, 4² rays")
    ap.add_argument("--out", default=str(RESULTS / "objects"), help="folder for the pictures")
    ap.add_argument("--md", default=str(RESULTS / "objects.md"), help="the results page ('' for none)")
    args = ap.parse_args()
    if args.quick:
        args.spp, args.resolution, args.rays = 32, 512, 4
    if args.project and len(args.project) != len(args.pictures):
        raise SystemExit("--project: give one texture per picture (--pictures)")
    if (args.project or args.write_world or args.world) and len(args.kind) > 1:
        raise SystemExit("--project, --write-world and --world go with one --kind")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mesh_dir = tempfile.TemporaryDirectory(prefix="objects-mesh-")          # removed when the run ends

    t0 = time.perf_counter()
    rows, facts = [], {}
    for kind in args.kind:
        world_dir = None
        if args.world:
            world, world_dir = json.loads(Path(args.world).read_text()), Path(args.world).resolve().parent
            kind = Path(args.world).stem
        else:
            world = make_world(kind, args.film, args.quick, args.glass_distance, args.ellipsoid_radii, args.fov,
                               args.aim)
        meshes = [o_ for o_ in world["objects"] if "_bench_ellipsoid" in o_ and not args.world]
        for m in meshes:                            # the bench's own mesh: written beside no result, a temp folder
            world_dir = Path(mesh_dir.name)
            n_tri = write_ellipsoid_obj(world_dir / m["file"], **m["_bench_ellipsoid"])
            print(f"[{kind}] {m['file']}: {n_tri} triangles")
        world = with_target(world)
        if args.write_world:
            Path(args.write_world).write_text(world_json(world))
            for m in meshes:
                write_ellipsoid_obj(Path(args.write_world).resolve().parent / m["file"], **m["_bench_ellipsoid"])
            print(f"world written to {args.write_world}")
        r, facts[kind] = run_kind(kind, world, world_dir, args, out)
        rows += r
    total = time.perf_counter() - t0
    for kind in facts:
        print(f"\n{kind}\n" + table(kind, rows, "target" in facts[kind]["world"]))
    print(f"total {total:.0f} s")
    if args.md:
        write_md(Path(args.md), args, rows, facts, total)


def write_md(path, args, rows, facts, total):
    cmd = "python bench/objects.py " + " ".join(sys.argv[1:])
    rel = os.path.relpath(args.out, path.parent)
    parts = [f"""# Optical objects: the exact inverse trace, the maker recipe, the project (`bench/objects.py`)

`{cmd}`

{datetime.now():%Y-%m-%d %H:%M} UTC, {platform.machine()} with {os.cpu_count()} cores (shared with other work), Mitsuba
{mi.__version__} `llvm_ad_rgb`, {args.spp} spp (the same seed for every render), print textures of {args.resolution}
texels on the long side, exact trace with {args.rays}² rays per pixel. Total {total:.0f} s. The bench imports
nothing from `predistort`: its scenes, its tracer and its metric are its own (see the script's docstring).

Mirrors: the metric is issue 32's (item 4), mean |render ÷ render of an all-white print − the picture on the target
card| over the mirror's pixels whose reflection reaches the print; "eroded mask" leaves out the mask's edge pixels.
Glass: L1 against the object-free view (the plain picture on the print, the object removed, same spp and seed),
over the frame and over the object's silhouette; the plain print is the baseline. "noise floor" is the
object-free view rendered again with another seed, against the first: the part of every glass number that is
Monte Carlo noise (it is in the ratios too: they would be lower with noise-free renders).
The column of bars checks each row against issue 32's "Done when" (for glass, the ellipsoid's bar).
"make" is the bench's own numpy time for that texture; the project's texture comes ready-made (`--project`), its
time is not measured here."""]
    for kind, f in facts.items():
        mirror = "target" in f["world"]
        cam = f["world"]["camera"]
        parts.append(f"\n## {KINDS.get(kind, kind)} (`{kind}`)\n")
        parts.append(f"Film {cam['film'][0]}×{cam['film'][1]}. {f['object_pixels']} object pixels, "
                     f"{f['scored']} scored"
                     + (f" ({f['eroded']} in the eroded mask)" if mirror else " (the silhouette)")
                     + f". The bench's numpy tracer and Mitsuba's `ray_intersect` agree on {100 * f['agree']:.2f}% of"
                     f" the film's mask; the bench's pinhole camera and Mitsuba's differ by ≤ {f['cam_err']:.1e}°."
                     + ("" if f["r_out"] is None else f" The recipe's annulus runs from the cylinder's radius to "
                        f"R_out = {f['r_out']:.1f} mm, where the top front of the mirror reflects the print.")
                     + f" {f['total_s']:.0f} s for this kind."
                     + "".join(f" The project's apply {v} for {k}." for k, v in f.get("apply", {}).items())
                     + "\n")
        parts.append(table(kind, rows, mirror))
        parts.append(f"\n<details><summary>The world (<code>--write-world</code>)</summary>\n\n```json\n"
                     f"{world_json(f['world'])}```\n</details>\n")
        parts.append("The print (downscaled) and the view (the render, linear, clipped); *wanted* is "
                     + ("the picture on the target card, mirror pixels only (grey: not scored)." if mirror else
                        "the object-free view.") + "\n")
        for pic in dict.fromkeys(r["picture"] for r in rows if r["kind"] == kind):
            have = [r for r in rows if r["kind"] == kind and r["picture"] == pic and r["tag"] != "floor"]
            parts.append(f"**{pic}**, wanted: ![]({rel}/{kind}_{pic}_wanted.png)\n")
            parts.append("| " + " | ".join(r["texture"] for r in have) + " |\n|" + "---|" * len(have))
            parts.append("| " + " | ".join(f"![]({rel}/{kind}_{pic}_{r['tag']}_print.png)" for r in have) + " |")
            parts.append("| " + " | ".join(f"![]({rel}/{kind}_{pic}_{r['tag']}_view.png)" for r in have) + " |\n")
    path.write_text("\n".join(parts) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
