"""How well does each pre-distortion method work, on the textures it trained on and on pictures it never saw,
and what does it cost?

    python bench/quality.py            # full size: 128×128, 100 training iterations, 8 unseen photos (~45 min, 2 cores)
    python bench/quality.py --quick    # CI size: 32×32, 3 iterations, 2 unseen photos (a few minutes)

For every method in :data:`METHODS`, a fresh Python process (so that its peak memory is its own) prepares
the method on the tutorial's four textures (training, for a trained model) and applies it to every test
image: the four tutorial textures and the unseen photographs of :func:`datasets.unseen_photos`. Then this
process renders every pre-distorted texture at ``eval_spp`` samples per pixel, all with one seed, and scores
each render against the image it should look like (L1, PSNR; :mod:`common`).

The table reports, per method: training time (and ×faster than the tutorial's code, timed in the same run),
time to apply it to one image, peak memory (and × the tutorial's), the final training loss, and for each
image set the mean L1, the mean PSNR and the mean per-image ratio L1 / L1 without pre-distortion (< 1: the
method helps). What a row's numbers mean beyond that (what its training time covers, what it trained on,
what differs at --quick size) is said in a note under the table. It is printed and written to
``bench/results/quality.md`` and ``.json``.

Adding a method: write ``prepare_x(ctx) -> Prepared`` (train on ``ctx.textures``, return a function
texture -> pre-distorted texture, the training time and, where a row needs one, ``info["note"]``) and add
it to :data:`METHODS`.
"""
import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Optional

import common
from common import RESULTS, Timer, markdown_table, run_child, write_result
from datasets import PHOTOS, require_tutorial_textures, tutorial_textures, unseen_photos

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class Settings:
    """The sizes of one benchmark run (the defaults are the full run)."""
    resolution: int = 128         # texture and film side
    iterations: int = 100         # training iterations of the tutorial layer (both implementations)
    spp: int = 4                  # samples per pixel of every training / optimisation render
    pixel_steps: int = 200        # Adam steps of per-texture pixel optimisation
    pixel_lr: float = 0.005       # its learning rate (pixel values in [0,1]; best of 0.002-0.02 at 200 steps, 128²)
    unrolled_iterations: Optional[int] = None   # training iterations of the generalising layer (None: those of
    #                                             bench/train_default.py, which made the bundled weights)
    refine_seconds: Optional[float] = 20.0   # refinement's time budget per image (None: its steps alone)
    refine_steps: Optional[int] = None       # ... or its steps per image (None: as many as the time allows)
    unseen: int = 8               # how many unseen photos (the first of datasets.PHOTOS)
    eval_spp: int = 512           # samples per pixel of the scoring renders
    eval_seed: int = 1_000_003    # one seed for every scoring render (far from the training seeds)


FULL = Settings()
QUICK = Settings(resolution=32, iterations=3, pixel_steps=10, pixel_lr=0.02,   # fewer, larger steps
                 unrolled_iterations=3, refine_seconds=None, refine_steps=16, unseen=2)   # steps: any machine alike


@dataclass
class Prepared:
    """A method ready to use: ``apply(texture [R,R,3]) -> pre-distorted texture [R,R,3]`` in [0,1]."""
    apply: Callable
    train_seconds: float = 0.0    # time spent learning from the training textures (0: nothing to learn)
    info: dict = field(default_factory=dict)   # anything worth keeping: losses, seconds per iteration, note ...


class Context:
    """What a method may use: the settings, the training textures, a renderer, a scratch folder."""

    def __init__(self, settings, workdir):
        self.settings = settings
        self.textures = tutorial_textures(settings.resolution)    # the training set: [R,R,3] tensors
        self.workdir = Path(workdir)

    @cached_property
    def renderer(self):
        from predistort.render import Renderer
        from predistort.scene import DEFAULT
        return Renderer(DEFAULT.replace(resolution=self.settings.resolution))

    def texture_files(self):
        """The training textures as PNG files (lossless: they are 8-bit values / 255), for code that loads files."""
        paths = []
        for k, t in enumerate(self.textures):
            path = self.workdir / f"texture_{k + 1:03d}.png"
            Image.fromarray((t * 255).round().to(torch.uint8).numpy()).save(path)
            paths.append(str(path))
        return paths


