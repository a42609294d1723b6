"""What the web app does for one visitor session — without Gradio, so that it is testable as plain Python.

``app.py`` only lays out the page and wires its events to a :class:`Session` (one per browser tab or API
client, kept in a ``gr.State``). A session holds *its own* model, scene, pictures' results and training
history; what one visitor trains never reaches another. Everything that is expensive and read-only is
shared by the whole process instead:

* renderers, one per scene config (building a Mitsuba scene costs time; :func:`renderer_for`), and all
  Dr.Jit work is serialised by :data:`predistort.backend.RENDER_LOCK` inside them;
* pretrained models (the bundled default and Hub downloads, :func:`shared_model`). A session never
  changes a model in place: training always builds a new one, owned by that session only.

Methods of getting a model are a small table (:data:`METHODS`): name → one-sentence trade-off shown in
the page → the function that makes the model (and, optionally, a cost estimate). A new method plugs in
with one line there.

Limits (how much one visitor may ask of a small shared machine) are read once from environment
variables, see :class:`Settings`. Every user mistake raises :class:`ServiceError` (or another
``ValueError``: ``ImageError``, ``WeightsError``) whose message says what is wrong and what to do; the
app shows it as ``gr.Error``.
"""
from __future__ import annotations

import gc
import math
import os
import queue
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import backend, weights
from .scene import DEFAULT, SceneConfig, _data_dir

EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class ServiceError(ValueError):
    """A request this app cannot fulfil as asked; the message tells the visitor what to change."""


# ---------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------
def _env(environ, name, default, cast):
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return cast(raw.strip())
    except ValueError:
        raise ValueError(f"Environment variable {name}={raw!r} is not a valid {cast.__name__}.") from None


