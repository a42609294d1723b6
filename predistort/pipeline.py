"""Apply a pre-distortion and show what it does: initial render, pre-distorted texture, final render, metrics.

The question a user asks is "does it look more like my picture through the sphere?". So every result is
judged the same way: render the scene with the plain texture (what you would see without pre-distortion)
and with the pre-distorted one, and measure both renders against the texture itself (L1: mean absolute
error, lower is better; PSNR in dB, higher is better). Evaluation renders use many samples per pixel so
that Monte Carlo noise does not blur the comparison.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .images import l1, psnr, save_png, side_by_side

EVAL_SPP = 256            # samples per pixel of evaluation renders (noise std ~ 1/16 of spp-1 noise)


@torch.no_grad()
def apply_model(model, texture):
    """The model's pre-distortion of one texture [R,R,3] (no gradients, values in [0,1])."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else texture.device
    return model(texture.to(device, torch.float32)).clamp(0, 1)


@dataclass
class Comparison:
    """One texture's before/after: the four images (CPU tensors [R,R,3]) and their metrics."""
    target: torch.Tensor          # the texture the viewer should see
    initial: torch.Tensor         # render of the plain texture: the distortion to undo
    predistorted: torch.Tensor    # the texture actually put on the plane
    final: torch.Tensor           # render of the pre-distorted texture
    metrics: dict = field(default_factory=dict)

    def figure(self, scale=2):
        """The side-by-side comparison: initial render, input, pre-distorted, final render, target."""
        m = self.metrics
        return side_by_side(
            [self.initial, self.target, self.predistorted, self.final, self.target],
            ["Initial render", "Input texture", "Pre-distorted texture", "Final render", "Target"],
            [f"L1 {m['l1_initial']:.4f} · PSNR {m['psnr_initial']:.1f} dB", "", "",
             f"L1 {m['l1_final']:.4f} · PSNR {m['psnr_final']:.1f} dB", ""], scale=scale)

    def save(self, out_dir):
        """Write predistorted.png, render_initial.png, render_final.png, comparison.png, metrics.json."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_png(self.predistorted, out / "predistorted.png")
        save_png(self.initial, out / "render_initial.png")
        save_png(self.final, out / "render_final.png")
        self.figure().save(out / "comparison.png")
        (out / "metrics.json").write_text(json.dumps(self.metrics, indent=2) + "\n")
        return out


def compare(renderer, target, predistorted, spp=EVAL_SPP, seed=0):
    """Render `target` and `predistorted` with the same samples and measure both against `target`."""
    initial = renderer.render(target, spp=spp, seed=seed).cpu()
    final = renderer.render(predistorted, spp=spp, seed=seed).cpu()
    target, predistorted = target.cpu(), predistorted.detach().cpu()
    metrics = {"l1_initial": l1(initial, target), "psnr_initial": psnr(initial, target),
               "l1_final": l1(final, target), "psnr_final": psnr(final, target), "spp": spp}
    metrics["l1_ratio"] = metrics["l1_final"] / max(metrics["l1_initial"], 1e-12)
    return Comparison(target, initial, predistorted, final, metrics)
