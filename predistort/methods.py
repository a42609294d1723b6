"""The ways to get a model, in one table: each method's defaults, how it makes a model, and what it costs here.

A :class:`Method` is one row of :data:`METHODS`: its API name (``/train``'s ``method``, the CLI's
``train --model``), the label and the one-sentence trade-off the page shows, the function that makes the
model from a :class:`TrainJob`, its default learning rate and iterations, whether it is built on the scene's
measured light transport, what it needs after the scene changes, and its cost model. A new method plugs in
with one entry; nothing else in the package lists methods.

Costs. :func:`estimate` predicts a training's time (and memory) on this machine from the constants in
``predistort/costs.json``, which ``python bench/costs.py`` measures and rewrites (linear models in pixels,
samples and weights). A training that ran in this process replaces the prediction at its resolution by
what it measured (:func:`record_speed`).
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import backend
from .report import format_duration
from .settings import SETTINGS, ServiceError

COSTS_FILE = Path(__file__).with_name("costs.json")
COSTS = json.loads(COSTS_FILE.read_text())      # measured by bench/costs.py; see its "machine" and "date"
UNROLLED_DEPTH = 16                              # layers of a fresh generalising layer


@dataclass
class TrainJob:
    """Everything a method needs. It reports progress with ``callback(iteration, loss, elapsed_s)`` and
    must stop early, keeping what it learned, once ``stop.is_set()``."""
    renderer: object                     # predistort.render.Renderer of the training scene
    textures: list                       # [R,R,3] float tensors in [0,1]: the targets
    iterations: int
    spp: int
    seed: int
    lr: float
    callback: Callable
    stop: threading.Event
    base_model: object = None            # the session's current model (for methods that build on it)
    start: object = None                 # a model to train further (CLI train --init); None: a fresh one


@dataclass(frozen=True)
class Method:
    """One way to get a model. ``run(job) -> (model, history)``; ``history`` as predistort.train.train returns.

    ``seconds_per_iteration(resolution, n_textures, spp)`` estimates the cost here, probe excluded (None:
    renders only); ``memory_gb(resolution)`` the memory needed (None: small). ``iterative`` False means
    "instant": the iteration count does not apply. ``lr`` and ``iterations`` are the method's defaults.
    ``uses_transport``: built on the scene's measured light transport (a new scene is probed first).
    ``after_scene_change``: what it needs for another scene, one sentence (``{probe}`` says whether that
    scene is measured yet). ``max_resolution``: the largest texture side it can make a model for (None: the
    scene's limit).
    """
    name: str
    label: str                           # as the page's menu shows it
    summary: str                         # one sentence: what it gives, what it costs (shown in the page)
    run: Callable
    seconds_per_iteration: Callable = None
    memory_gb: Callable = None
    iterative: bool = True
    lr: float = 2e-4
    iterations: int = 100
    uses_transport: bool = False
    after_scene_change: str = "made for one scene: *Train* it again for this scene."
    max_resolution: int | None = None


# ---------------------------------------------------------------------------------------------------------
# Making models
# ---------------------------------------------------------------------------------------------------------
_seed_lock = threading.Lock()         # torch.manual_seed is process-wide: seeding + initialising is one step


def new_model(model_type, renderer, seed=0, depth=UNROLLED_DEPTH):
    """A fresh, untrained model of `model_type` for the renderer's scene and resolution, on its device.

    ``tutorial``: the tutorial's layer with torch's seeded random weights. ``unrolled``: the generalising
    layer, built from the scene's measured light transport (:func:`predistort.solve.transport_for`: probed
    the first time a scene is seen, then cached in memory and on disk), `depth` layers.
    """
    from .layers import PredistortModel, UnrolledInverse
    if model_type == "unrolled":
        from .solve import transport_for
        model = UnrolledInverse.from_transport(transport_for(renderer.config, renderer=renderer), depth=depth)
    elif model_type in PredistortModel.registry:
        with _seed_lock:                 # two trainings at once must not draw from each other's seeded RNG
            torch.manual_seed(seed)
            model = PredistortModel.registry[model_type](resolution=renderer.resolution)
    else:
        raise ValueError(f"Unknown model type {model_type!r}; choose one of: "
                         f"{', '.join(sorted(PredistortModel.registry))}.")
    return model.to(renderer.device)


def train_layer(model_type):
    """A Method.run that trains `model_type` with predistort.train.train (Adam, L1): a fresh layer, or the
    job's ``start`` model (fine-tuning; it must be of that type)."""
    def run(job):
        from .train import Recipe, train
        if job.start is not None and job.start.model_type != model_type:
            raise ValueError(f"Cannot train a {job.start.model_type} model as a {model_type} one.")
        model = job.start if job.start is not None else new_model(model_type, job.renderer, seed=job.seed)
        recipe = Recipe(iterations=job.iterations, spp=job.spp, lr=job.lr, seed=job.seed)
        history = train(model, job.renderer, job.textures, recipe, callback=job.callback, stop=job.stop)
        return model, history
    return run


