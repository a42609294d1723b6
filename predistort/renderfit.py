"""Fit an object's place (and a glass object's IOR) by rendering the chart through it and comparing with the photo.

Used where no analytic model of the object's optics exists: a glass object of any shape
(:mod:`predistort.glassfit`) and a cone mirror's base (:mod:`predistort.mirrorfit`). With the camera already
fitted from the markers, :func:`fit_object`:

1. *The work film.* The photo averaged down (linear light, area) to :data:`WORK_WIDTH` pixels across at its
   aspect; the pixels compared are those where the photo departs from the chart seen without the object,
   averaged down and grown by :data:`GROW_PX` (the object's whole outline and what it shows).
2. *Render and compare.* The chart (resized to :data:`CHART_TEXELS` on its long side: its colour field is
   smooth) rendered by Mitsuba in the fitted setup with the object moved, :data:`SPP` samples a pixel, the same
   seed every time (the renders differ by the object's move, not by their noise); the photo's exposure a gain
   per colour (least squares); the error the mean |gain · render − photo| over the compared pixels.
3. *The search.* Nelder–Mead (``scipy.optimize``): the place first (along the print for an object standing
   on it, in all three directions for one held above it; a mesh with a way round about the print's normal
   also turned about it, :func:`turns`), then, for glass, the place and the IOR together.

Limits: a render a step (about 150 for glass, 60 for a mirror's place): a minute or two on two cores; the
object's size, and its orientation but for a mesh's turn about the print's normal, are held; the precision is bounded by the work film's pixels and the renders'
noise (measured by the callers' tests).
"""
import dataclasses

import cv2
import numpy as np
import torch

WORK_WIDTH = 128            # pixels across the film of the fit's renders
SPP = 16                    # samples a pixel of each render (one seed: the renders' noise does not move)
CHART_TEXELS = 512          # texels on the long side of the chart as rendered (the print's colour field is smooth)
GROW_PX = 2                 # the pixels compared: where the photo departs from the chart, grown by this many
STEP_MM, STEP_IOR = 3.0, 0.03   # Nelder–Mead's first steps
ON_PRINT_MM = 1.0           # an object whose lowest point is this close to the print stands on it
STEP_DEGREES = 5.0          # Nelder–Mead's first step of a mesh's turn
ROUND = 0.02                # a mesh whose extents across the print's normal differ by less is not turned


class NothingToCompare(ValueError):
    """The object hardly shows against the chart in the photo."""


def moved(solid, delta, ior=None, degrees=0.0, axis=None):
    """`solid` moved by `delta` [3] (world units): a sphere's ``center``, a mesh's ``offset``, a cylinder's or
    cone's ``base``; made of glass of `ior` when one is given (a mirror keeps its material); a mesh turned by
    `degrees` more about `axis` (through its centre) when they are given."""
    shift = lambda p: tuple(float(v) for v in np.add(p, delta))               # noqa: E731
    material = solid.material if ior is None else float(ior)
    if solid.shape == "sphere":
        return dataclasses.replace(solid, center=shift(solid.center), material=material)
    if solid.shape == "mesh":
        turn = solid.turn
        if axis is not None:
            turn = (*(float(v) for v in axis), float((turn[3] if turn else 0.0) + degrees))
        return dataclasses.replace(solid, offset=shift(solid.offset or (0.0, 0.0, 0.0)), material=material,
                                   turn=turn)
    return dataclasses.replace(solid, base=shift(solid.base), material=material)


def turns(solid, axis):
    """Whether turning `solid` (a mesh) about `axis` through its centre changes it: its extents across `axis`
    differ by more than :data:`ROUND` (an ellipsoid's do; a glass of water's do not), and it is not already
    turned about another axis."""
    if solid.shape != "mesh" or (solid.turn is not None and abs(abs(np.dot(
            np.asarray(solid.turn[:3]) / np.linalg.norm(solid.turn[:3]), axis)) - 1) > 1e-6):
        return False
    vertices = solid.mesh()[0]
    across = vertices - vertices.mean(0)
    across = across - np.outer(across @ axis, axis)
    spread = np.linalg.eigvalsh(across.T @ across / len(across))[1:]          # the two in the plane across axis
    return bool(np.sqrt(spread[1] / max(spread[0], 1e-12)) > 1 + ROUND)


