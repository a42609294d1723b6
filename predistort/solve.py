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

Film coarser than the texture. ``A`` is then W·H × R² with R² > W·H: many textures render the same. The
solve starts from the picture and every step moves the texture along ``D⁻¹Aᵀ r``, i.e. only along what the
film can see; the rest of the picture (the detail finer than a pixel) stays as it was. The target is then
the film's [H, W, 3] (:func:`predistort.target.target_for`) and the start, the picture [R, R, 3], must be
given.

Cost. Each iteration is two sparse products (``A·y``, ``Aᵀ·r``) over ~15 entries per pixel: memory-bound,
so it grows with R² and runs on :func:`predistort.backend.solver_threads`. The default schedule
(:func:`iterations_for`) is :data:`ITERATIONS` iterations up to :data:`FULL_ITERATIONS_UP_TO` pixels and
:data:`LARGE_ITERATIONS` above, where a 100-iteration solve would cost seconds (bench/scale.py measures
both against each other).

Which methods still apply after the scene changed: :func:`applies`.

The probe's names (:class:`Transport`, :func:`probe`; :func:`transport_for`, :func:`is_probed`,
:func:`cache_key`, :func:`cache_dir` of :mod:`predistort.probe_cache`) are importable from here too, as
before the probe had its own modules.
"""
import torch

from . import backend
from .probe import PROBE_VERSION, Transport, flatten, probe                    # noqa: F401  (importable here too)
from .probe_cache import cache_dir, cache_key, is_probed, transport_for       # noqa: F401

ITERATIONS = 100            # FISTA iterations of the instant solve up to FULL_ITERATIONS_UP_TO pixels
L2_ITERATIONS = 40          # of which the first minimise the squared error
HUBER_DELTA = 0.005         # then a Huber loss with this threshold (≈ L1 for residuals above 0.005)
FULL_ITERATIONS_UP_TO = 256  # above this side, the short schedule:
LARGE_ITERATIONS = 30       # ... iterations
LARGE_L2_ITERATIONS = 6     # ... of which on the squared error (fewer: the Huber steps matter more when few)


def iterations_for(resolution):
    """The instant solve's default ``(iterations, l2_iterations)`` at `resolution`: (100, 40) up to
    :data:`FULL_ITERATIONS_UP_TO` pixels, (30, 6) above — where each iteration costs 4–16× more and the
    larger picture already renders closer to the target (bench/scale.py measures both)."""
    if resolution <= FULL_ITERATIONS_UP_TO:
        return ITERATIONS, L2_ITERATIONS
    return LARGE_ITERATIONS, LARGE_L2_ITERATIONS


def momentum_schedule(iterations, l2_iterations):
    """FISTA's β_k = (t_k − 1) / t_{k+1}, restarting (β = 0) where the loss switches to Huber after
    `l2_iterations`: the momentum of :func:`fista`, as a list (the unrolled layer's initial momenta)."""
    betas, t = [], 1.0
    for k in range(iterations):
        if k == l2_iterations:
            t = 1.0
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        betas.append(0.0 if k == l2_iterations - 1 else (t - 1) / t_next)
        t = t_next
    return betas


def iterate(A, At_step, offset, x, steps, deltas, momenta):
    """The solver's loop on [R², k] textures (k = batch·3 columns; ``offset`` is [W·H, k]), shared by
    :func:`fista` and the unrolled layer's inference (:class:`predistort.layers.UnrolledInverse`). Iteration k::

        r  = clamp(A·y + offset, −δ_k, δ_k)           offset = b − target: r is the predicted render's error
        x' = clamp(y − s_k · D⁻¹Aᵀ r, 0, 1)           At_step = D⁻¹Aᵀ, the preconditioned transpose
        y  = x' + β_k (x' − x)                         momentum (a lerp from x to x' by 1 + β_k)

    ``steps``, ``deltas``, ``momenta``: s_k, δ_k (≥ 10: no clipping, the squared error), β_k. Each iteration
    is two fused sparse products and three passes over the vectors, in place. Returns the last x'.
    """
    x = x.clone()
    y, x_next = x.clone(), torch.empty_like(x)
    for step, delta, beta in zip(steps, deltas, momenta):
        r = torch.sparse.addmm(offset, A, y)
        if delta < 10:
            r.clamp_(-delta, delta)
        torch.clamp(torch.sparse.addmm(y, At_step, r, alpha=-step), 0, 1, out=x_next)
        torch.lerp(x, x_next, 1 + beta, out=y)
        x, x_next = x_next, x
    return x


def fista(transport, x, target, iterations, l2_iterations, delta):
    """Projected FISTA on [R², k] matrices (k = batch·3 columns): returns the improved x.

    Minimises ``Σ φ(A x + b − target)`` over ``0 ≤ x ≤ 1`` with φ the squared error for the first
    `l2_iterations`, then the Huber function with threshold `delta` (its gradient is the residual clipped
    to ±delta); momentum restarts when the loss changes. Step: ``transport.step`` per texel.
    """
    deltas = [10.0] * l2_iterations + [delta] * (iterations - l2_iterations)
    return iterate(transport.A, transport.At_step, transport.b[:, None] - target, x, [1.0] * iterations,
                   deltas[:iterations], momentum_schedule(iterations, l2_iterations))


@torch.no_grad()
def solve(target, transport, iterations=None, l2_iterations=None, delta=HUBER_DELTA, start=None):
    """The pre-distortion of `target` for the transport's scene: a texture [..., R, R, 3] in [0,1].

    Parameters: ``target`` the render to aim at, [..., H, W, 3] on the transport's film (for a film equal to
    the texture, the picture itself: [..., R, R, 3]); ``transport`` from
    :func:`predistort.probe_cache.transport_for`; ``iterations``, ``l2_iterations`` (default
    :func:`iterations_for` the film's larger side; with `iterations` given, :data:`L2_ITERATIONS`), ``delta``
    the schedule of :func:`fista`; ``start`` an initial texture [..., R, R, 3] (default: `target` itself,
    when the film is the texture's grid; required otherwise: the picture). Unseen texels, and the detail
    no pixel resolves, keep the start's values. No rendering.
    """
    res = transport.resolution
    width, height = transport.film_size
    if iterations is None:
        iterations, default_l2 = iterations_for(max(width, height))
        l2_iterations = default_l2 if l2_iterations is None else l2_iterations
    elif l2_iterations is None:
        l2_iterations = L2_ITERATIONS                       # as before iterations_for: the first 40
    t, _ = flatten(target, (height, width))
    if start is None and (width, height) != (res, res):
        raise ValueError(f"solve(): this scene's film ({width}×{height}) is not its texture's grid ({res}×{res}): "
                         f"pass the picture as start=")
    start = target if start is None else start
    x, unflatten = flatten(start, res)
    x = x.clamp(0, 1)
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
        if (getattr(thing, "resolution", config.resolution) != config.resolution
                or getattr(thing, "film_size", config.film_size) != config.film_size):
            return False, (f"This model maps {thing.resolution}×{thing.resolution} textures; the scene renders "
                           f"{config.resolution}×{config.resolution}. Use or train a model for that resolution.")
        made_for = (getattr(thing, "info", None) or {}).get("scene")
        kind = f"This {getattr(thing, 'model_type', '')} model".replace("  ", " ")
        fix = ("Re-probe and retrain it for this scene." if getattr(thing, "model_type", "") == "unrolled"
               else "Retrain it for this scene.")
        if not made_for:
            return True, f"{kind} records no scene; assuming it fits."
    current = config.to_dict()
    film = ("film_width", "film_height")                    # left out of a dict at the texture's square
    keys = [k for k in current if k in made_for] + [k for k in film if (k in current) != (k in made_for)]
    differ = [f"{k} {made_for.get(k, 'square')} → {current.get(k, 'square')}" for k in keys
              if made_for.get(k) != current.get(k)]
    if differ:
        return False, f"{kind} was made for another scene ({', '.join(differ)}). {fix}"
    return True, f"{kind} was made for this scene."


# ---------------------------------------------------------------------------------------------------------
# Any world: the solve over the pixels that show the target
# ---------------------------------------------------------------------------------------------------------
def rows_of(transport, pixels):
    """``(A_sub, b_sub)``: the rows of the transport's A and b for the film pixels where `pixels` [H, W] holds."""
    keep = pixels.reshape(-1)
    lengths = (transport.crow[1:] - transport.crow[:-1]).long()
    entries = torch.repeat_interleave(keep, lengths)
    crow = torch.zeros(int(keep.sum()) + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(lengths[keep], 0)
    A = torch.sparse_csr_tensor(crow.to(torch.int32), transport.col[entries], transport.val[entries],
                                (int(keep.sum()), transport.shape[1]))
    return A, transport.b[keep]


@torch.no_grad()
def solve_pixels(target, pixels, transport, start, iterations=None, l2_iterations=None, delta=HUBER_DELTA):
    """The texture [rows, cols, 3] whose predicted render is closest to `target` [H, W, 3] over the film
    pixels `pixels` [H, W] (bool) only: the rest of the film (a mirror world's direct view of the print, the
    sky) is not aimed at. `start` [rows, cols, 3]: the texture the solve starts from, which the texels no
    chosen pixel sees keep (white paper for a mirror, the plain print for glass). Same schedule and loss as
    :func:`solve`."""
    if not pixels.any():
        raise ValueError("No pixel of the film shows the target through the objects: aim the camera at them.")
    A, b = rows_of(transport, pixels)
    t = torch.as_tensor(target, dtype=torch.float32).reshape(-1, 3)[pixels.reshape(-1)]
    return solve_rows(A, b, t, start, transport.texture_shape, max(transport.film_size), iterations,
                      l2_iterations, delta)


def stack_rows(parts):
    """``(A, b, t)`` of several ``(A_i, b_i, t_i)`` (rows of transports of the same texture, and their targets)
    one above the other: one least-squares problem for all of them (the tolerance's views)."""
    crows, cols, vals, offset = [torch.zeros(1, dtype=torch.int64)], [], [], 0
    for A, _, _ in parts:
        crow = A.crow_indices().long()
        crows.append(crow[1:] + offset)
        cols.append(A.col_indices())
        vals.append(A.values())
        offset += int(crow[-1])
    rows = sum(A.shape[0] for A, _, _ in parts)
    A = torch.sparse_csr_tensor(torch.cat(crows).to(torch.int32), torch.cat(cols), torch.cat(vals),
                                (rows, parts[0][0].shape[1]))
    return A, torch.cat([b for _, b, _ in parts]), torch.cat([t for _, _, t in parts])


@torch.no_grad()
def solve_rows(A, b, t, start, texture_shape, film_side, iterations=None, l2_iterations=None, delta=HUBER_DELTA):
    """:func:`solve`'s projected FISTA on the rows ``A`` [P, texels], ``b`` [P], targets ``t`` [P, 3], from
    `start` [rows, cols, 3]; the schedule of :func:`iterations_for` `film_side` unless given."""
    from .probe import _transpose, majoriser_step, scale_rows
    if iterations is None:
        iterations, default_l2 = iterations_for(film_side)
        l2_iterations = default_l2 if l2_iterations is None else l2_iterations
    elif l2_iterations is None:
        l2_iterations = L2_ITERATIONS
    At = torch.sparse_csr_tensor(*_transpose(A.crow_indices(), A.col_indices(), A.values(), A.shape[1]),
                                 (A.shape[1], A.shape[0]))
    step = majoriser_step(A, At)
    x, unflatten = flatten(start, texture_shape)
    deltas = [10.0] * l2_iterations + [delta] * (iterations - l2_iterations)
    with backend.solver_threads():
        x = iterate(A, scale_rows(At, step), b[:, None] - t, x.clamp(0, 1), [1.0] * iterations,
                    deltas[:iterations], momentum_schedule(iterations, l2_iterations))
    return unflatten(x)