# -- methods -------------------------------------------------------------------------------------------------
def prepare_none(ctx):
    """No pre-distortion: the texture itself goes on the plane (the distortion to undo)."""
    return Prepared(apply=lambda texture: texture)


def prepare_tutorial_reference(ctx):
    """The tutorial's layer, trained by the tutorial's own code (bench/tutorial_reference.py)."""
    import mitsuba as mi
    from tutorial_reference import run_tutorial

    run = run_tutorial(ctx.texture_files(), iteration_count=ctx.settings.iterations, spp=ctx.settings.spp, seed=0)

    @torch.no_grad()
    def apply(texture):
        return run.model(mi.TensorXf(texture.contiguous())).clamp(0, 1)     # Model1 takes a Dr.Jit tensor
    return Prepared(apply, run.seconds[-1], {"losses": run.losses,
                                            "seconds_per_iteration": run.seconds[-1] / len(run.seconds)})


def prepare_tutorial_efficient(ctx):
    """The same layer, same recipe and seeds, trained by predistort.train (batched layer, fused Adam)."""
    from predistort.layers import TutorialLayer
    from predistort.train import Recipe, train

    torch.manual_seed(0)                       # as the tutorial's code: same initial weights
    model = TutorialLayer(ctx.settings.resolution)
    history = train(model, ctx.renderer, ctx.textures, Recipe(iterations=ctx.settings.iterations,
                                                              spp=ctx.settings.spp))

    @torch.no_grad()
    def apply(texture):
        return model(texture).clamp(0, 1)
    seconds = history[-1]["seconds"]
    return Prepared(apply, seconds, {"losses": [h["loss"] for h in history],
                                     "seconds_per_iteration": seconds / len(history)})


def optimise_pixels(renderer, target, steps, lr, spp=4):
    """Optimise the texel values of one texture so that its render matches `target`; returns the texture.

    Adam on the pixels themselves, starting from `target`, clamped to [0,1] after every step (a projected
    gradient method: reflectances outside [0,1] are not physical). Step k renders with seed k, so every step
    sees fresh noise. Each step is one render and its backward pass (Renderer.loss_and_grad).
    """
    texture = target.clone().to(renderer.device).requires_grad_(True)
    optimizer = torch.optim.Adam([texture], lr=lr)
    for step in range(steps):
        _, texture.grad = renderer.loss_and_grad(texture.detach().clone(), target, spp=spp, seed=step)
        optimizer.step()
        with torch.no_grad():
            texture.clamp_(0, 1)
    return texture.detach()


def prepare_per_texture(ctx):
    """Per-texture optimisation of the pixels through the renderer: no training, all the work when applied.

    It sees the very image it is asked to pre-distort, so it is the practical floor that a trained model
    can approach, at the price of ``pixel_steps`` renders and backward passes per image.
    """
    s = ctx.settings
    return Prepared(apply=lambda texture: optimise_pixels(ctx.renderer, texture, s.pixel_steps, s.pixel_lr, s.spp))


def probe(ctx):
    """Measure the scene's light transport from scratch (``solve.probe``, never the cache): ``(transport, s)``."""
    from predistort import solve
    with Timer() as t:
        transport = solve.probe(ctx.renderer.config, renderer=ctx.renderer)
    return transport, t.seconds