def instant_solve(job):
    """Method.run of the instant solve: the scene's measured light transport as a model (no training).

    Its one history entry is what a training iteration reports: the L1 loss of each picture's solved
    texture, rendered once at the training spp (seed 0), against what the camera should see (the picture
    itself, or its ball-free view on an off-axis camera or another film: :func:`predistort.target.target_for`),
    summed over the pictures.
    """
    import torch.nn.functional as F
    from .layers import instant_model
    from .solve import transport_for
    from .target import target_for
    start = time.perf_counter()
    config = job.renderer.config
    model = instant_model(transport_for(config, renderer=job.renderer)).to(job.renderer.device)
    model.eval()
    loss = 0.0
    with torch.no_grad():
        for picture in job.textures:
            picture = picture.to(job.renderer.device)
            goal = target_for(picture, config).to(job.renderer.device)
            rendered = job.renderer.render(model(picture).clamp(0, 1), spp=job.spp, seed=0)
            loss += F.l1_loss(rendered, goal).item()
    history = [{"iteration": 1, "loss": loss, "seconds": time.perf_counter() - start}]
    job.callback(1, loss, history[0]["seconds"])
    return model, history


# ---------------------------------------------------------------------------------------------------------
# Cost model (constants: predistort/costs.json, measured by bench/costs.py)
# ---------------------------------------------------------------------------------------------------------
def render_seconds(resolution, n_textures, spp):
    """Estimated seconds of the renders (forward + backward) of one training iteration."""
    c, pixels = COSTS["render"], resolution ** 2
    return n_textures * (c["per_texture"] + c["per_pixel"] * pixels + c["per_sample"] * spp * pixels)


def tutorial_seconds(resolution, n_textures, spp):
    """Estimated seconds per training iteration of the tutorial layer (R⁴ + R² weights)."""
    c = COSTS["tutorial"]
    return render_seconds(resolution, n_textures, spp) + c["per_iteration"] + c["per_weight"] * (
        resolution ** 4 + resolution ** 2)


def unrolled_seconds(resolution, n_textures, spp):
    """Estimated seconds per training iteration of the generalising layer (renders + its sparse solver)."""
    return render_seconds(resolution, n_textures, spp) + n_textures * COSTS["unrolled"]["per_pixel"] * resolution ** 2


def probe_seconds(resolution):
    """Estimated seconds to measure a scene's light transport (once per scene; cached afterwards)."""
    c = COSTS["probe"]
    return c["fixed"] + c["per_pixel"] * resolution ** 2


def solve_seconds(resolution, n_textures, spp):
    """Estimated seconds of the instant solve once the scene is probed: per picture a solve and one render."""
    return (n_textures * COSTS["solve"]["per_pixel"] * resolution ** 2
            + render_seconds(resolution, n_textures, spp) / 3)        # a render without its backward pass


