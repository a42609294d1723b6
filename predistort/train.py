"""Training: the tutorial's optimisation loop, for any pre-distortion model.

Each iteration (the tutorial's recipe: Adam, lr 2e-4, L1 loss, spp 4, render seed ``i·N + j``):

1. *Model.* All N textures go through the model in one batched forward pass.
2. *Render and back-propagate, one texture at a time.* Texture j's pre-distorted version is rendered with
   seed ``i·N + j`` and compared with texture j itself; the loss is back-propagated through the renderer to
   the model's output **while that texture is still in the scene** (``prb`` replays light paths against the
   scene as it is during backward, so renders cannot be batched before one backward pass).
3. *Model backward and step.* The N output gradients go back through the model in one pass, so each
   weight gradient is formed once per iteration; a fused Adam steps.

The gradient is exactly the tutorial's (its per-texture ``loss.backward()`` sums the same terms); only the
model's own work is batched. The reported loss is the sum over textures, as the tutorial prints it.

Cost, for the tutorial's layer at 128×128 (268 M weights, 1.07 GB each for the weights, their gradient and
Adam's two moments: 4.3 GB that any Adam training of this layer must hold). The tutorial's code multiplies
one channel of one texture at a time (12 matrix-vector products forward, 12 rank-1 gradients of 1.07 GB
each accumulated backward) and steps a non-fused Adam, which allocates weight-sized temporaries. Here
the forward pass is one ``[N·3, R²] @ [R², R²]ᵀ`` product, the backward pass writes the weight gradient
once (into a fresh buffer: gradients are set to None, not zeroed, so nothing is accumulated), and
``Adam(fused=True)`` updates weights and moments in place in one sweep. ``python bench/tutorial.py`` times
both side by side (same losses; the README has the speed and memory).
"""
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .target import is_on_axis_framing, target_for


@dataclass
class Recipe:
    """How a model is trained; saved with the weights."""
    iterations: int = 100        # optimisation steps, each over all textures
    spp: int = 4                 # samples per pixel of training renders (noisy but unbiased gradients)
    lr: float = 2e-4             # Adam learning rate
    seed: int = 0                # torch seed for the model's initial weights (set by the caller before building it)
    loss: str = "l1"             # mean absolute error between render and target

    def to_dict(self):
        return asdict(self)


def adam(params, lr):
    """``torch.optim.Adam(params, lr)`` with ``fused=True`` where torch supports it (float tensors on CPU or
    CUDA), else the default implementation.

    Same update, to rounding, as the default (which on CPU loops over tensors and allocates temporaries the
    size of each one); the fused kernel reads and writes each weight, gradient and moment once, in place.
    """
    params = list(params)
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def train(model, renderer, textures, recipe=Recipe(), callback=None, stop=None, optimizer=None):
    """Train `model` so that ``renderer.render(model(t)) ≈ t`` for every texture `t`; return the loss history.

    Parameters:
        model      a PredistortModel (any type), on ``renderer.device``
        renderer   a predistort.render.Renderer whose resolution matches the textures
        textures   list of [R,R,3] tensors in [0,1] (the targets, and the model's inputs)
        recipe     Recipe (iterations, spp, lr, loss); ``recipe.seed`` is recorded, not applied here
        callback   called after every iteration as ``callback(iteration, loss, elapsed_seconds)``
        stop       a threading.Event (or any callable returning bool) checked between iterations: when set,
                   training ends after the current iteration and keeps what it learned
        optimizer  default: the model's own ``model.optimizer(recipe.lr)`` where it has one (the unrolled layer
                   trains only its per-layer scalars), else :func:`adam` over all parameters, fused
    Returns: list of ``{"iteration", "loss", "seconds"}`` (loss summed over textures; seconds since start).
    Same model weights + same textures + same recipe give the same history: every render seed is fixed.
    """
    if not textures:
        raise ValueError("Training needs at least one texture.")
    if recipe.loss != "l1":
        raise ValueError(f"Unknown loss {recipe.loss!r}; only 'l1' is implemented.")
    targets = torch.stack([t.to(renderer.device, torch.float32) for t in textures])        # [N,R,R,3]
    # What each render is scored against: the picture itself, or its ball-free view on the scene's film.
    goals = targets if is_on_axis_framing(renderer.config) else \
        torch.stack([target_for(t, renderer.config) for t in textures]).to(renderer.device)
    n = len(textures)
    if optimizer is None:
        own = getattr(model, "optimizer", None)
        optimizer = own(recipe.lr) if callable(own) else adam(model.parameters(), lr=recipe.lr)
    should_stop = stop.is_set if hasattr(stop, "is_set") else (stop or (lambda: False))

    history, start = [], time.perf_counter()
    model.train()
    try:
        for i in range(recipe.iterations):
            # None, not zeros: the backward pass then writes each gradient straight into a new buffer
            # instead of adding a freshly computed one to a zeroed one (one pass and one buffer fewer).
            optimizer.zero_grad(set_to_none=True)
            out = model(targets)                                                   # 1. batched forward
            grads, loss_sum = torch.empty_like(out), 0.0
            for j in range(n):                                                     # 2. per-texture render + backward
                loss, grads[j] = renderer.loss_and_grad(out[j].detach(), goals[j], spp=recipe.spp,
                                                        seed=i * n + j, loss_fn=F.l1_loss)
                loss_sum += loss
            out.backward(grads)                                                    # 3. batched model backward
            del out, grads                       # free the graph's saved tensors before Adam's sweep
            optimizer.step()
            elapsed = time.perf_counter() - start
            history.append({"iteration": i + 1, "loss": loss_sum, "seconds": elapsed})
            if callback is not None:
                callback(i + 1, loss_sum, elapsed)
            if should_stop():
                break
    finally:
        model.eval()
    return history


def save_history(history, folder, title="Training loss"):
    """Write history.json (per iteration: loss and seconds) and loss_curve.png into `folder`."""
    import json
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot([h["iteration"] for h in history], [h["loss"] for h in history], color="#c0392b")
    ax.set(xlabel="iteration", ylabel="L1 loss (sum over textures)", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "loss_curve.png")
    plt.close(fig)
