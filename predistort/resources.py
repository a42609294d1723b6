"""What every session of the app shares: renderers per scene, pretrained models, training slots, the warm-up.

Everything here is expensive to build and read-only once built, so the whole process shares it:

* renderers, one per scene config (building a Mitsuba scene costs time; :func:`renderer_for`); all Dr.Jit
  work is serialised by :data:`predistort.backend.RENDER_LOCK` inside them;
* pretrained models — the bundled default and Hub downloads (:func:`shared_model`). Nobody changes a
  shared model in place: a session that trains always builds a new model of its own;
* the semaphore that bounds trainings running at once (:func:`training_slots`).

:func:`warm_up` loads the default model at start and compiles the preview kernels in the background, so the
first visitor waits for neither.
"""
from __future__ import annotations

import gc
import threading
from pathlib import Path

from . import backend, hub, weights
from .scene import DEFAULT, SceneConfig
from .settings import SETTINGS, ServiceError, examples

# ---------------------------------------------------------------------------------------------------------
# Renderers
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
    dispatches every texture / BSDF call over *all* live scene objects of the process: one scene left with
    a broken texture makes every later render fail, in every scene, until that scene is freed. So a failed
    renderer is dropped from the cache (and collected before the next render).
    """
    global _renderer_discarded
    with _renderers_lock:
        for key in [k for k, v in _renderers.items() if v is renderer]:
            del _renderers[key]
        _renderer_discarded = True


# ---------------------------------------------------------------------------------------------------------
# Training slots
# ---------------------------------------------------------------------------------------------------------
_train_slots: dict = {}               # train_concurrency -> semaphore: training threads running at once
_train_slots_lock = threading.Lock()


def training_slots(limit):
    """The process-wide semaphore that lets at most `limit` training threads run at once.

    Gradio's queue already runs at most PREDISTORT_TRAIN_CONCURRENCY /train events at once, but a cancelled
    or abandoned event frees its queue slot at once while its thread still ends its current iteration: this
    keeps that thread and the next training from overlapping (the tutorial layer alone needs gigabytes).
    """
    with _train_slots_lock:
        return _train_slots.setdefault(limit, threading.BoundedSemaphore(limit))


# ---------------------------------------------------------------------------------------------------------
# Pretrained models
# ---------------------------------------------------------------------------------------------------------
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


def shared_model(name, revision=None, *, allow_local=False, token=None):
    """A pretrained model: ``"default"``, a Hub repo id, or (``allow_local`` only) a folder.

    Folders are accepted only with ``allow_local`` (the server's own settings), never from a visitor: a
    visitor's string must not probe the server's file system. A visitor's load (``allow_local`` False) never
    uses the server's HF_TOKEN — only ``token``, the visitor's own OAuth token when they signed in — and its
    size is read from the Hub's metadata and bounded (PREDISTORT_MAX_MODEL_MB) before anything is
    downloaded (:mod:`predistort.hub`). Models are shared read-only by every session that loads them, except
    a private repo loaded with a visitor's token: that one is that visitor's alone, never cached here.
    Raises ``WeightsError``.
    """
    from .layers import PredistortModel
    name = name.strip()
    remote = None
    if name != weights.BUNDLED and not allow_local:
        remote = hub.inspect_remote(f"{name}@{revision}" if revision else name, token=hub.visitor_token(token),
                                    max_bytes=hub.max_model_bytes(SETTINGS.max_resolution, SETTINGS.max_model_mb))
    key = (name, revision) if remote is None else (remote.repo_id, remote.commit)
    shared = remote is None or not remote.private
    with _models_lock:
        if shared and key in _models:
            _models[key] = _models.pop(key)
            return _models[key]
    if remote is not None:
        model = hub.load_remote(remote, token=hub.visitor_token(token))
    else:
        model = PredistortModel.from_pretrained(name, revision=revision, allow_local=allow_local)
    model = model.to(backend.device()).eval()
    for p in model.parameters():
        p.requires_grad_(False)                          # shared: nobody trains it in place
    model.info = {**model.info, "source": describe_source(name, revision)}
    if not shared:
        return model
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
    """Where a model came from, in words."""
    if name == weights.BUNDLED:
        return "the bundled pretrained model"
    if Path(name).is_dir():
        return f"the folder {name}"
    return f"the Hub repo {name}" + (f" @ {revision}" if revision else "")


def model_scene(model):
    """The scene `model` was made for (:func:`predistort.weights.scene_of`): the one its config records (at
    its resolution), else the tutorial's.

    Raises ServiceError if the recorded scene cannot be used, WeightsError if the model does not fit it.
    """
    try:
        scene = weights.scene_of(model)
    except weights.WeightsError as e:
        raise ServiceError(str(e)) from None
    weights.check_compatible(model, scene)
    return scene


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


# ---------------------------------------------------------------------------------------------------------
# Warm-up
# ---------------------------------------------------------------------------------------------------------
FIRST_VIEW = {}          # the page's first view, made by the warm-up: {"picture": path, "comparison": Comparison}
FIRST_VIEW_MADE = threading.Event()   # set when the warm-up has made it, or has ended without it
WARMING_UP = threading.Event()        # a warm-up render has started: a first view is coming


def first_view(wait_s=0.0):
    """``(picture path, Comparison)`` of the first example pre-distorted by the default model, made by
    :func:`warm_up` (at the model's resolution first, then at the page's); None until it is made (waiting
    up to `wait_s` for it), or when there is no model or no example."""
    if WARMING_UP.is_set():
        FIRST_VIEW_MADE.wait(wait_s)
    made = dict(FIRST_VIEW)
    return (made["picture"], made["comparison"]) if made else None


def warm_up(settings=None, render=True):
    """Load the default model now and, if `render`, compile the preview kernels in a background thread, at the
    model's resolution and then at the page's resolution for a new picture (``Settings.page_resolution``:
    that resolution's light transport is probed then, not in the first visitor's request).

    Returns the background thread (or None). The first visitor's request then waits for no compilation
    (or only for what is left of it: renders hold the process-wide lock). The last pre-distortion, rendered
    with the full preview samples (not the fewer a large picture's renders get), is the page's first view
    (:func:`first_view`).
    """
    settings = settings or SETTINGS
    backend.init()
    model, _ = default_model(settings)
    if not render:
        return None

    def run():
        import torch
        try:
            pictures = examples(settings)
            if model is not None and pictures:      # the whole path: decoding, model, both renders
                from .images import prepare_texture
                from .pipeline import predistort
                from .layers import for_scene
                scene = model_scene(model)
                texture, _ = prepare_texture(pictures[0], model.resolution, fit="crop")
                made = predistort(renderer_for(scene), texture, model, spp=settings.preview_spp)
                FIRST_VIEW.update(picture=str(pictures[0]), comparison=made)
                FIRST_VIEW_MADE.set()
                page = settings.page_resolution()
                if page and page != model.resolution:       # a new picture's resolution: probe it now
                    scene = scene.replace(resolution=page)
                    texture, _ = prepare_texture(pictures[0], page, fit="crop")
                    made = predistort(renderer_for(scene), texture,
                                      for_scene(model, scene, renderer=renderer_for(scene)), spp=settings.preview_spp)
                FIRST_VIEW.update(picture=str(pictures[0]), comparison=made)
            else:
                scene = DEFAULT if model is None else model_scene(model)
                texture = torch.full((scene.resolution, scene.resolution, 3), 0.5)
                renderer_for(scene).render(texture, spp=settings.preview_spp)
        except Exception as e:       # a failed warm-up only costs the first visitor some seconds
            print(f"predistort: warm-up render failed: {e}")
        FIRST_VIEW_MADE.set()        # made or not, no page load waits for it any longer

    WARMING_UP.set()
    thread = threading.Thread(target=run, name="predistort-warmup", daemon=True)
    thread.start()
    return thread