def _work(scene, chart, photo, mask):
    """The work film's scene, chart, photo [h, w, 3] and compared pixels [h, w] (module doc, phase 1)."""
    width, height = photo.size
    film = (WORK_WIDTH, max(8, round(WORK_WIDTH * height / width)))
    work = scene.replace(film_width=film[0], film_height=film[1],
                         resolution=min(CHART_TEXELS, max(scene.texture_shape)))
    observed = cv2.resize(photo.linear_full, film, interpolation=cv2.INTER_AREA)
    region = cv2.resize(mask.astype(np.float32), film, interpolation=cv2.INTER_AREA) > 0.25
    region = cv2.dilate(region.astype(np.uint8), np.ones((2 * GROW_PX + 1,) * 2, np.uint8)).astype(bool)
    rows, cols = work.texture_shape
    small = cv2.resize(np.ascontiguousarray(chart), (cols, rows), interpolation=cv2.INTER_AREA)
    return work, small, observed, region


def fit_object(scene, solid, chart, photo, mask, progress=None, evaluations=(60, 90)):
    """``(fitted solid, error)``: `solid` moved (and, for a mesh whose shape has a way round about the print's
    normal, turned about it; for glass, its IOR) so that `scene` (the fitted camera) renders `chart` [rows,
    cols, 3] as the :class:`predistort.calibrate.Photo` `photo` looks where `mask` [H, W] (photo pixels) says
    the object shows (module doc). ``evaluations``: the renders at most of each stage. Raises
    :class:`NothingToCompare` when too few pixels are left to compare."""
    from scipy.optimize import minimize
    from .render import Renderer
    scene, chart, observed, region = _work(scene, chart, photo, mask)
    if region.sum() < 20:
        raise NothingToCompare("the object hardly shows against the chart")
    plane = scene.plane
    normal = np.cross(plane.right, plane.up)
    normal = normal / np.linalg.norm(normal)
    lowest = float(np.min((solid.points(96) - np.asarray(plane.center)) @ normal))
    axes = [np.asarray(plane.right), np.asarray(plane.up)] + ([] if abs(lowest) < ON_PRINT_MM / scene.units_mm
                                                              else [normal])
    axes = np.array(axes, np.float64)
    turning = turns(solid, normal)
    n = len(axes)
    texture = torch.from_numpy(chart)
    pick = torch.from_numpy(region)
    target = torch.from_numpy(observed.astype(np.float32))[pick]
    step = STEP_MM / scene.units_mm
    seen = {}

    def solid_at(x, ior):
        return moved(solid, x[:n] @ axes, ior, x[n] if turning else 0.0, normal if turning else None)

    def error(x, ior):
        key = (tuple(np.round(x, 6)), None if ior is None else round(ior, 6))
        if key not in seen:
            image = Renderer(scene.replace(objects=(solid_at(x, ior),))).render(texture, spp=SPP, seed=0).cpu()[pick]
            gain = (image * target).sum(0) / (image * image).sum(0).clamp_min(1e-9)
            seen[key] = float((image * gain - target).abs().mean())
            if progress:
                progress(len(seen), seen[key])
        return seen[key]

    steps = [step] * n + ([STEP_DEGREES] if turning else [])
    x0 = np.zeros(len(steps))
    ior0 = None if solid.mirror else float(solid.material)
    first = minimize(lambda x: error(x, ior0), x0, method="Nelder-Mead",
                     options=dict(initial_simplex=np.vstack([x0] + [x0 + d * e for d, e in zip(steps, np.eye(len(x0)))]),
                                  xatol=0.02 * step, fatol=1e-5, maxfev=evaluations[0]))
    if solid.mirror:
        return solid_at(first.x, None), float(first.fun)
    y0 = np.append(first.x, ior0)
    simplex = np.vstack([y0] + [y0 + np.append(d / 3 * e, 0) for d, e in zip(steps, np.eye(len(x0)))]
                        + [y0 + np.append(np.zeros(len(x0)), STEP_IOR)])
    second = minimize(lambda y: error(y[:-1], y[-1]), y0, method="Nelder-Mead",
                      options=dict(initial_simplex=simplex, xatol=0.005 * step, fatol=1e-6, maxfev=evaluations[1]))
    return solid_at(second.x[:-1], second.x[-1]), float(second.fun)
