"""Pre-distort a picture and show what it does: apply a model → refine (optional) → render before and after.

The question a user asks is "does it look more like my picture through the sphere?". So every result is
judged the same way: render the scene with the plain texture (what you would see without pre-distortion)
and with the pre-distorted one, and measure both renders against the target (L1: mean absolute error,
lower is better; PSNR in dB, higher is better). The target is :func:`predistort.target.target_for`: the
picture itself for the on-axis framing with film = texture (every scene before films and off-axis
cameras), else the picture's ball-free view on the film. Evaluation renders use many samples per pixel so
that Monte Carlo noise does not blur the comparison.
"""
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .images import l1, psnr, save_png, side_by_side
from .target import is_on_axis_framing, target_for

EVAL_SPP = 256            # samples per pixel of evaluation renders (noise std ~ 1/16 of spp-1 noise)


@torch.no_grad()
def apply_model(model, texture):
    """The model's pre-distortion of one texture [R,R,3] (no gradients, values in [0,1])."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else texture.device
    return model(texture.to(device, torch.float32)).clamp(0, 1)


@dataclass
class Comparison:
    """One texture's before/after: the images (CPU tensors; textures [R,R,3], renders [H,W,3]) and metrics."""
    target: torch.Tensor          # the picture, as used (the texture the viewer should see)
    initial: torch.Tensor         # render of the plain texture: the distortion to undo
    predistorted: torch.Tensor    # the texture actually put on the plane
    final: torch.Tensor           # render of the pre-distorted texture
    metrics: dict = field(default_factory=dict)
    goal: torch.Tensor = None     # what the renders are scored against (default: `target`; see the module doc)

    def __post_init__(self):
        if self.goal is None:
            self.goal = self.target

    def figure(self, scale=2):
        """The side-by-side comparison: initial render, input, pre-distorted, final render, target."""
        m = self.metrics
        return side_by_side(
            [self.initial, self.target, self.predistorted, self.final, self.goal],
            ["Initial render", "Input texture", "Pre-distorted texture", "Final render", "Target"],
            [f"L1 {m['l1_initial']:.4f} · PSNR {m['psnr_initial']:.1f} dB", "", "",
             f"L1 {m['l1_final']:.4f} · PSNR {m['psnr_final']:.1f} dB", ""], scale=scale)

    def save(self, out_dir):
        """Write predistorted.png, texture.png (the picture as used), render_initial.png, render_final.png,
        comparison.png, metrics.json; target.png too when the renders were scored against another image than
        the picture (the ball-free view)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_png(self.predistorted, out / "predistorted.png")
        save_png(self.target, out / "texture.png")
        save_png(self.initial, out / "render_initial.png")
        save_png(self.final, out / "render_final.png")
        if self.goal is not self.target:
            save_png(self.goal, out / "target.png")
        self.figure().save(out / "comparison.png")
        (out / "metrics.json").write_text(json.dumps(self.metrics, indent=2) + "\n")
        return out


def compare(renderer, target, predistorted, spp=EVAL_SPP, seed=0):
    """Render the picture `target` and `predistorted` with the same samples and measure both against the
    scene's target for the picture (:func:`predistort.target.target_for`; ``metrics['target']`` says which)."""
    initial = renderer.render(target, spp=spp, seed=seed).cpu()
    final = renderer.render(predistorted, spp=spp, seed=seed).cpu()
    target, predistorted = target.cpu(), predistorted.detach().cpu()
    classic = is_on_axis_framing(renderer.config)
    goal = target if classic else target_for(target, renderer.config)
    metrics = {"l1_initial": l1(initial, goal), "psnr_initial": psnr(initial, goal),
               "l1_final": l1(final, goal), "psnr_final": psnr(final, goal), "spp": spp,
               "target": "picture" if classic else "ball-free view"}
    metrics["l1_ratio"] = metrics["l1_final"] / max(metrics["l1_initial"], 1e-12)
    return Comparison(target, initial, predistorted, final, metrics, goal=goal)


def predistort(renderer, texture, model, spp=EVAL_SPP, seed=0, refine=0.0, stop=None, progress=None):
    """Pre-distort `texture` [R,R,3] for the renderer's scene and compare renders: returns a :class:`Comparison`.

    The one path that the CLI (``apply``), the app's session and the start-up warm-up all take:

    1. apply ``model`` (any PredistortModel made for this scene; the instant solve is one too, see
       :func:`predistort.layers.instant_model`);
    2. if ``refine`` > 0, refine its answer through the renderer for up to that many seconds
       (:func:`predistort.refine.refine`: kept only where a fixed-seed render improves by
       :data:`~predistort.refine.MIN_GAIN`, so never worse than the model's); ``stop`` ends it early and
       ``progress(step, loss, elapsed_s)`` hears of every score;
    3. render the picture and the pre-distorted texture with the same `seed` at `spp` and measure both
       (:func:`compare`). ``metrics['apply_seconds']`` is step 1's time; ``metrics['refine']`` says what
       refinement did.
    """
    start = time.perf_counter()
    predistorted = apply_model(model, texture)
    apply_seconds = time.perf_counter() - start
    refined = None
    if refine > 0:
        from .refine import EVAL_SPP as REFINE_EVAL_SPP, refine as refine_texture
        r = refine_texture(renderer, target_for(texture, renderer.config), predistorted, seconds=refine,
                           stop=stop, callback=progress)
        predistorted = r.texture
        refined = {"seconds": round(r.seconds, 2), "steps": r.steps, "l1_start": r.start_loss, "l1": r.loss,
                   "eval_spp": REFINE_EVAL_SPP, "eval": f"fixed-seed renders at spp {REFINE_EVAL_SPP}"}
    result = compare(renderer, texture, predistorted, spp=spp, seed=seed)
    result.metrics["apply_seconds"] = round(apply_seconds, 4)
    if refined:
        result.metrics["refine"] = refined
    return result
