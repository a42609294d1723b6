"""One print for where the camera really stands, in any world; where you may stand; where no print can help.

*Views* (:func:`views`). A camera placed by hand is off by a few millimetres. The views are the nominal camera
and the camera moved by ±T mm along each of the world's axes, its aim moved with it (a translation).

*The robust solve* (:func:`robust_solve`). Each view has its own light transport (probed once, cached) and its
own target (the picture as that camera should see it, :func:`predistort.target.world_target`). The rows of
every view's transport that should show the picture (a mirror: its pixels that see the print; glass: the
target's) are stacked one above the other (:func:`predistort.solve.stack_rows`) and solved at once: one print
whose summed error over the views is least. For a mirror each view aims at its picture × its predicted white
render, as the single solve does (:mod:`predistort.worldsolve`).

*Where you may stand* (:func:`stand_map`). A print's predicted score (a mirror: the reflectance error in the
mirror; glass: the error ratio against the picture printed plain) at camera offsets on a grid over x and y,
no render.

*Where no print can help* (:func:`correctability`). The per-pixel error that the solve leaves, averaged over
the project's procedural pictures: where the objects send many pixels to the same few texels of the print.

Limits: the camera moves by translation only (not the objects, not the print); each view costs one probe.
"""
import numpy as np
import torch

from .probe_cache import transport_for
from .solve import rows_of, solve_rows, stack_rows
from .worldaim import aim, error_map, fill_between, instant, predicted_score, seen_texels

NOMINAL_WEIGHT = 1.0


def moved(config, offset_mm):
    """`config` with its camera (origin and aim) translated by `offset_mm` (x, y, z millimetres)."""
    d = np.asarray(offset_mm, np.float64) / config.units_mm
    return config.replace(camera_origin=tuple(float(v) for v in np.add(config.camera_origin, d)),
                          camera_target=tuple(float(v) for v in np.add(config.camera_target, d)))


def views(tolerance_mm):
    """The camera offsets (mm) that stand for a box of ±`tolerance_mm`: the nominal and ± each axis."""
    out = [(0.0, 0.0, 0.0)]
    if tolerance_mm:
        out += [tuple(s * tolerance_mm * (axis == i) for i in range(3)) for axis in range(3) for s in (-1, 1)]
    return out


def _view_rows(picture, config, fit):
    """``(A, b, t, aim, transport)`` of one view: the rows that should show the picture, what they should show
    (:func:`predistort.worldaim.aim`)."""
    transport = transport_for(config)
    goal = aim(picture, config, transport, fit)
    if not goal.pixels.any():
        raise ValueError("From one of the camera's places in the tolerance box no pixel shows the picture: make "
                         "the tolerance smaller.")
    A, b = rows_of(transport, goal.pixels)
    return A, b, goal.goal.reshape(-1, 3)[goal.pixels.reshape(-1)], goal, transport


@torch.no_grad()
def robust_solve(picture, config, tolerance_mm, fit="crop"):
    """One print [rows, cols, 3] for the camera anywhere within ±`tolerance_mm` of its place (module doc)."""
    parts, nominal, transport = [], None, None
    for offset in views(tolerance_mm):
        A, b, t, goal, tr = _view_rows(picture, moved(config, offset), fit)
        parts.append((A, b, t))
        if nominal is None:
            nominal, transport = goal, tr
    A, b, t = stack_rows(parts)
    texture = solve_rows(A, b, t, nominal.start, transport.texture_shape, max(transport.film_size))
    return fill_between(texture, seen_texels(transport, nominal.pixels))


def score(texture, picture, config, fit="crop"):
    """The predicted score of `texture` for `picture` from `config`'s camera (lower is better):
    :func:`predistort.worldaim.predicted_score`."""
    transport = transport_for(config)
    return predicted_score(texture, aim(picture, config, transport, fit), transport)


def stand_map(texture, picture, config, box_mm=3.0, points=3, fit="crop"):
    """``(offsets_mm, scores [points, points])``: :func:`score` with the camera moved over a grid of x and y
    offsets within ±`box_mm` (row: y, column: x)."""
    offsets = np.linspace(-box_mm, box_mm, points)
    scores = np.array([[score(texture, picture, moved(config, (x, y, 0.0)), fit) for x in offsets]
                       for y in offsets])
    return offsets.tolist(), scores


def stand_table(offsets, scores):
    """The stand map as a Markdown table: the predicted score with the camera moved by x (columns) and y (rows)."""
    head = "| camera moved (mm) | " + " | ".join(f"x {x:+g}" for x in offsets) + " |\n"
    rule = "|---|" + "---:|" * len(offsets) + "\n"
    rows = "".join(f"| y {y:+g} | " + " | ".join(f"{v:.3f}" for v in line) + " |\n" for y, line in zip(offsets, scores))
    return head + rule + rows


def correctability(config, pictures):
    """``(error [H, W], sentence)``: the per-pixel error the solve leaves, the mean over `pictures` and colours,
    0 where no pixel shows a picture; and one sentence on the share of pixels it cannot correct."""
    transport = transport_for(config)
    errors = []
    for picture in pictures:
        goal = aim(picture, config, transport)
        errors.append(error_map(instant(goal, transport), goal, transport))
    error = torch.stack(errors).mean(0).numpy()
    shown = error[error > 0]
    bad = float((shown > 0.1).mean()) if shown.size else 0.0
    sentence = (f"{bad:.0%} of the pixels that show the picture keep an error above 0.1 whatever is printed: "
                + ("move the camera or the object so that it sees a larger area of the print." if bad > 0.05
                   else "a print can correct almost all of the view."))
    return error, sentence