def prepare_unrolled_scratch(ctx):
    """The generalising layer, made from scratch by bench/train_default.py's recipe (the bundled weights').

    Probe the scene, build :class:`UnrolledInverse` on its light transport, train its per-layer scalars
    through the renderer on the tutorial's textures and procedural images, no photograph. Training time:
    probe + build + training, as train_default.py measures it.
    """
    from predistort import procedural
    from predistort.layers import UnrolledInverse
    from predistort.train import Recipe, train
    from train_default import DEPTH, ITERATIONS, LR, PROCEDURAL

    s = ctx.settings
    iterations = s.unrolled_iterations or ITERATIONS
    textures = ctx.textures + procedural.dataset(PROCEDURAL, s.resolution, seed=0)
    with Timer() as t:
        transport, probe_seconds = probe(ctx)
        model = UnrolledInverse.from_transport(transport, depth=DEPTH)
        history = train(model, ctx.renderer, textures, Recipe(iterations=iterations, spp=4, lr=LR, seed=0),
                        optimizer=model.optimizer(LR))

    @torch.no_grad()
    def apply(texture):
        return model(texture).clamp(0, 1)
    note = (f"bench/train_default.py's recipe: probe ({probe_seconds:.1f} s, included in train s), {DEPTH} "
            f"layers, {iterations} iterations (Adam lr {LR} on the per-layer scalars, spp 4) on the "
            f"{len(ctx.textures)} tutorial textures + {PROCEDURAL} procedural images; its train loss is summed "
            f"over those {len(textures)} textures (the tutorial layer's over 4)")
    if iterations != ITERATIONS:
        note += f"; {iterations} iterations at this size, not the recipe's {ITERATIONS}"
    return Prepared(apply, t.seconds, {"losses": [h["loss"] for h in history], "probe_seconds": probe_seconds,
                                       "seconds_per_iteration": history[-1]["seconds"] / len(history),
                                       "note": note})


def prepare_unrolled_bundled(ctx):
    """The bundled default weights (weights/default, made by bench/train_default.py): loaded, nothing trained.

    They map 128² textures. At another size (--quick: 32²) the row keeps what those weights learned — the
    per-layer step scales, thresholds and momenta; A and b are the probe's, never trained — on the light
    transport of a fresh probe at that size; its training time is then that probe's.
    """
    import predistort
    from predistort import solve
    from predistort.layers import UnrolledInverse

    bundled = predistort.load_model("default")
    scene = ctx.renderer.config
    made = bundled.info.get("metrics", {}).get("train_seconds")
    note = (f"weights made by bench/train_default.py (probe + training: {made} s on the machine that made "
            f"them, config.json metrics), not counted in train s")
    if bundled.resolution == scene.resolution:
        ok, reason = solve.applies(bundled, scene)
        if not ok:
            raise RuntimeError(reason)
        model, seconds = bundled, 0.0
    else:
        ok, reason = solve.applies(bundled, scene.replace(resolution=bundled.resolution))
        if not ok:
            raise RuntimeError(reason)
        transport, seconds = probe(ctx)
        model = UnrolledInverse.from_transport(transport, depth=bundled.depth, l2_depth=bundled.l2_depth)
        with torch.no_grad():
            for name in ("log_step", "log_delta", "momentum"):
                getattr(model, name).copy_(getattr(bundled, name))
        r, b = scene.resolution, bundled.resolution
        note = (f"at {r}²: the bundled weights map {b}² textures, so their {3 * bundled.depth} trained per-layer "
                f"scalars run on a fresh {r}² probe (train s = that probe); " + note)

    @torch.no_grad()
    def apply(texture):
        return model(texture).clamp(0, 1)
    return Prepared(apply, seconds, {"bundled_train_seconds": made, "note": note})


def prepare_instant(ctx):
    """The instant solve: probe the scene's light transport once, then solve for each image (projected FISTA on
    ``A·T + b``, no rendering). Training time: the probe."""
    from predistort import solve
    transport, seconds = probe(ctx)
    return Prepared(lambda texture: solve.solve(texture, transport), seconds,
                    {"note": "train s: the probe of the scene's light transport (from scratch, no cache)"})


def prepare_refine(ctx):
    """The instant solve's texture, refined through the renderer (predistort.refine) for ``refine_seconds`` per
    image: Adam on the texels, the best fixed-seed score kept. Training time: the probe; the rest is apply."""
    from predistort import solve
    transport, seconds = probe(ctx)
    return _refining(ctx, lambda texture: solve.solve(texture, transport), seconds,
                     "train s: the probe; apply: the instant solve, then refinement")


def prepare_refine_from_none(ctx):
    """Refinement alone, starting from the picture itself (no model, no probe): what it does from far away."""
    return _refining(ctx, lambda texture: texture, 0.0, "no model; apply: refinement from the picture itself")


