"""Per-texture refinement: optimise one visitor's texture through the real renderer, within a time budget.

The generalising layer and the instant solve both rely on the measured light transport ``A`` (see
:mod:`predistort.solve`); refinement does not. It starts from their answer and improves the texels
themselves against the renderer (``Renderer.loss_and_grad``: a render at ``spp`` samples per pixel and its
backward pass through ``dr.wrap``), with Adam, clamping to [0,1] after each step — the per-texture
optimisation the tutorial's layer approximates, started close to its optimum instead of from scratch.

Never worse than its start. Each step's gradient is noisy (a few samples per pixel), so a step can make
things worse. Every ``eval_every`` steps, and at the end, the current texture is scored by a render with
one fixed seed (``eval_seed``, ``eval_spp`` samples): the same light paths for every candidate, so two
scores differ by their textures, not by noise. The best-scoring texture is returned, and the start is the
first candidate. The fixed seed is chosen far from training and benchmark seeds.

Gains on one seed. Near the optimum (the instant solve's answer, say) a candidate can beat the start on
the fixed seed and still be worse in truth: it has fitted that seed's noise (``bench/refine_settings.py``
measures it; the README has the figures). So a candidate replaces the best only when it scores at least
``min_gain`` (1%) lower; the optimisation itself goes on from the latest texture either way, so gains
that build up over several scores are still taken.

Budget. ``seconds`` bounds the wall time, scoring included: a step is only taken when the time measured
for a step and a final score still fits. ``steps`` bounds the optimisation steps instead (or as well): the
same work on any machine, however busy, which is what the tests and the benchmarks' quick modes ask for.
``stop`` (a threading.Event or a callable) ends early, still returning the best texture so far.
"""
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

EVAL_SEED = 7_340_033          # fixed seed of the scoring renders (not used by training or the benchmark)
EVAL_SPP = 64                  # samples per pixel of a scoring render
SPP = 4                        # samples per pixel of each optimisation step (the tutorial's)
LR = 0.003                     # Adam step on texel values in [0,1]
EVAL_EVERY = 8                 # optimisation steps between scores
MIN_GAIN = 0.01                # relative score gain a candidate needs to replace the best (noise margin)


@dataclass
class Refined:
    """The outcome of :func:`refine`.

    ``texture`` the best texture found [R,R,3] (on the target's device); ``start_loss`` and ``loss`` its
    start's and its own fixed-seed L1 (``loss ≤ start_loss``); ``steps`` optimisation steps taken;
    ``seconds`` wall time; ``history`` one ``{"step", "seconds", "loss"}`` per score.
    """
    texture: torch.Tensor
    start_loss: float
    loss: float
    steps: int
    seconds: float
    history: list = field(default_factory=list)


def score(renderer, texture, target, spp=EVAL_SPP, seed=EVAL_SEED):
    """L1 between `target` and the render of `texture` with a fixed seed (comparable across textures)."""
    with torch.no_grad():
        return F.l1_loss(renderer.render(texture, spp=spp, seed=seed), target.to(renderer.device)).item()


def refine(renderer, target, start=None, seconds=20.0, stop=None, spp=SPP, lr=LR, eval_spp=EVAL_SPP,
           eval_seed=EVAL_SEED, eval_every=EVAL_EVERY, min_gain=MIN_GAIN, callback=None, steps=None):
    """Improve `start` (default: `target` itself) so that its render looks more like `target`.

    Parameters:
        renderer    a :class:`predistort.render.Renderer` of the scene
        target      [R,R,3] the picture the viewer should see
        start       [R,R,3] the initial texture, e.g. the generalising layer's or the instant solve's output
        seconds     wall-time budget, scoring included (the first score is always taken; None: no limit)
        steps       at most this many optimisation steps (None: as many as `seconds` allows)
        stop        threading.Event or callable returning True to end early
        spp, lr     samples per pixel and Adam learning rate of the optimisation steps
        eval_spp, eval_seed, eval_every   how and how often candidates are scored
        min_gain    relative score gain a candidate needs to replace the best (0: any gain)
        callback    called after every score as ``callback(step, loss, elapsed_seconds)``
    Returns a :class:`Refined`; its texture never scores worse than `start`.
    """
    if seconds is None and steps is None and stop is None:
        raise ValueError("refine() needs a budget: seconds, steps or stop")
    begin = time.perf_counter()
    should_stop = stop.is_set if hasattr(stop, "is_set") else (stop or (lambda: False))
    target = target.to(renderer.device, torch.float32)
    x = (target if start is None else start.to(renderer.device, torch.float32)).clamp(0, 1).clone()

    t0 = time.perf_counter()
    start_loss = best_loss = score(renderer, x, target, eval_spp, eval_seed)
    score_seconds = time.perf_counter() - t0
    best, history, step, step_seconds = x.clone(), [], 0, 0.0
    history.append({"step": 0, "seconds": time.perf_counter() - begin, "loss": start_loss})
    if callback is not None:
        callback(0, start_loss, history[-1]["seconds"])

    x.requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    while not should_stop() and (steps is None or step < steps):
        elapsed = time.perf_counter() - begin
        if seconds is not None and elapsed + step_seconds + score_seconds > seconds:   # time for the final score
            break
        t0 = time.perf_counter()
        _, grad = renderer.loss_and_grad(x.detach(), target, spp=spp, seed=step)
        x.grad = grad
        optimizer.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        step += 1
        step_seconds = max(step_seconds * 0.8, time.perf_counter() - t0)    # a cautious running estimate
        if step % eval_every == 0:
            best, best_loss = _keep_best(renderer, x, target, best, best_loss, eval_spp, eval_seed, min_gain,
                                         step, begin, history, callback)
    if step % eval_every:                                        # score the last steps too
        best, best_loss = _keep_best(renderer, x, target, best, best_loss, eval_spp, eval_seed, min_gain, step,
                                     begin, history, callback)
    return Refined(best.detach(), start_loss, best_loss, step, time.perf_counter() - begin, history)


def _keep_best(renderer, x, target, best, best_loss, eval_spp, eval_seed, min_gain, step, begin, history,
               callback):
    """Score `x`; return it as the new best if it beats `best_loss` by the relative margin `min_gain`, else
    the old best."""
    loss = score(renderer, x.detach(), target, eval_spp, eval_seed)
    history.append({"step": step, "seconds": time.perf_counter() - begin, "loss": loss})
    if callback is not None:
        callback(step, loss, history[-1]["seconds"])
    if loss < best_loss * (1 - min_gain):
        return x.detach().clone(), loss
    return best, best_loss
