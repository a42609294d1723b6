"""Instant pre-distortion: solve for a picture on the scene's measured light transport, without rendering.

For a fixed scene the render is linear in the texture, ``render(T) = A·T + b`` (:mod:`predistort.probe`
measures ``A`` and ``b`` once per scene). The best pre-distortion of a picture ``P`` is then the texture
in [0,1] that this scene renders closest to ``P``::

    T* = argmin_{0 ≤ T ≤ 1}  | A·T + b − P |

Solving (:func:`solve`). Projected FISTA with a diagonal majoriser: ``D = Aᵀ A 1`` bounds ``AᵀA`` from above
(A ≥ 0), so the step ``T ← clamp(T − (Aᵀ r) / D, 0, 1)`` never overshoots, and it adapts to each texel —
a magnified texel, seen by many pixels, moves gently; a compressed one boldly. The first iterations
minimise the squared error (fast progress), the rest a Huber loss with a small threshold (close to L1, the
metric that is reported). Texels that no pixel sees (``D = 0``) keep the picture's own value.

Cost. Each iteration is two sparse products (``A·y``, ``Aᵀ·r``) over ~15 entries per pixel: memory-bound,
so it grows with R² and runs on :func:`predistort.backend.solver_threads`. The default number of
iterations (:func:`iterations_for`) is :data:`ITERATIONS` up to :data:`FULL_ITERATIONS_UP_TO` pixels and
fewer above, where the picture has more pixels than the 100 iterations need to converge on what the eye
sees (bench/scale.py measures the trade).

Which methods still apply after the scene changed: :func:`applies`.

The probe's names (:class:`Transport`, :func:`probe`, :func:`transport_for`, :func:`is_probed`,
:func:`cache_key`, :func:`cache_dir`) are importable from here too, as before the probe had its own module.
"""
import torch

from . import backend
from .probe import (PROBE_VERSION, Transport, cache_dir, cache_key, flatten, is_probed, probe,  # noqa: F401
                    transport_for)

ITERATIONS = 100            # FISTA iterations of the instant solve at up to FULL_ITERATIONS_UP_TO pixels
L2_ITERATIONS = 40          # of which the first minimise the squared error (the same 2/5 at every size)
HUBER_DELTA = 0.005         # then a Huber loss with this threshold (≈ L1 for residuals above 0.005)
FULL_ITERATIONS_UP_TO = 256  # above this side, fewer iterations (iterations_for)
LARGE_ITERATIONS = 30       # ... this many at 512² and beyond


def iterations_for(resolution):
    """The instant solve's default ``(iterations, l2_iterations)`` at `resolution`: the full schedule up to
    :data:`FULL_ITERATIONS_UP_TO`, :data:`LARGE_ITERATIONS` from twice that, in between interpolated."""
    if resolution <= FULL_ITERATIONS_UP_TO:
        total = ITERATIONS
    elif resolution >= 2 * FULL_ITERATIONS_UP_TO:
        total = LARGE_ITERATIONS
    else:
        f = (resolution - FULL_ITERATIONS_UP_TO) / FULL_ITERATIONS_UP_TO
        total = round(ITERATIONS + f * (LARGE_ITERATIONS - ITERATIONS))
    return total, round(total * L2_ITERATIONS / ITERATIONS)


def fista(transport, x, target, iterations, l2_iterations, delta):
    """Projected FISTA on [R², k] matrices (k = batch·3 columns): returns the improved x.

    Minimises ``Σ φ(A x + b − target)`` over ``0 ≤ x ≤ 1`` with φ the squared error for the first
    `l2_iterations`, then the Huber function with threshold `delta` (its gradient is the residual clipped
    to ±delta); momentum restarts when the loss changes. Step: ``transport.step`` per texel.
    The updates are done in place: one buffer per vector, whatever the number of iterations.
    """
    A, At, step = transport.A, transport.At, transport.step
    offset = transport.b[:, None] - target                  # r = A y + b − target = A y + offset
    x = x.clone()
    y, x_next, t = x.clone(), torch.empty_like(x), 1.0
    for i in range(iterations):
        if i == l2_iterations:
            y.copy_(x)                                      # restart momentum for the new loss
            t = 1.0
        r = (A @ y).add_(offset)
        if i >= l2_iterations:
            r.clamp_(-delta, delta)
        g = (At @ r).mul_(step)
        torch.sub(y, g, out=x_next).clamp_(0, 1)
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        # y = x_next + β (x_next − x), written into y
        torch.sub(x_next, x, out=y).mul_((t - 1) / t_next).add_(x_next)
        x, x_next, t = x_next, x, t_next
    return x


@torch.no_grad()
def solve(target, transport, iterations=None, l2_iterations=None, delta=HUBER_DELTA, start=None):
    """The pre-distortion of `target` [..., R, R, 3] for the transport's scene: a texture in [0,1], same shape.

    Parameters: ``transport`` from :func:`predistort.probe.transport_for` (same resolution as `target`);
    ``iterations``, ``l2_iterations`` (default :func:`iterations_for` the resolution; with `iterations`
    given, :data:`L2_ITERATIONS`), ``delta`` the schedule of :func:`fista`; ``start`` an initial texture (default: `target` itself, which is also what
    unseen texels keep). No rendering.
    """
    res = transport.resolution
    if iterations is None:
        iterations, default_l2 = iterations_for(res)
        l2_iterations = default_l2 if l2_iterations is None else l2_iterations
    elif l2_iterations is None:
        l2_iterations = L2_ITERATIONS                       # as before iterations_for: the first 40
    t, unflatten = flatten(target, res)
    x = t.clone() if start is None else flatten(start, res)[0].clamp(0, 1)
    with backend.solver_threads():
        x = fista(transport, x, t, iterations, l2_iterations, delta)
    return unflatten(x)


# ---------------------------------------------------------------------------------------------------------
# Which methods still apply after the scene changed
# ---------------------------------------------------------------------------------------------------------
def applies(thing, config):
    """Whether `thing` — a model (any PredistortModel) or a :class:`Transport` — fits scene `config`.

    Returns ``(ok, reason)``: ``reason`` says in one sentence what differs and what to do. A model fits when
    it maps textures of the scene's resolution and was made for the same geometry (its ``info['scene']``;
    a model that records no scene is assumed to fit). A transport fits only its own scene. Refinement
    (:mod:`predistort.refine`) renders the scene itself and so always applies. (A generalising layer made
    at another resolution is rebuilt for this one by :func:`predistort.layers.for_resolution`.)
    """
    if isinstance(thing, Transport):
        made_for = thing.config.to_dict()
        kind = "The measured light transport"
        fix = "Probe the new scene (a few seconds)."
    else:
        if getattr(thing, "resolution", config.resolution) != config.resolution:
            return False, (f"This model maps {thing.resolution}×{thing.resolution} textures; the scene renders "
                           f"{config.resolution}×{config.resolution}. Use or train a model for that resolution.")
        made_for = (getattr(thing, "info", None) or {}).get("scene")
        kind = f"This {getattr(thing, 'model_type', '')} model".replace("  ", " ")
        fix = ("Re-probe and retrain it for this scene." if getattr(thing, "model_type", "") == "unrolled"
               else "Retrain it for this scene.")
        if not made_for:
            return True, f"{kind} records no scene; assuming it fits."
    current = config.to_dict()
    differ = [f"{k} {made_for[k]} → {current[k]}" for k in current if k in made_for and made_for[k] != current[k]]
    if differ:
        return False, f"{kind} was made for another scene ({', '.join(differ)}). {fix}"
    return True, f"{kind} was made for this scene."