def _refining(ctx, start, train_seconds, note):
    """A method that refines ``start(texture)`` through the renderer for ``refine_seconds`` (or ``refine_steps``)
    per image."""
    from predistort import refine
    budget, steps = ctx.settings.refine_seconds, ctx.settings.refine_steps
    per_image = " and ".join(f"{value:g} {unit}" for value, unit in ((budget, "s"), (steps, "steps"))
                             if value is not None)
    info = {"refine_seconds": budget, "refine_step_budget": steps, "refine_steps": [],
            "note": f"{note} for {per_image} per image"}
    if (budget, steps) != (FULL.refine_seconds, FULL.refine_steps):
        info["note"] += f" at this size (not {FULL.refine_seconds:g} s)"

    def apply(texture):
        refined = refine.refine(ctx.renderer, texture, start(texture), seconds=budget, steps=steps)
        info["refine_steps"].append(refined.steps)
        return refined.texture
    return Prepared(apply, train_seconds, info)


TUTORIAL = "tutorial layer, tutorial's code"        # the reference every ratio is taken against
EFFICIENT = "tutorial layer, predistort.train"
METHODS = {
    "none": prepare_none,
    TUTORIAL: prepare_tutorial_reference,
    EFFICIENT: prepare_tutorial_efficient,
    "per-texture pixel optimisation": prepare_per_texture,
    "generalising layer, trained from scratch": prepare_unrolled_scratch,
    "generalising layer, bundled weights (weights/default)": prepare_unrolled_bundled,
    "instant solve": prepare_instant,
    "refinement, 20 s from the instant solve": prepare_refine,
    "refinement, 20 s from no pre-distortion": prepare_refine_from_none,
}