def predistort_seconds(model, resolution, spp, probed=True):
    """Estimated seconds of one pre-distortion at `resolution` with `model` (any type; the unrolled layer and
    the instant solve are rebuilt on that resolution's transport): the probe if not `probed`, applying the
    model, and the two renders at `spp` (without backward pass)."""
    from .layers import UnrolledInverse, is_instant
    pixels, c = resolution ** 2, COSTS["apply"]
    if is_instant(model):
        from .solve import iterations_for
        apply = c["solve_per_pixel_iteration"] * pixels * iterations_for(resolution)[0]
    elif isinstance(model, UnrolledInverse):
        apply = c["unrolled_per_pixel"] * pixels * model.depth / UNROLLED_DEPTH
    else:
        apply = c["tutorial_per_weight"] * pixels ** 2
    r = COSTS["render_primal"]
    renders = 2 * (r["per_texture"] + r["per_pixel"] * pixels + r["per_sample"] * pixels * spp)
    return apply + renders + (0.0 if probed else probe_seconds(resolution))


def tutorial_memory_gb(resolution):
    """Memory the tutorial layer needs while training: weights, gradients and Adam's two moments (float32)."""
    return 4 * 4 * (resolution ** 4 + resolution ** 2) / 1e9


# ---------------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------------
METHODS = {m.name: m for m in [
    Method("unrolled", "generalising layer (default)",
           "A 16-layer solver whose sparse layers are this scene's measured light transport, its step sizes "
           "trained through the renderer: corrects pictures it never saw and applies in a fraction of a second; "
           "a new scene is measured first, then a few dozen iterations of training follow.",
           train_layer("unrolled"), unrolled_seconds, lr=0.02, iterations=30, uses_transport=True,
           after_scene_change="made for one scene; *Train* with it uses this scene's light transport ({probe}) "
                              "and trains for it."),
    Method("solve", "instant solve",
           "No training: measures this scene's light transport once (then cached) and solves each picture on it, "
           "about as well as the generalising layer; iterations, learning rate and seed do not apply.",
           instant_solve, solve_seconds, iterative=False, iterations=1, uses_transport=True,
           after_scene_change="needs this scene's light transport ({probe}); *Train* with it takes no further "
                              "training."),
    Method("tutorial", "tutorial layer (fully connected)",
           "The tutorial's single fully connected layer: learns exactly the pictures it is trained on (not the "
           "warp itself: it makes other pictures worse), with R⁴ weights — fast at 32², slow and memory-hungry "
           "at 128² on a CPU.",
           train_layer("tutorial"), tutorial_seconds, tutorial_memory_gb,
           after_scene_change="fits one scene and its training pictures: *Train* it again for this scene.",
           max_resolution=128),
]}
DEFAULT_METHOD = "unrolled"


# ---------------------------------------------------------------------------------------------------------
# Estimates
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Estimate:
    """How long a training would take here, and whether the page should warn before it starts."""
    seconds_per_iteration: float
    total_seconds: float
    long: bool
    message: str                         # Markdown for the page


_observed: dict = {}                  # (method, resolution) -> measured / predicted s per iteration, last training
_observed_lock = threading.Lock()