@dataclass(frozen=True)
class Settings:
    """Limits and defaults of the app; each field is read from the environment variable named beside it.

    The defaults suit a 2-core CPU Space (HF "CPU basic": 2 vCPU, 16 GB RAM).
    """
    max_textures: int = 8               # PREDISTORT_MAX_TEXTURES: pictures per request (train / compare)
    max_iterations: int = 1000          # PREDISTORT_MAX_ITERATIONS: training iterations per request
    max_resolution: int = 128           # PREDISTORT_MAX_RESOLUTION: largest training resolution (tutorial layer: R⁴ weights)
    max_spp: int = 256                  # PREDISTORT_MAX_SPP: samples per pixel, training and preview renders
    max_upload_mb: float = 20.0         # PREDISTORT_MAX_UPLOAD_MB: largest uploaded picture, megabytes
    preview_spp: int = 32               # PREDISTORT_PREVIEW_SPP: default spp of /predistort renders (<1 s at 128² here)
    long_training_s: float = 120.0      # PREDISTORT_LONG_TRAINING_S: trainings estimated longer than this get a warning
    default_weights: str = "default"    # PREDISTORT_DEFAULT_WEIGHTS: model loaded at start ("default" = weights/default,
                                        #   a folder, or a Hub repo id USER/NAME[@REVISION]); "" or "none": none
    examples_dir: str = ""              # PREDISTORT_EXAMPLES_DIR: example pictures (default: the repository's examples/)
    session_ttl_s: float = 7200.0       # PREDISTORT_SESSION_TTL_S: a session's model and results are dropped this
                                        #   long after its last training / load (memory of a long-running Space)
    train_concurrency: int = 1          # PREDISTORT_TRAIN_CONCURRENCY: trainings running at once (whole server)
    render_concurrency: int = 1         # PREDISTORT_RENDER_CONCURRENCY: pre-distortions / exports running at once
    queue_size: int = 32                # PREDISTORT_QUEUE_SIZE: requests waiting in the queue before new ones are refused
    warmup: bool = True                 # PREDISTORT_WARMUP: render once at start so the first visitor waits for no compile
    max_refine_s: float = 30.0          # PREDISTORT_MAX_REFINE_S: longest per-picture refinement a request may ask

    ENV = {"max_textures": ("PREDISTORT_MAX_TEXTURES", int), "max_iterations": ("PREDISTORT_MAX_ITERATIONS", int),
           "max_resolution": ("PREDISTORT_MAX_RESOLUTION", int), "max_spp": ("PREDISTORT_MAX_SPP", int),
           "max_upload_mb": ("PREDISTORT_MAX_UPLOAD_MB", float), "preview_spp": ("PREDISTORT_PREVIEW_SPP", int),
           "long_training_s": ("PREDISTORT_LONG_TRAINING_S", float),
           "default_weights": ("PREDISTORT_DEFAULT_WEIGHTS", str),
           "examples_dir": ("PREDISTORT_EXAMPLES_DIR", str), "session_ttl_s": ("PREDISTORT_SESSION_TTL_S", float),
           "train_concurrency": ("PREDISTORT_TRAIN_CONCURRENCY", int),
           "render_concurrency": ("PREDISTORT_RENDER_CONCURRENCY", int),
           "queue_size": ("PREDISTORT_QUEUE_SIZE", int), "warmup": ("PREDISTORT_WARMUP", "bool"),
           "max_refine_s": ("PREDISTORT_MAX_REFINE_S", float)}

    @classmethod
    def from_env(cls, environ=None):
        """Settings from environment variables (``os.environ`` by default); unset ones keep their default."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, (var, cast) in cls.ENV.items():
            if cast == "bool":
                raw = environ.get(var, "").strip().lower()
                if raw:
                    if raw not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError(f"Environment variable {var}={raw!r} must be 1 or 0.")
                    values[name] = raw in ("1", "true", "yes", "on")
            else:
                value = _env(environ, var, None, cast)
                if value is not None:
                    values[name] = value
        return cls(**values)

    def __post_init__(self):
        from .scene import MAX_RESOLUTION, MIN_RESOLUTION
        for name in ("max_textures", "max_iterations", "max_spp", "preview_spp", "train_concurrency",
                     "render_concurrency", "queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"Setting {name} ({self.ENV[name][0]}) must be at least 1.")
        if not MIN_RESOLUTION <= self.max_resolution <= MAX_RESOLUTION:
            raise ValueError(f"Setting max_resolution must be between {MIN_RESOLUTION} and {MAX_RESOLUTION}.")
        if self.preview_spp > self.max_spp:
            raise ValueError("Setting preview_spp must not exceed max_spp.")
        if not 0 <= self.max_refine_s <= 600:
            raise ValueError("Setting max_refine_s (PREDISTORT_MAX_REFINE_S) must be between 0 and 600 seconds.")

    @property
    def examples_path(self):
        return Path(self.examples_dir) if self.examples_dir else _data_dir("examples")


SETTINGS = Settings.from_env()


def examples(settings=None):
    """The example pictures offered in the page (sorted paths; empty if the folder is missing)."""
    folder = (settings or SETTINGS).examples_path
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in EXAMPLE_SUFFIXES and p.is_file())


# ---------------------------------------------------------------------------------------------------------
# Process-wide, read-only resources
# ---------------------------------------------------------------------------------------------------------
_renderers: dict = {}
_renderers_lock = threading.Lock()
_renderer_discarded = False           # a failed renderer was dropped: collect it before the next render
MAX_RENDERERS = 8                     # scenes kept built; the least recently used is dropped beyond this


def renderer_for(scene: SceneConfig):
    """The process-wide Renderer of `scene` (built on first use, then reused by every session)."""
    global _renderer_discarded
    from .render import Renderer
    with _renderers_lock:
        if _renderer_discarded:          # free it now (its traceback's reference cycles included), with
            _renderer_discarded = False  # Dr.Jit to itself while its objects are destroyed
            with backend.RENDER_LOCK:
                gc.collect()
        renderer = _renderers.pop(scene, None)
        if renderer is None:
            renderer = Renderer(scene)
        _renderers[scene] = renderer                     # most recently used last
        while len(_renderers) > MAX_RENDERERS:
            _renderers.pop(next(iter(_renderers)))
        return renderer


def discard_renderer(renderer):
    """Forget `renderer` after a render in it failed; the next request for its scene builds a fresh one.

    A render that fails half-way (a Dr.Jit or Mitsuba error) can leave its scene half-updated, and Dr.Jit
    dispatches every texture / BSDF call over *all* live scene objects of the process: measured here, one
    scene left with a broken texture makes every later render fail, in every scene, until that scene is
    freed. So a failed renderer is dropped from the cache (and collected before the next render).
    """
    global _renderer_discarded
    with _renderers_lock:
        for key in [k for k, v in _renderers.items() if v is renderer]:
            del _renderers[key]
        _renderer_discarded = True


_train_slots: dict = {}               # train_concurrency -> semaphore: training threads running at once
_train_slots_lock = threading.Lock()


def training_slots(limit):
    """The process-wide semaphore that lets at most `limit` training threads run at once.

    Gradio's queue already runs at most PREDISTORT_TRAIN_CONCURRENCY /train events at once, but a cancelled
    or abandoned event frees its queue slot at once while its thread still ends its current iteration: this
    keeps that thread and the next training from overlapping (memory: 4.3 GB each for a 128² tutorial layer).
    """
    with _train_slots_lock:
        return _train_slots.setdefault(limit, threading.BoundedSemaphore(limit))


_models: dict = {}
_models_lock = threading.Lock()
MAX_SHARED_MODELS = 3                 # pretrained models kept in memory (the default one is always kept)


def parse_model_name(name):
    """Split ``"USER/NAME@REVISION"`` into ``("USER/NAME", "REVISION")``; "default" and folders pass through."""
    name = (name or "").strip()
    if "@" in name and not Path(name).exists():
        name, revision = name.rsplit("@", 1)
        return name.strip(), revision.strip() or None
    return name, None


def shared_model(name, revision=None, *, allow_local=False):
    """A pretrained model shared (read-only) by every session: ``"default"``, a Hub repo id, or a folder.

    Folders are accepted only with ``allow_local`` (the server's own settings), never from a visitor:
    a visitor's string must not probe the server's file system. Raises ``WeightsError``/``ServiceError``.
    """
    from .layers import PredistortModel
    name = name.strip()
    if name != weights.BUNDLED and not allow_local:
        if not weights.REPO_ID.match(name) or name.count("/") != 1 or ".." in name or "--" in name:
            raise ServiceError(f"'{name}' is not a Hugging Face model repo id: give USER/NAME (optionally "
                               f"USER/NAME@REVISION), or 'default' for the bundled model.")
    key = (name, revision)
    with _models_lock:
        if key in _models:
            _models[key] = _models.pop(key)
            return _models[key]
    model = PredistortModel.from_pretrained(name, revision=revision, allow_local=allow_local)
    model = model.to(backend.device()).eval()
    for p in model.parameters():
        p.requires_grad_(False)                          # shared: nobody trains it in place
    model.info = {**model.info, "source": describe_source(name, revision)}
    with _models_lock:
        _models[key] = model
        defaults = [m for m, _ in _defaults.values() if m is not None]
        while len(_models) > MAX_SHARED_MODELS:   # drop the least recently used one, never a default
            oldest = next((k for k, v in _models.items() if all(v is not d for d in defaults)), None)
            if oldest is None:
                break
            _models.pop(oldest)
    return model


def describe_source(name, revision=None):
    if name == weights.BUNDLED:
        return "the bundled pretrained model"
    if Path(name).is_dir():
        return f"the folder {name}"
    return f"the Hub repo {name}" + (f" @ {revision}" if revision else "")


_defaults: dict = {}                  # PREDISTORT_DEFAULT_WEIGHTS value -> (model or None, message)
_default_lock = threading.Lock()


def default_model(settings=None):
    """``(model or None, message)``: the model a new session starts with (loaded once per process)."""
    setting = (settings or SETTINGS).default_weights
    with _default_lock:
        if setting not in _defaults:
            _defaults[setting] = _load_default(setting)
        return _defaults[setting]


def _load_default(setting):
    name, revision = parse_model_name(setting)
    if name.lower() in ("", "none"):
        return None, "No default model is configured (PREDISTORT_DEFAULT_WEIGHTS=none)."
    if name == weights.BUNDLED and not (weights.bundled_dir() / weights.WEIGHTS_NAME).exists():
        return None, "No pretrained default is bundled with this app (weights/default is missing)."
    try:
        return shared_model(name, revision, allow_local=True), ""
    except (ValueError, OSError) as e:
        return None, f"The default model ({setting}) could not be loaded: {e}"


def warm_up(settings=None, render=True):
    """Load the default model now and, if `render`, compile the preview kernels in a background thread.

    Returns the background thread (or None). The first visitor's request then waits for no compilation
    (or only for what is left of it: renders hold the process-wide lock).
    """
    settings = settings or SETTINGS
    backend.init()
    model, _ = default_model(settings)
    if not render:
        return None

    def run():
        try:
            session = Session(settings)
            pictures = examples(settings)
            if model is not None and pictures:      # the whole path: decoding, model, both renders
                session.predistort(pictures[0], settings.preview_spp)
            else:
                import torch
                texture = torch.full((session.resolution, session.resolution, 3), 0.5)
                renderer_for(session.scene).render(texture, spp=settings.preview_spp)
        except Exception as e:       # a failed warm-up only costs the first visitor some seconds
            print(f"predistort: warm-up render failed: {e}")

    thread = threading.Thread(target=run, name="predistort-warmup", daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------------------------------------
# Time estimates
# ---------------------------------------------------------------------------------------------------------
# Measured on the project's 2-core machine (llvm_ad_rgb, torch CPU, fused Adam). One render and its backward
# pass (Renderer.loss_and_grad) cost 0.05 s + 9e-6 s per pixel + 1.1e-6 s per sample (R² × spp): 0.064 s
# at 32² spp 4, 0.11 s at 64², 0.27 s at 128² (1.2 s at spp 64). The tutorial layer adds ~0.05 s plus
# ~5e-9 s per weight for its matrix products and Adam step (R⁴ weights: 0.08 s at 64², 0.4 s at 96², 1.3 s
# at 128²); measured per iteration with one picture: 0.28 s at 64², 0.48 s at 96², 1.55 s at 128² (2.6 s
# with four). A training that ran in this process replaces the estimate at its resolution (_observed).
RENDER_S_PER_TEXTURE = 0.05
RENDER_S_PER_PIXEL = 9e-6
RENDER_S_PER_SAMPLE = 1.1e-6
TUTORIAL_S_PER_ITERATION = 0.05
TUTORIAL_S_PER_WEIGHT = 5e-9
# The generalising (unrolled) layer's own forward and backward pass: ~0.06 s per 128² picture (16 layers of
# two sparse products); probing a scene's light transport, once: 1.9 s at 64², 2.8 s at 128²; the instant
# solve, per picture: 0.03 s at 64², 0.13 s at 128².
UNROLLED_S_PER_PIXEL = 3.5e-6
PROBE_S = 1.5
PROBE_S_PER_PIXEL = 8e-5
SOLVE_S_PER_PIXEL = 8e-6
_observed: dict = {}                  # (method, resolution) -> measured / estimated s per iteration, last training
_observed_lock = threading.Lock()


def render_seconds(resolution, n_textures, spp):
    """Estimated seconds of the renders (forward + backward) of one training iteration."""
    pixels = resolution ** 2
    return n_textures * (RENDER_S_PER_TEXTURE + RENDER_S_PER_PIXEL * pixels + RENDER_S_PER_SAMPLE * spp * pixels)


def tutorial_seconds(resolution, n_textures, spp):
    """Estimated seconds per training iteration of the tutorial layer (R⁴ + R² weights)."""
    return (render_seconds(resolution, n_textures, spp) + TUTORIAL_S_PER_ITERATION
            + TUTORIAL_S_PER_WEIGHT * (resolution ** 4 + resolution ** 2))


def unrolled_seconds(resolution, n_textures, spp):
    """Estimated seconds per training iteration of the generalising layer (renders + its sparse solver)."""
    return render_seconds(resolution, n_textures, spp) + n_textures * UNROLLED_S_PER_PIXEL * resolution ** 2


def probe_seconds(resolution):
    """Estimated seconds to measure a scene's light transport (once per scene; cached afterwards)."""
    return PROBE_S + PROBE_S_PER_PIXEL * resolution ** 2


def solve_seconds(resolution, n_textures, spp):
    """Estimated seconds of the instant solve: probe (if new) + per picture a solve and one render."""
    return (probe_seconds(resolution) + n_textures * SOLVE_S_PER_PIXEL * resolution ** 2
            + render_seconds(resolution, n_textures, spp) / 3)        # a render without its backward pass


def tutorial_memory_gb(resolution):
    """Memory the tutorial layer needs while training: weights, gradients and Adam's two moments (float32)."""
    return 4 * 4 * (resolution ** 4 + resolution ** 2) / 1e9


@dataclass
class Estimate:
    """How long a training would take here, and whether the page should warn before it starts."""
    seconds_per_iteration: float
    total_seconds: float
    long: bool
    message: str                         # Markdown for the page


def format_duration(seconds):
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"


# ---------------------------------------------------------------------------------------------------------
# Methods: how a session gets a model from its pictures
# ---------------------------------------------------------------------------------------------------------
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
    base_model: object = None            # the session's current model (for methods that refine it)


@dataclass(frozen=True)
class Method:
    """One way to get a model. ``run(job) -> (model, history)``; ``history`` as predistort.train.train returns.

    ``seconds_per_iteration(resolution, n_textures, spp)`` estimates the cost here (None: renders only);
    ``memory_gb(resolution)`` the memory needed (None: small). ``iterative`` False means "instant": the
    iteration count does not apply. ``lr`` and ``iterations`` are the method's defaults.
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


_seed_lock = threading.Lock()         # torch.manual_seed is process-wide: seeding + initialising is one step


def train_layer(model_type):
    """A Method.run that trains a fresh `model_type` layer with predistort.train.train (Adam, L1).

    The generalising layer first measures the scene's light transport (cached: only a new scene is probed).
    """
    def run(job):
        from .train import Recipe, new_model, train
        with _seed_lock:                 # two trainings at once must not draw from each other's seeded RNG
            model = new_model(model_type, job.renderer, seed=job.seed)
        recipe = Recipe(iterations=job.iterations, spp=job.spp, lr=job.lr, seed=job.seed)
        history = train(model, job.renderer, job.textures, recipe, callback=job.callback, stop=job.stop)
        return model, history
    return run


def instant_solve(job):
    """Method.run of the instant solve: the scene's measured light transport as a model (no training).

    Its one history entry is what a training iteration reports: the L1 loss of each picture's solved
    texture, rendered once at the training spp (seed 0), summed over the pictures.
    """
    import torch
    import torch.nn.functional as F
    from .layers import instant_model
    from .solve import transport_for
    start = time.perf_counter()
    model = instant_model(transport_for(job.renderer.config, renderer=job.renderer)).to(job.renderer.device)
    model.eval()
    loss = 0.0
    with torch.no_grad():
        for target in job.textures:
            target = target.to(job.renderer.device)
            rendered = job.renderer.render(model(target).clamp(0, 1), spp=job.spp, seed=0)
            loss += F.l1_loss(rendered, target).item()
    history = [{"iteration": 1, "loss": loss, "seconds": time.perf_counter() - start}]
    job.callback(1, loss, history[0]["seconds"])
    return model, history


METHODS = {m.name: m for m in [
    Method("unrolled", "generalising layer (default)",
           "A 16-layer solver whose sparse layers are this scene's measured light transport, its step sizes "
           "trained through the renderer: corrects pictures it never saw (unseen photos: L1 to ~0.31× of no "
           "pre-distortion) and applies in ~0.05 s; a new scene is probed first (a few seconds), then ~30 "
           "iterations of training take seconds to a minute.",
           train_layer("unrolled"), unrolled_seconds, lr=0.02, iterations=30),
    Method("solve", "instant solve",
           "No training: measures this scene's light transport once (a few seconds, then cached) and solves "
           "each picture on it in ~0.2 s, about as well as the generalising layer (~0.30× on unseen photos); "
           "iterations, learning rate and seed do not apply.",
           instant_solve, solve_seconds, iterative=False, iterations=1),
    Method("tutorial", "tutorial layer (fully connected)",
           "The tutorial's single fully connected layer: learns exactly the pictures it is trained on (not the "
           "warp itself: it makes other pictures ~3× worse), with R⁴ weights — fast at 32², but minutes per "
           "hundred iterations and 4 GB of memory at 128² on a CPU.",
           train_layer("tutorial"), tutorial_seconds, tutorial_memory_gb),
]}
DEFAULT_METHOD = "unrolled"
REFINE_SUMMARY = ("Refinement optimises this picture's own pixels through the renderer for the seconds you "
                  "choose, starting from the model's answer, and never returns anything that scores worse than "
                  "its start. It helps most when the model is far from this picture's optimum (the tutorial "
                  "layer); the generalising layer and the instant solve are already as good as 200 steps of "
                  "per-picture optimisation, so on them it rarely finds a gain.")


def estimate(method, resolution, n_textures, iterations, spp, settings=None):
    """:class:`Estimate` of a training (seconds per iteration from measurements, refined by this process)."""
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
    long = total > settings.long_training_s
    memory = m.memory_gb(resolution) if m.memory_gb else 0.0
    where = f"{os.cpu_count()} CPU cores" if backend.device() == "cpu" else "this GPU"
    if m.iterative:
        msg = (f"Estimated **{per_it:.2f} s per iteration** × {iterations} = **{format_duration(total)}** on this "
               f"machine ({where}) for {n_textures} picture(s) at {resolution}×{resolution}, spp {spp}.")
    else:
        msg = (f"Estimated **{format_duration(total)}** on this machine ({where}) for {n_textures} picture(s) at "
               f"{resolution}×{resolution} (most of it measuring a scene not measured before).")
    if method == "unrolled":
        msg += (f" A scene not measured before is probed first: about {format_duration(probe_seconds(resolution))} "
                f"more.")
    if memory >= 1.0:
        msg += f" Needs about {memory:.1f} GB of memory."
    if long:
        msg += (f"\n\n⚠️ **This is a long training for this machine** (over {format_duration(settings.long_training_s)})."
                f" Lower the resolution, the iterations or the number of pictures for a quicker result; Stop "
                f"ends it early and keeps what was learned.")
    return Estimate(per_it, total, long, msg)


def _median_step(history):
    """Median seconds of one iteration, from the second on (the first also allocates); None if unknown."""
    if len(history) < 2:
        return history[0]["seconds"] if history else None
    steps = sorted(b["seconds"] - a["seconds"] for a, b in zip(history, history[1:]))
    return steps[len(steps) // 2]


def _record_speed(method, resolution, n_textures, spp, history):
    """Remember how fast this process really trains (median of iterations after the first)."""
    m = METHODS[method]
    if len(history) < 3:
        return
    measured = _median_step(history)
    predicted = (m.seconds_per_iteration or render_seconds)(resolution, n_textures, spp)
    if predicted > 0 and measured > 0:
        with _observed_lock:
            _observed[(method, resolution)] = measured / predicted


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Result:
    """One picture's before/after, as the page shows it."""
    name: str                            # the picture's file name
    comparison: object                   # predistort.pipeline.Comparison (tensors on the CPU, metrics)
    notes: list                          # what was done to the picture (crop, resize, ...)
    refined: dict | None = None          # refinement: seconds, steps, fixed-seed L1 before / after (None: none)

    @property
    def metrics(self):
        m = self.comparison.metrics
        out = {"texture": self.name, "resolution": int(self.comparison.target.shape[0]), "spp": int(m["spp"]),
               **{k: float(m[k]) for k in ("l1_initial", "l1_final", "psnr_initial", "psnr_final", "l1_ratio")},
               "psnr_gain_db": float(m["psnr_final"] - m["psnr_initial"]), "notes": list(self.notes)}
        if self.refined:
            out["refine"] = dict(self.refined)
        return out

    def figure(self, scale=None):
        """Side by side: render without pre-distortion, input, pre-distorted, render of the pre-distorted.

        ``scale`` enlarges each texel (nearest neighbour); default: panels about 256 pixels wide.
        """
        from .images import side_by_side
        c, m = self.comparison, self.comparison.metrics
        scale = scale or max(1, round(FIGURE_PANEL / c.target.shape[1]))
        return side_by_side(
            [c.initial, c.target, c.predistorted, c.final],
            ["Render, no pre-distortion", f"Input: {_short(self.name)}", "Pre-distorted texture",
             "Render of the pre-distorted"],
            [f"L1 {m['l1_initial']:.4f} · PSNR {m['psnr_initial']:.1f} dB", "target", "what goes on the plane",
             f"L1 {m['l1_final']:.4f} · PSNR {m['psnr_final']:.1f} dB"], scale=scale)


FIGURE_PANEL = 256                    # pixels: width of each panel of a comparison figure (texels enlarged)


def _short(name, n=24):
    return name if len(name) <= n else name[: n - 1] + "…"


def stack_figures(images, background=(255, 255, 255)):
    """One PIL image: the given PIL images one below the other."""
    from PIL import Image
    width = max(im.width for im in images)
    out = Image.new("RGB", (width, sum(im.height for im in images)), background)
    y = 0
    for im in images:
        out.paste(im.convert("RGB"), (0, y))
        y += im.height
    return out


@dataclass
class TrainEvent:
    """What the training generator yields: progress after each iteration, then one final event."""
    iteration: int
    total: int
    loss: float | None
    elapsed: float
    eta: float | None                    # seconds left (None before the first iteration)
    history: list                        # [{"iteration", "loss", "seconds"}] so far
    done: bool = False
    stage: str = "training"              # "starting" | "waiting" | "training" | "evaluating" | "done"
    weights_zip: str | None = None       # final event: the trained weights (safetensors + config.json), zipped
    metrics: dict | None = None          # final event: see Session.train
    results: list = field(default_factory=list)

    @property
    def fraction(self):
        return 1.0 if self.done else (self.iteration / self.total if self.total else 0.0)

    def html(self):
        """A progress bar with the description, for the page (plain HTML, no script)."""
        import html
        return (f'<div class="train-progress"><progress value="{self.fraction:.4f}" max="1" style="width:100%">'
                f'{100 * self.fraction:.0f}%</progress><div>{html.escape(self.description)}</div></div>')

    @property
    def description(self):
        if self.stage == "starting":
            return "Starting: building the model and the scene (a scene not seen before is measured first)…"
        if self.stage == "waiting":
            return "Waiting for the previous training on this server to end…"
        if self.stage == "evaluating":
            return "Evaluating the trained model on the pictures…"
        if self.done:
            return f"Done: {self.iteration} iterations in {format_duration(self.elapsed)}"
        loss = f" · loss {self.loss:.4f}" if self.loss is not None else ""
        eta = f" · {format_duration(self.eta)} left" if self.eta is not None else ""
        return f"Iteration {self.iteration}/{self.total}{loss}{eta}"


# ---------------------------------------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------------------------------------
class Session:
    """One visitor's model, scene, results and training; created by ``gr.State`` (a deep copy per visitor).

    A deep copy is a *new, independent* session with the same settings: it starts from the default model
    (shared, read-only) and shares nothing mutable with the original.
    """

    def __init__(self, settings=None):
        self.settings = settings or SETTINGS
        self._model, self.model_note = None, ""
        self._started = False            # the default model is attached on first use, not at construction
        self.model_source = ""           # where the model came from, in words
        self.scene = DEFAULT             # the scene the model is meant for; renders use it
        self.results: list[Result] = []  # the last pre-distortion / comparison / training evaluation
        self.history: list = []          # loss history of the last training in this session
        self.last_train: dict = {}       # options and outcome of the last training
        self._stop = threading.Event()
        self._train_lock = threading.Lock()
        self._dir = None                 # this session's temporary folder (weights, figures)

    def __deepcopy__(self, memo):
        return Session(self.settings)

    @property
    def model(self):
        """This session's model (the default one until the visitor trains or loads another), or None."""
        if not self._started:
            self._started = True
            model, note = default_model(self.settings)
            try:
                if model is not None:
                    self._use(model, model.info.get("source", "the default model"))
                else:
                    self.model_note = note or ""
            except ValueError as e:
                self._model, self.model_note = None, f"The default model cannot be used: {e}"
        return self._model

    @model.setter
    def model(self, value):
        self._started = True
        self._model = value

    # -- housekeeping -------------------------------------------------------------------------------------
    @property
    def folder(self):
        if self._dir is None or not Path(self._dir).is_dir():
            self._dir = tempfile.mkdtemp(prefix="predistort-session-")
        return Path(self._dir)

    def close(self):
        """Free this session's model and files (called when Gradio drops the session)."""
        self._stop.set()
        self.model, self.results, self.history = None, [], []
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def resolution(self):
        return self.model.resolution if self.model is not None else self.scene.resolution

    @property
    def training(self):
        return self._train_lock.locked()

    def _use(self, model, source):
        """Make `model` this session's model, with the scene it was made for."""
        scene = DEFAULT.replace(resolution=model.resolution)
        recorded = (model.info or {}).get("scene")
        if recorded:
            try:
                scene = SceneConfig.from_dict(recorded).replace(resolution=model.resolution)
            except (ValueError, TypeError) as e:
                raise ServiceError(f"The model's config.json records a scene that cannot be used: {e}") from None
        weights.check_compatible(model, scene)
        self.model, self.model_source, self.scene, self.model_note = model, source, scene, ""

    def status(self):
        """Markdown: which model this session uses, for which scene; or how to get one."""
        if self.model is None:
            note = self.model_note or "No model yet."
            return (f"**No model yet.** {note} Train one in *Several pictures · train*, or load weights from "
                    f"the Hugging Face Hub in *Load a model*.")
        s = self.scene
        trained = self.last_train.get("summary") if self.model_source == "trained in this session" else None
        source = self.model_source if self.model_source.startswith("trained") else "from " + self.model_source
        return (f"**Model:** `{self.model.model_type}`, {self.model.resolution}×{self.model.resolution}, "
                f"{source}{' (' + trained + ')' if trained else ''} · **scene:** glass sphere IOR "
                f"{s.sphere_ior:g}, radius {s.sphere_radius:g} · renderer `{backend.init()}`"
                + (" · *training…*" if self.training else ""))

    def _require_model(self):
        if self.model is None:
            raise ServiceError((self.model_note + " " if self.model_note else "") +
                               "There is no model to pre-distort with yet: train one on your pictures, or load "
                               "weights from the Hugging Face Hub.")
        return self.model

    # -- pictures ---------------------------------------------------------------------------------------------
    def prepare(self, sources, resolution=None, fit="crop"):
        """Load uploaded pictures as textures: ``[(name, tensor [R,R,3], notes)]`` at `resolution`.

        `sources` are file paths (uploads) or a single path; at most ``max_textures`` of them, each at
        most ``max_upload_mb``. Raises ServiceError / ImageError naming the picture at fault.
        """
        from .images import ImageError, prepare_texture
        if sources is None or sources == "" or sources == []:
            raise ServiceError("No picture given: upload one or several images, or pick an example.")
        if isinstance(sources, (str, os.PathLike)) or not isinstance(sources, (list, tuple)):
            sources = [sources]
        sources = [s for s in sources if s is not None]
        if not sources:
            raise ServiceError("No picture given: upload one or several images, or pick an example.")
        if len(sources) > self.settings.max_textures:
            raise ServiceError(f"{len(sources)} pictures given; this app takes at most {self.settings.max_textures} "
                               f"at once (PREDISTORT_MAX_TEXTURES).")
        if fit not in ("crop", "resize", "exact"):
            raise ServiceError(f"fit must be 'crop' or 'resize' (or 'exact'), not {fit!r}.")
        resolution = resolution or self.resolution
        out = []
        for source in sources:
            name = _source_name(source)
            if isinstance(source, (str, os.PathLike)):
                path = Path(source)
                if not path.is_file():
                    raise ServiceError(f"{name}: the uploaded file is missing on the server; upload it again.")
                size_mb = path.stat().st_size / 1e6
                if size_mb > self.settings.max_upload_mb:
                    raise ServiceError(f"{name} is {size_mb:.1f} MB; pictures of at most "
                                       f"{self.settings.max_upload_mb:g} MB are accepted (PREDISTORT_MAX_UPLOAD_MB).")
            try:
                texture, notes = prepare_texture(source, resolution, fit=fit)
            except ImageError as e:
                raise ImageError(f"{name}: {e}") from None
            out.append((name, texture, list(notes)))
        return out

    # -- pre-distortion -------------------------------------------------------------------------------------
    def _check_spp(self, spp, what="spp"):
        if spp is None or (isinstance(spp, float) and not math.isfinite(spp)):
            raise ServiceError(f"{what} must be a whole number of samples per pixel.")
        if not _is_whole(spp, 1, self.settings.max_spp):
            raise ServiceError(f"{what} must be a whole number from 1 to {self.settings.max_spp}, got {spp!r}.")
        return int(float(spp))

    def _check_refine(self, seconds):
        if seconds is None or seconds == "":
            return 0.0
        limit = self.settings.max_refine_s
        if not (_is_number(seconds) and not isinstance(seconds, str) and math.isfinite(seconds)
                and 0 <= seconds <= limit):
            raise ServiceError(f"refine must be a number of seconds from 0 (off) to {limit:g} (the limit of this "
                               f"app, PREDISTORT_MAX_REFINE_S), got {seconds!r}.")
        return float(seconds)

    def _compare_tensor(self, texture, spp, name, notes=(), model=None, scene=None, refine=0.0):
        from .pipeline import apply_model, compare
        model = self._require_model() if model is None else model
        renderer = renderer_for(scene or self.scene)
        refined = None
        try:
            predistorted = apply_model(model, texture)
            if refine > 0:
                # Per-picture refinement through the renderer, from the model's answer (kept unless a
                # fixed-seed render of the candidate is 1% better: never worse than the model's).
                from .refine import refine as refine_texture
                r = refine_texture(renderer, texture, predistorted, seconds=refine)
                predistorted = r.texture
                refined = {"seconds": round(r.seconds, 2), "steps": r.steps, "l1_start": r.start_loss,
                           "l1": r.loss, "eval": "fixed-seed renders at spp 64"}
            comparison = compare(renderer, texture, predistorted, spp=spp, seed=0)
        except Exception:
            discard_renderer(renderer)
            raise
        return Result(name, comparison, list(notes), refined)

    def predistort(self, source, spp=None, fit="crop", refine=0.0):
        """Pre-distort one picture with this session's model, then (``refine`` > 0) refine it through the
        renderer for up to that many seconds; returns a :class:`Result` (also kept as last)."""
        spp = self._check_spp(self.settings.preview_spp if spp is None else spp)
        refine = self._check_refine(refine)
        self._require_model()
        ((name, texture, notes),) = self.prepare([source] if source is not None else [], fit=fit)
        result = self._compare_tensor(texture, spp, name, notes, refine=refine)
        self.results = [result]
        return result

    def compare(self, sources, spp=None, fit="crop"):
        """Pre-distort several pictures; returns the list of :class:`Result` (also kept as last)."""
        spp = self._check_spp(self.settings.preview_spp if spp is None else spp)
        self._require_model()
        results = [self._compare_tensor(t, spp, name, notes) for name, t, notes in self.prepare(sources, fit=fit)]
        self.results = results
        return results

    # -- scenes ----------------------------------------------------------------------------------------------
    def scene_report(self, sphere_ior, sphere_radius, resolution=None):
        """Markdown: for the scene with this sphere, which ways of pre-distorting still apply, and what each
        needs (a probe of the light transport, a training) before it does."""
        from .solve import applies, is_probed
        resolution = resolution if resolution not in (None, "") else self.resolution
        if not _is_whole(resolution, 8, self.settings.max_resolution):
            raise ServiceError(f"resolution must be a whole number from 8 to {self.settings.max_resolution}, "
                               f"got {resolution!r}.")
        scene = self.training_scene(int(float(resolution)), sphere_ior, sphere_radius)
        probed = is_probed(scene)
        probe = ("already measured" if probed else
                 f"measured first, about {format_duration(probe_seconds(scene.resolution))}")
        lines = [f"**Scene: sphere IOR {scene.sphere_ior:g}, radius {scene.sphere_radius:g}, "
                 f"{scene.resolution}×{scene.resolution}.**"]
        if self.model is not None:
            ok, reason = applies(self.model, scene)
            lines.append(f"- {'✅' if ok else '⚠️'} **Your current model** ({self.model.model_type}): {reason}")
        lines += [
            f"- **Generalising layer**: made for one scene; *Train* with it uses this scene's light transport "
            f"({probe}) and trains for it.",
            f"- **Instant solve**: needs this scene's light transport ({probe}); *Train* with it takes no further "
            f"training.",
            "- **Tutorial layer**: fits one scene and its training pictures: *Train* it again for this scene.",
            "- ✅ **Refinement**: always applies (it renders the scene itself), from whichever model is in use.",
        ]
        same = self.model is not None and applies(self.model, scene)[0]
        if not same:
            lines.append("\nPictures are pre-distorted for the scene of the model in use until a model is trained "
                         "for this one.")
        return "\n".join(lines)

    # -- models ----------------------------------------------------------------------------------------------
    def load_pretrained(self, name="default"):
        """Use a pretrained model: "default" (or empty) for the bundled one, or a Hub repo USER/NAME[@REVISION].

        Returns the new status line. The model is shared read-only between sessions that load it.
        """
        name, revision = parse_model_name(name or weights.BUNDLED)
        if name == weights.BUNDLED:
            setting, setting_rev = parse_model_name(self.settings.default_weights)
            model, note = default_model(self.settings)
            if model is None:
                raise ServiceError(note or "No pretrained default is available.")
            source = model.info.get("source", describe_source(setting, setting_rev))
        else:
            model = shared_model(name, revision)
            source = model.info.get("source", describe_source(name, revision))
        if self.training:
            raise ServiceError("A training is running in this session: stop it first, then load another model.")
        self._use(model, source)
        self.results = []
        return self.status()

    # -- training --------------------------------------------------------------------------------------------
    def training_scene(self, resolution, sphere_ior, sphere_radius):
        for what, value in (("sphere_ior", sphere_ior), ("sphere_radius", sphere_radius)):
            if not _is_number(value):
                raise ServiceError(f"{what} must be a number, got {value!r}.")
        try:
            return DEFAULT.replace(resolution=int(resolution), sphere_ior=float(sphere_ior),
                                   sphere_radius=float(sphere_radius))
        except (ValueError, TypeError) as e:
            raise ServiceError(str(e)) from None

    def check_train_options(self, method, iterations, spp, resolution, seed, lr):
        s = self.settings
        if not isinstance(method, str) or method not in METHODS:
            raise ServiceError(f"Unknown method '{method}'; choose one of: {', '.join(METHODS)}.")
        for what, value, lo, hi in (("iterations", iterations, 1, s.max_iterations), ("spp", spp, 1, s.max_spp),
                                    ("resolution", resolution, 8, s.max_resolution), ("seed", seed, 0, 2 ** 31 - 1)):
            if not _is_whole(value, lo, hi):
                raise ServiceError(f"{what} must be a whole number from {lo} to {hi}, got {value!r}"
                                   + (" (the limit of this app)." if what != "seed" else "."))
        if lr is None:
            lr = METHODS[method].lr
        if not (_is_number(lr) and not isinstance(lr, str) and math.isfinite(lr) and 0 < lr <= 1):
            raise ServiceError(f"learning rate must be a number in (0, 1], got {lr!r}.")
        return method, int(float(iterations)), int(float(spp)), int(float(resolution)), int(float(seed)), float(lr)

    def stop(self):
        """Ask the running training to end after its current iteration (it keeps what it learned)."""
        running = self.training
        self._stop.set()
        return "Stopping after the current iteration; what was learned is kept." if running else "No training is running."

    def train(self, sources, method=DEFAULT_METHOD, iterations=100, spp=4, resolution=128, seed=0,
              sphere_ior=None, sphere_radius=None, lr=None, fit="crop") -> Iterator[TrainEvent]:
        """Train a model on `sources`; a generator of :class:`TrainEvent` (progress, then one final event).

        The work runs in a thread of its own: closing the generator (a visitor leaving) stops the training
        after the current iteration, and the session still keeps what was learned. The final event carries
        ``weights_zip`` and ``metrics``: method, iterations_run, stopped, seconds, first/final loss,
        per-picture before/after (L1, PSNR) at the preview spp, and their means. ``lr`` None: the method's
        default (:data:`METHODS`). A scene (IOR, radius, resolution) not measured before is probed first by
        the methods that use its light transport.
        """
        method, iterations, spp, resolution, seed, lr = self.check_train_options(
            method, iterations, spp, resolution, seed, lr)
        scene = self.training_scene(resolution, DEFAULT.sphere_ior if sphere_ior is None else sphere_ior,
                                    DEFAULT.sphere_radius if sphere_radius is None else sphere_radius)
        prepared = self.prepare(sources, resolution=resolution, fit=fit)
        m = METHODS[method]
        iterations = iterations if m.iterative else 1
        if not self._train_lock.acquire(blocking=False):
            raise ServiceError("A training is already running in this session; stop it or wait for it.")
        self._stop.clear()
        abandoned = threading.Event()    # the consumer went away: nobody waits for the evaluation
        slots = training_slots(self.settings.train_concurrency)
        events: queue.Queue = queue.Queue()
        options = {"method": method, "iterations": iterations, "spp": spp, "resolution": resolution, "seed": seed,
                   "lr": lr, "sphere_ior": scene.sphere_ior, "sphere_radius": scene.sphere_radius, "fit": fit,
                   "textures": [name for name, _, _ in prepared]}

        def work():
            renderer, slot, waiting = None, False, False
            try:
                while not slot:              # a cancelled training may still be ending its last iteration
                    slot = slots.acquire(timeout=0.25)
                    if not slot and self._stop.is_set():
                        raise ServiceError("Stopped before the training started (it was waiting for the "
                                           "previous training on this server to end).")
                    if not slot and not waiting:
                        waiting = True
                        events.put(TrainEvent(0, iterations, None, 0.0, None, [], stage="waiting"))
                start = time.perf_counter()
                history = []

                def callback(i, loss, elapsed):
                    history.append({"iteration": i, "loss": loss, "seconds": elapsed})
                    eta = elapsed / i * (iterations - i)
                    events.put(TrainEvent(i, iterations, loss, elapsed, eta, list(history)))

                renderer = renderer_for(scene)
                job = TrainJob(renderer, [t for _, t, _ in prepared], iterations, spp, seed, lr, callback,
                               self._stop, base_model=self.model)
                model, history = m.run(job)
                history = list(history or [])
                elapsed = time.perf_counter() - start
                if abandoned.is_set():       # keep what was learned, skip the renders nobody will see
                    model.eval()
                    self.model, self.model_source, self.scene = model, "trained in this session", scene
                    self.model_note, self.history, self.results = "", history, []
                    self.last_train = {**options, "summary": _summary(method, history, prepared), "weights_zip": None}
                    return
                events.put(TrainEvent(len(history), iterations, history[-1]["loss"] if history else None,
                                      elapsed, 0.0, history, stage="evaluating"))
                model.eval()
                _record_speed(method, resolution, len(prepared), spp, history)
                results = [self._compare_tensor(t, self.settings.preview_spp, name, notes, model=model, scene=scene)
                           for name, t, notes in prepared]
                metrics = _train_metrics(options, history, results, elapsed, self._stop.is_set(), iterations)
                model.info = {"scene": scene.to_dict(),
                              "recipe": {**{k: v for k, v in options.items() if k not in ("sphere_ior", "sphere_radius")},
                                         "iterations_run": len(history), "loss": "l1", "trained_with": "predistort app"},
                              "metrics": {k: metrics[k] for k in ("final_train_loss", "l1_initial_mean",
                                                                  "l1_final_mean", "psnr_initial_mean",
                                                                  "psnr_final_mean") if k in metrics}}
                zip_path = self._save_trained(model, history)
                # Adopt: from now on this session (only) uses the new model.
                self.model, self.model_source, self.scene, self.model_note = model, "trained in this session", scene, ""
                self.history, self.results = history, results
                self.last_train = {**options, "summary": _summary(method, history, prepared), "weights_zip": zip_path}
                events.put(TrainEvent(len(history), iterations, metrics.get("final_train_loss"), elapsed, 0.0,
                                      history, done=True, stage="done", weights_zip=zip_path, metrics=metrics,
                                      results=results))
            except MemoryError:
                events.put(ServiceError(_OUT_OF_MEMORY.format(resolution=resolution)))
            except RuntimeError as e:
                if renderer is not None:
                    discard_renderer(renderer)
                out_of_memory = "can't allocate memory" in str(e) or "out of memory" in str(e).lower()
                events.put(ServiceError(_OUT_OF_MEMORY.format(resolution=resolution)) if out_of_memory else e)
            except BaseException as e:   # handed to the generator, which raises it in the caller's thread
                if renderer is not None and not isinstance(e, ValueError):
                    discard_renderer(renderer)
                events.put(e)
            finally:
                if slot:
                    slots.release()
                self._train_lock.release()

        worker = threading.Thread(target=work, name="predistort-train", daemon=True)
        worker.start()
        try:
            yield TrainEvent(0, iterations, None, 0.0, None, [], stage="starting")
            while True:
                event = events.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if event.done:
                    return
        finally:
            if worker.is_alive():
                abandoned.set()
                self._stop.set()       # the consumer went away: end after this iteration, keep the model

    def _save_trained(self, model, history):
        """Save the model (+ history, loss curve) in this session's folder and zip it; returns the zip path."""
        from .train import save_history
        folder = self.folder / "weights"
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(folder)
        if history:
            save_history(history, folder, title=f"{model.model_type} model, trained in the predistort app")
        return _zip_folder(folder, self.folder / "predistort-weights.zip")

    # -- export ------------------------------------------------------------------------------------------------
    def export(self):
        """``(weights zip path, comparison figure path or None)`` of this session's model and last results."""
        model = self._require_model()
        folder = self.folder
        if self.model_source == "trained in this session" and self.last_train.get("weights_zip") \
                and Path(self.last_train["weights_zip"]).is_file():
            zip_path = self.last_train["weights_zip"]
        else:
            target = folder / "weights"
            shutil.rmtree(target, ignore_errors=True)
            model.save_pretrained(target)
            zip_path = _zip_folder(target, folder / "predistort-weights.zip")
        figure = None
        if self.results:
            figure = folder / "predistort-comparison.png"
            stack_figures([r.figure() for r in self.results]).save(figure)
            figure = str(figure)
        return zip_path, figure


_OUT_OF_MEMORY = ("This machine ran out of memory training at {resolution}×{resolution}: lower the resolution "
                  "(the tutorial layer needs 16·R⁴ bytes: 4.3 GB at 128², 0.27 GB at 64²) or try again later.")


def _is_number(value):
    """True for an int, a float or a string that reads as one (a value from a web form); never for a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_whole(value, lo, hi):
    """True if `value` (see _is_number) is a whole number from lo to hi."""
    if not _is_number(value):
        return False
    x = float(value)
    return math.isfinite(x) and x.is_integer() and lo <= x <= hi


def _source_name(source):
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return getattr(source, "filename", None) or type(source).__name__


def _zip_folder(folder, zip_path):
    zip_path = Path(zip_path)
    tmp = zip_path.with_suffix(".part")
    with zipfile.ZipFile(tmp, "w") as z:
        for p in sorted(Path(folder).iterdir()):
            if p.is_file():   # weights are float noise to a compressor: stored as they are (fast at 1 GB)
                z.write(p, arcname=p.name, compress_type=zipfile.ZIP_STORED if p.suffix in (".safetensors", ".png")
                        else zipfile.ZIP_DEFLATED)
    tmp.replace(zip_path)
    return str(zip_path)


def _summary(method, history, pictures):
    m = METHODS[method]
    if not m.iterative:
        return f"{m.label}, for {len(pictures)} picture(s)"
    return f"{m.label}, {len(history)} iterations on {len(pictures)} picture(s)"


def _train_metrics(options, history, results, elapsed, stopped, iterations):
    per = [r.metrics for r in results]
    mean = lambda key: sum(m[key] for m in per) / len(per)     # noqa: E731
    out = {"method": options["method"], "iterations": iterations, "iterations_run": len(history),
           "stopped": bool(stopped and len(history) < iterations), "seconds": elapsed,
           "seconds_per_iteration": elapsed / len(history) if history else None,
           "seconds_per_iteration_median": _median_step(history),
           "first_train_loss": history[0]["loss"] if history else None,
           "final_train_loss": history[-1]["loss"] if history else None,
           "resolution": options["resolution"], "spp": options["spp"], "eval_spp": per[0]["spp"] if per else None,
           "scene": {"sphere_ior": options["sphere_ior"], "sphere_radius": options["sphere_radius"]},
           "textures": per}
    if per:
        out.update({f"{k}_mean": mean(k) for k in ("l1_initial", "l1_final", "psnr_initial", "psnr_final")})
    return out


def history_table(history):
    """The loss history as a pandas DataFrame (iteration, loss) for a line plot."""
    import pandas as pd
    return pd.DataFrame({"iteration": [h["iteration"] for h in history], "loss": [h["loss"] for h in history]})


def metrics_markdown(metrics):
    """One line of Markdown for a Result's metrics."""
    return (f"**{metrics['texture']}** at {metrics['resolution']}×{metrics['resolution']}, spp {metrics['spp']}: "
            f"without pre-distortion L1 **{metrics['l1_initial']:.4f}**, PSNR **{metrics['psnr_initial']:.2f} dB** → "
            f"with it L1 **{metrics['l1_final']:.4f}**, PSNR **{metrics['psnr_final']:.2f} dB** "
            f"({metrics['psnr_gain_db']:+.2f} dB)" + _refine_markdown(metrics.get("refine")))


def _refine_markdown(refined):
    if not refined:
        return ""
    return (f"; refined for {refined['seconds']:.1f} s ({refined['steps']} steps): fixed-seed spp-64 L1 "
            f"{refined['l1_start']:.4f} → {refined['l1']:.4f}")


def notes_markdown(results_or_notes):
    """Markdown list of what was done to the pictures (crop / resize notes)."""
    lines = []
    for item in results_or_notes:
        name, notes = (item.name, item.notes) if isinstance(item, Result) else item
        lines += [f"- {name}: {n}" for n in notes]
    return "\n".join(lines)


__all__ = ["Settings", "SETTINGS", "Session", "ServiceError", "Method", "METHODS", "DEFAULT_METHOD", "Estimate",
           "estimate", "examples", "renderer_for", "shared_model", "default_model", "warm_up", "TrainEvent",
           "Result", "history_table", "metrics_markdown", "notes_markdown", "format_duration", "REFINE_SUMMARY"]