# -- child process: prepare and apply one method ---------------------------------------------------------
def child(name, settings, textures_out, result):
    """Prepare method `name`, apply it to every test image, save the textures; report times and memory."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(settings, tmp)
        images = {"tutorial": ctx.textures, "unseen": unseen_photos(settings.resolution, PHOTOS[:settings.unseen])}
        with Timer() as prepare:
            method = METHODS[name](ctx)
        outputs, apply_seconds = {}, []
        for group, group_images in images.items():
            outs = []
            for image in group_images:
                with Timer() as t:
                    outs.append(method.apply(image).detach().float().cpu())
                apply_seconds.append(t.seconds)
            outputs[group] = outs
    torch.save(outputs, textures_out)
    write_result(result, {"method": name, "train_seconds": method.train_seconds,
                          "prepare_seconds": prepare.seconds,
                          "apply_seconds_per_image": float(np.mean(apply_seconds)), **method.info})


# -- parent: run the methods, score, report ------------------------------------------------------------------
def run_methods(names, settings, log=None):
    """Run each method of `names` in its own process, then score its textures; returns ``{name: result}``.

    A result is the child's report (times, peak memory, info) plus ``scores[group]``: one ``{"l1", "psnr"}``
    per image of that group ("tutorial": the training textures, "unseen": the photos).
    """
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        textures = {}
        for name in names:
            print(f"[quality] {name} ...", file=sys.stderr, flush=True)
            out = Path(tmp) / f"{len(textures)}.pt"
            results[name] = run_child(__file__, ["--child", name, "--settings", json.dumps(asdict(settings)),
                                                 "--textures-out", out], log=log)
            textures[name] = torch.load(out)
            r = results[name]
            print(f"[quality] {name}: train {r['train_seconds']:.1f} s, apply {r['apply_seconds_per_image']:.3f} "
                  f"s/image, peak {r['peak_rss_gb']:.2f} GB", file=sys.stderr, flush=True)

        # Score after every child has finished, so that no method is timed while this process renders.
        from predistort.render import Renderer
        from predistort.scene import DEFAULT
        renderer = Renderer(DEFAULT.replace(resolution=settings.resolution))
        targets = {"tutorial": tutorial_textures(settings.resolution),
                   "unseen": unseen_photos(settings.resolution, PHOTOS[:settings.unseen])}
        for name in names:
            results[name]["scores"] = {group: common.score(renderer, targets[group], textures[name][group],
                                                           settings.eval_spp, settings.eval_seed)
                                       for group in targets}
    return results


def _mean(values):
    return float(np.mean(values)) if len(values) else float("nan")


def summarise(results, baseline="none"):
    """Per method and image group: mean L1, mean PSNR and mean per-image L1 ratio to `baseline`."""
    for name, r in results.items():
        r["summary"] = {}
        for group, scores in r["scores"].items():
            base = results[baseline]["scores"][group] if baseline in results else None
            r["summary"][group] = {
                "l1": _mean([s["l1"] for s in scores]),
                "psnr": _mean([s["psnr"] for s in scores]),
                "l1_ratio_to_none": _mean([s["l1"] / b["l1"] for s, b in zip(scores, base)]) if base else float("nan"),
            }
    return results


def table(results, settings):
    """The markdown table of `results` (after :func:`summarise`)."""
    ref = results.get(TUTORIAL)
    rows = []
    for name, r in results.items():
        train_s = r["train_seconds"]
        per_it = r.get("seconds_per_iteration")
        losses = r.get("losses")
        row = [name,
               f"{train_s:.1f}" + (f" ({per_it:.2f}/it)" if per_it else ""),
               f"{ref['train_seconds'] / train_s:.1f}×" if ref and train_s > 0 else "—",
               f"{r['apply_seconds_per_image']:.3g}",
               f"{r['peak_rss_gb']:.2f}",
               f"{r['peak_rss_gb'] / ref['peak_rss_gb']:.2f}×" if ref else "—",
               f"{losses[-1]:.4f}" if losses else "—"]
        for group in ("tutorial", "unseen"):
            s = r["summary"][group]
            row += [f"{s['l1']:.4f}", f"{s['psnr']:.2f}", f"{s['l1_ratio_to_none']:.3f}"]
        rows.append(row)
    n_unseen = len(next(iter(results.values()))["scores"]["unseen"])
    headers = ["method", "train s", "train speed vs tutorial's code", "apply s/image", "peak GB",
               "memory vs tutorial's code", "final train loss",
               "tutorial L1", "tutorial PSNR dB", "tutorial L1 / none",
               f"unseen ({n_unseen}) L1", "unseen PSNR dB", "unseen L1 / none"]
    return markdown_table(headers, rows)


def notes(results):
    """One line per method that left a note (what its row's numbers cover)."""
    return [f"- {name}: {r['note']}." for name, r in results.items() if r.get("note")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="CI size: 32×32, 3 iterations, 10 pixel steps, 2 s refinement, 2 photos")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), help="a subset of the methods (default: all)")
    p.add_argument("--out", type=Path, help="folder for quality.md/.json/.log (default bench/results, "
                                            "bench/results/quick with --quick)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--settings", help=argparse.SUPPRESS)
    p.add_argument("--textures-out", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child, Settings(**json.loads(args.settings)), args.textures_out, args.result)
    require_tutorial_textures()

    settings = QUICK if args.quick else FULL
    names = args.methods or list(METHODS)
    names = ["none"] + [n for n in names if n != "none"]            # the baseline of every L1 ratio
    out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    command = "python bench/quality.py" + (" --quick" if args.quick else "")
    with open(out / "quality.log", "w") as log:
        results = summarise(run_methods(names, settings, log=log))
    row_notes = notes(results)
    md = "\n".join([
        f"## Pre-distortion quality ({settings.resolution}×{settings.resolution})", "",
        *[f"{line}  " for line in common.header(command)], "",
        table(results, settings), "",
        *(row_notes + [""] if row_notes else []),
        f"Tutorial layer: the 4 tutorial textures, {settings.iterations} iterations (Adam, lr 2e-4, L1, "
        f"spp {settings.spp}, seeds i·4+j, torch seed 0). Per-texture optimisation: {settings.pixel_steps} Adam "
        f"steps at spp {settings.spp}, lr {settings.pixel_lr}, on each image itself. Scores: renders at spp "
        f"{settings.eval_spp}, "
        f"clamped to [0,1], against the image itself; L1 / none is the mean per-image ratio to no pre-distortion. "
        f"Unseen: {', '.join(PHOTOS[:settings.unseen])} (scikit-image). Peak memory: ru_maxrss of the method's "
        f"own process (GB = 10⁹ bytes). Times share the CPU with whatever else ran: compare the ratios."])
    print(md)
    path = common.save_report("quality", md, {"settings": asdict(settings), "command": command,
                                              "machine": common.machine(), "results": results}, out)
    print(f"\nWrote {path} and {path.with_suffix('.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