def estimate(method, resolution, n_textures, iterations, spp, settings=None, probed=None):
    """:class:`Estimate` of a training (seconds per iteration from the cost model, refined by this process).

    ``probed``: whether the scene's light transport is already measured (None: unknown — the message then
    says what a new scene adds).
    """
    settings = settings or SETTINGS
    m = METHODS.get(method) if isinstance(method, str) else None
    if m is None:
        raise ServiceError(f"Unknown method '{method}'; choose one of: {', '.join(METHODS)}.")
    for what, value in (("resolution", resolution), ("iterations", iterations), ("spp", spp)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 1:
            raise ServiceError(f"{what} must be a positive whole number, got {value!r}.")
    resolution, iterations, spp = int(resolution), int(iterations), int(spp)
    n_textures = max(1, int(n_textures or 1))
    per_it = (m.seconds_per_iteration or render_seconds)(resolution, n_textures, spp)
    with _observed_lock:
        per_it *= _observed.get((method, resolution), 1.0)
    iterations = iterations if m.iterative else 1
    total = per_it * iterations
    probe = probe_seconds(resolution) if m.uses_transport and not probed else 0.0
    long = total > settings.long_training_s
    memory = m.memory_gb(resolution) if m.memory_gb else 0.0
    where = f"{os.cpu_count()} CPU cores" if backend.device() == "cpu" else "this GPU"
    if m.iterative:
        msg = (f"Estimated **{per_it:.2f} s per iteration** × {iterations} = **{format_duration(total)}** on this "
               f"machine ({where}) for {n_textures} picture(s) at {resolution}×{resolution}, spp {spp}.")
    else:
        msg = (f"Estimated **{format_duration(total)}** on this machine ({where}) for {n_textures} picture(s) at "
               f"{resolution}×{resolution}.")
    if probe:
        msg += f" A scene not measured before is probed first: about {format_duration(probe)} more."
    if memory >= 1.0:
        msg += f" Needs about {memory:.1f} GB of memory."
    if long:
        msg += (f"\n\n⚠️ **This is a long training for this machine** (over {format_duration(settings.long_training_s)})."
                f" Lower the resolution, the iterations or the number of pictures for a quicker result; Stop "
                f"ends it early and keeps what was learned.")
    return Estimate(per_it, total, long, msg)


# ---------------------------------------------------------------------------------------------------------
# What the page says about a scene and a resolution before anything runs
# ---------------------------------------------------------------------------------------------------------
def scene_report(model, scene):
    """Markdown: for `scene`, whether `model` (the session's, or None) still applies, what each method needs
    (a probe of the light transport, a training) before it does, and that refinement always applies."""
    from .solve import applies, is_probed
    probe = ("already measured" if is_probed(scene) else
             f"measured first, about {format_duration(probe_seconds(scene.resolution))}")
    lines = [f"**Scene: sphere IOR {scene.sphere_ior:g}, radius {scene.sphere_radius:g}, "
             f"{scene.resolution}×{scene.resolution}.**"]
    if model is not None:
        ok, reason = applies(model, scene)
        lines.append(f"- {'✅' if ok else '⚠️'} **Your current model** ({model.model_type}): {reason}")
    for m in METHODS.values():
        label = m.label.replace(" (default)", "")
        lines.append(f"- **{label[0].upper() + label[1:]}**: {m.after_scene_change.format(probe=probe)}")
    lines.append("- ✅ **Refinement**: always applies (it renders the scene itself), from whichever model is in use.")
    if model is None or not applies(model, scene)[0]:
        lines.append("\nPictures are pre-distorted for the scene of the model in use until a model is trained for "
                     "this one.")
    return "\n".join(lines)


def predistort_estimate(model, scene, render_spp, max_resolution):
    """Markdown: about how long pre-distorting one picture for `scene` (at its resolution) with `model` takes
    here, renders at `render_spp`, and whether that resolution's light transport must be measured first."""
    from .layers import UnrolledInverse
    from .solve import is_probed
    own, resolution = model.resolution, scene.resolution
    if resolution != own and not isinstance(model, UnrolledInverse):
        return (f"⚠️ This {model.model_type} model pre-distorts at {own}×{own} only (its weights are made for that "
                f"size); the generalising layer and the instant solve go up to {max_resolution}×{max_resolution}.")
    new = resolution != own and not is_probed(scene)
    seconds = predistort_seconds(model, resolution, render_spp, probed=not new)
    text = f"At {resolution}×{resolution}: about **{_seconds(seconds)}** on this machine, renders at spp {render_spp}"
    if new:
        text += (f", of which about {_seconds(probe_seconds(resolution))} to measure the scene's light transport at "
                 f"this resolution first (once: it is kept)")
    return text + "."


def _seconds(seconds):
    return f"{seconds:.1f} s" if seconds < 10 else format_duration(seconds)


def median_step(history):
    """Median seconds of one iteration, from the second on (the first also allocates); None if unknown."""
    if len(history) < 2:
        return history[0]["seconds"] if history else None
    steps = sorted(b["seconds"] - a["seconds"] for a, b in zip(history, history[1:]))
    return steps[len(steps) // 2]


def record_speed(method, resolution, n_textures, spp, history):
    """Remember how fast this process really trains (median of iterations after the first)."""
    m = METHODS[method]
    if len(history) < 3:
        return
    measured = median_step(history)
    predicted = (m.seconds_per_iteration or render_seconds)(resolution, n_textures, spp)
    if predicted > 0 and measured > 0:
        with _observed_lock:
            _observed[(method, resolution)] = measured / predicted
