"""One visitor's session of the web app — their model, scene, results and training — without Gradio.

``app.py`` lays out the page and wires each event to a :class:`Session` (one per browser tab or API client,
kept in a ``gr.State``). What one visitor trains or loads never reaches another; what is expensive and
read-only (renderers, pretrained models) is shared through :mod:`predistort.resources`. The ways to get a
model are :data:`predistort.methods.METHODS`; limits are :mod:`predistort.settings`; how results read is
:mod:`predistort.report`.

Every user mistake raises :class:`~predistort.settings.ServiceError` (or another ``ValueError``:
``ImageError``, ``WeightsError``) whose message says what is wrong and what to do; the app shows it as
``gr.Error``.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from . import backend, weights
from .glass import RealGlass
from .keep import LEDGER, clear, model_nbytes, store
from .report import Result, stack_figures
from .resources import (default_model, describe_source, discard_renderer, model_scene, parse_model_name,
                        renderer_for, shared_model)
from .scene import DEFAULT
from .trainer import TRAINED_HERE, Training
from .settings import SETTINGS, ServiceError, check_whole, is_number

class Session(RealGlass, Training):
    """One visitor's model, scene, results and training; created by ``gr.State`` (a deep copy per visitor).
    The Real object tab's actions (setup, advice, placement, print, calibration) are :class:`RealGlass`'s, the
    training's (in a thread of its own) :class:`Training`'s.

    A deep copy is a *new, independent* session with the same settings: it starts from the default model
    (shared, read-only) and shares nothing mutable with the original.
    """

    def __init__(self, settings=None):
        self.settings = settings or SETTINGS
        self._model, self.model_note = None, ""
        self._started = False            # the default model is attached on first use, not at construction
        self.model_source = ""           # where the model came from, in words
        self.scene = DEFAULT             # the scene the model is meant for; renders use it
        self._kept = []                  # the last results, on disk (predistort.keep.StoredResult): see results
        self._spilled = None             # folder of this session's own model while it waits on disk
        self.keep_note = ""              # what the server's budget did to this session while it was idle
        self.history: list = []          # loss history of the last training in this session
        self.last_train: dict = {}       # options and outcome of the last training
        self._stop = threading.Event()
        self._train_lock = threading.Lock()
        self._dir = None                 # this session's temporary folder (weights, figures)
        self.advice = None               # the advisor's last answer (predistort.advise.Advice)
        self.placement = None            # how precisely the camera will be placed (a Tolerance; None: exactly)
        LEDGER.touch(self)

    def __deepcopy__(self, memo):
        return Session(self.settings)

    @property
    def model(self):
        """This session's model (the default one until the visitor trains or loads another), or None. A model
        of its own that the server's budget moved to disk while the session was idle is read back first."""
        LEDGER.touch(self)
        if self._model is None and self._spilled is not None:
            self._reload_model()
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
        self._model, self._spilled = value, None
        self._account()

    # -- what the session keeps while its visitor is away (predistort.keep) ----------------------------------
    @property
    def results(self):
        """The last pre-distortion / comparison / training evaluation (Results), read back from this session's
        folder; [] when there are none, or when the server's budget released them (``keep_note`` says so)."""
        LEDGER.touch(self)
        loaded = [s.load() for s in self._kept]
        return [r for r in loaded if r is not None]

    @results.setter
    def results(self, results):
        self._kept = store(results, self.folder / "results") if results or self._kept else []
        if results:
            self.keep_note = ""
        self._account()

    def _owns_model(self):
        return self._model is not None and self.model_source == TRAINED_HERE

    def _account(self):
        """Tell the server's ledger what this session holds now (its own model, its results' files)."""
        s = self.settings
        LEDGER.update(self, model_nbytes(self._model) if self._owns_model() else 0,
                      sum(k.nbytes for k in self._kept), s.session_models_mb * 1e6, s.results_disk_mb * 1e6)

    def spill_model(self):
        """Move this session's own model to its folder (safetensors), out of memory; read back on next use."""
        if not self._owns_model():
            return
        folder = self.folder / "spilled-model"
        self._model.save_pretrained(folder)
        self._model, self._spilled = None, folder

    def _reload_model(self):
        from .layers import PredistortModel
        folder, self._spilled = self._spilled, None
        try:
            self._model = PredistortModel.from_pretrained(str(folder)).eval()
            self.keep_note = ("While you were away, your model waited on the server's disk to make room for other "
                              "visitors; it is back, unchanged.")
        except (OSError, ValueError) as e:
            self._model, self._started = None, True
            self.model_note = f"Your model could not be read back from the server's disk ({e}): train it again."
        self._account()

    def release_results(self):
        """Delete this session's stored results (the server's budget is reached and this session is idle)."""
        if self._kept:
            clear(self.folder / "results")
            self._kept = []
            self.keep_note = ("Your last results were released while you were away, to make room for other "
                              "visitors (your model is kept): pre-distort again to print or download them.")

    # -- housekeeping -------------------------------------------------------------------------------------
    @property
    def folder(self):
        """This session's temporary folder (weights, figures), made on first use."""
        if self._dir is None or not Path(self._dir).is_dir():
            self._dir = tempfile.mkdtemp(prefix="predistort-session-")
        return Path(self._dir)

    def close(self):
        """Free this session's model and files (called when Gradio drops the session or its tab closes)."""
        self._stop.set()
        self._model, self._spilled, self._kept, self.history = None, None, [], []
        self._started = True
        LEDGER.forget(self)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        backend.trim_memory()

    @property
    def resolution(self):
        return self.model.resolution if self.model is not None else self.scene.resolution

    @property
    def training(self):
        return self._train_lock.locked()

    def _use(self, model, source):
        """Make `model` this session's model, with the scene it was made for."""
        scene = model_scene(model)
        self.model, self.model_source, self.scene, self.model_note = model, source, scene, ""

    def status(self):
        """Markdown: which model this session uses, for which scene; or how to get one."""
        if self.model is None:
            note = self.model_note or "No model yet."
            return (f"**No model yet.** {note} Train one in *Several pictures · train*, or load weights from "
                    f"the Hugging Face Hub in *Load a model*.")
        s = self.scene
        trained = self.last_train.get("summary") if self.model_source == TRAINED_HERE else None
        source = self.model_source if self.model_source.startswith("trained") else "from " + self.model_source
        return (f"**Model:** `{self.model.model_type}`, {self.model.resolution}×{self.model.resolution}, "
                f"{source}{' (' + trained + ')' if trained else ''} · **scene:** glass sphere IOR "
                f"{s.sphere_ior:g}, radius {s.sphere_radius:g} · renderer: {backend.describe()}"
                + (" · *training…*" if self.training else "") + (f"\n\n{self.keep_note}" if self.keep_note else ""))

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
        if isinstance(sources, (str, os.PathLike)) or not isinstance(sources, (list, tuple)):
            sources = [sources]
        sources = [s for s in sources if s is not None and s != ""]
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
    def _check_spp(self, spp):
        if spp is None or (isinstance(spp, float) and not math.isfinite(spp)):
            raise ServiceError("spp must be a whole number of samples per pixel.")
        return check_whole("spp", spp, 1, self.settings.max_spp, limit="max_spp")

    def _check_refine(self, seconds):
        if seconds is None or seconds == "":
            return 0.0
        limit = self.settings.max_refine_s
        if not (is_number(seconds) and not isinstance(seconds, str) and math.isfinite(seconds)
                and 0 <= seconds <= limit):
            raise ServiceError(f"refine must be a number of seconds from 0 (off) to {limit:g} (the limit of this "
                               f"app, PREDISTORT_MAX_REFINE_S), got {seconds!r}.")
        return float(seconds)

    def _result(self, texture, spp, name, notes=(), model=None, scene=None, refine=0.0, progress=None):
        """Pre-distort one prepared picture (:func:`predistort.pipeline.predistort`) and wrap it as a Result."""
        from .pipeline import predistort
        model = self._require_model() if model is None else model
        renderer = renderer_for(scene or self.scene)
        try:
            comparison = predistort(renderer, texture, model, spp=spp, seed=0, refine=refine, progress=progress)
        except Exception:
            discard_renderer(renderer)
            raise
        return Result(name, comparison, list(notes))

    def _check_resolution(self, resolution):
        """The resolution to pre-distort at: the model's own for None / 0 / "", else one of the offered ones."""
        if resolution is None or resolution == "" or (is_number(resolution) and float(resolution) == 0):
            return self.resolution
        return check_whole("resolution", resolution, 8, self.settings.max_apply_resolution,
                           limit="max_apply_resolution")

    def model_at(self, resolution, progress=None):
        """``(model, scene)``: this session's model made for its scene at `resolution` (the scene's light
        transport is probed first if new; ``progress(fraction, message)`` hears how)."""
        from .layers import for_scene
        model = self._require_model()
        scene = self.scene.replace(resolution=resolution)
        exact = self.placement is None or self.placement.exact
        if resolution == model.resolution and exact:
            return model, scene
        try:
            return for_scene(model, scene, renderer=renderer_for(scene), progress=progress,
                             tolerance=None if exact else self.placement), scene
        except (TypeError, ValueError) as e:
            raise ServiceError(str(e)) from None

    def predistort(self, source, spp=None, fit="crop", refine=0.0, progress=None, resolution=None,
                   probe_progress=None):
        """Pre-distort one picture with this session's model at `resolution` (None: the model's own), then
        (``refine`` > 0) refine it through the renderer for up to that many seconds; returns a
        :class:`~predistort.report.Result` (also kept as last).

        Above ``full_spp_resolution`` the renders use fewer samples per pixel (:meth:`Settings.render_spp`;
        the metrics say which). ``progress(step, loss, elapsed_s)`` hears of every refinement score,
        ``probe_progress(fraction, message)`` of a probe of a resolution not measured before.
        """
        spp = self._check_spp(self.settings.preview_spp if spp is None else spp)
        refine = self._check_refine(refine)
        resolution = self._check_resolution(resolution)
        self._require_model()
        ((name, texture, notes),) = self.prepare([source] if source is not None else [], resolution=resolution,
                                                 fit=fit)
        probed, start = [], time.perf_counter()

        def probing(fraction, message):                # called only while a probe really runs
            probed.append(fraction)
            if probe_progress is not None:
                probe_progress(fraction, message)

        model, scene = self.model_at(resolution, probing)
        probe_seconds = time.perf_counter() - start if probed else 0.0
        result = self._result(texture, self.settings.render_spp(spp, resolution), name, notes, model=model,
                              scene=scene, refine=refine, progress=progress)
        result.comparison.metrics["probe_seconds"] = round(probe_seconds, 3)
        self.results = [result]
        backend.trim_memory()                        # the render's and the solve's buffers go back to the system
        return result

    def predistort_estimate(self, resolution=None, spp=None):
        """Markdown: about how long pre-distorting one picture at `resolution` takes on this machine, and whether
        that resolution's light transport must be measured first (:func:`predistort.methods.predistort_estimate`)."""
        from .methods import predistort_estimate
        if self.model is None:
            return ""
        resolution, spp = self._check_resolution(resolution), self._check_spp(
            self.settings.preview_spp if spp is None else spp)
        return predistort_estimate(self.model, self.scene.replace(resolution=resolution),
                                   self.settings.render_spp(spp, resolution), self.settings.max_apply_resolution)

    def compare(self, sources, spp=None, fit="crop"):
        """Pre-distort several pictures; returns the list of Results (also kept as last)."""
        spp = self._check_spp(self.settings.preview_spp if spp is None else spp)
        self._require_model()
        results = [self._result(t, spp, name, notes) for name, t, notes in self.prepare(sources, fit=fit)]
        self.results = results
        backend.trim_memory()
        return results

    # -- scenes ----------------------------------------------------------------------------------------------
    def training_scene(self, resolution, sphere_ior, sphere_radius):
        """The tutorial's scene with this resolution and sphere (ServiceError if they are not usable)."""
        for what, value in (("sphere_ior", sphere_ior), ("sphere_radius", sphere_radius)):
            if not is_number(value):
                raise ServiceError(f"{what} must be a number, got {value!r}.")
        try:
            return DEFAULT.replace(resolution=int(resolution), sphere_ior=float(sphere_ior),
                                   sphere_radius=float(sphere_radius))
        except (ValueError, TypeError) as e:
            raise ServiceError(str(e)) from None

    def scene_report(self, sphere_ior, sphere_radius, resolution=None):
        """Markdown: for the scene with this sphere, which ways of pre-distorting still apply, and what each
        needs (a probe of the light transport, a training) before it does."""
        from .methods import scene_report
        resolution = resolution if resolution not in (None, "") else self.resolution
        resolution = check_whole("resolution", resolution, 8, self.settings.max_resolution, limit="max_resolution")
        return scene_report(self.model, self.training_scene(resolution, sphere_ior, sphere_radius))

    # -- models ----------------------------------------------------------------------------------------------
    def load_pretrained(self, name="default", token=None):
        """Use a pretrained model: "default" (or empty) for the bundled one, or a Hub repo USER/NAME[@REVISION].

        ``token``: the visitor's own Hugging Face token (``gr.OAuthToken`` when they signed in), never the
        server's; without it only public repos load. Returns the new status line. A public model is shared
        read-only between sessions that load it.
        """
        name, revision = parse_model_name(name or weights.BUNDLED)
        if name == weights.BUNDLED:
            setting, setting_rev = parse_model_name(self.settings.default_weights)
            model, note = default_model(self.settings)
            if model is None:
                raise ServiceError(note or "No pretrained default is available.")
            source = model.info.get("source", describe_source(setting, setting_rev))
        else:
            model = shared_model(name, revision, token=token)
            source = model.info.get("source", describe_source(name, revision))
        if self.training:
            raise ServiceError("A training is running in this session: stop it first, then load another model.")
        self._use(model, source)
        self.results = []
        return self.status()

    def push(self, name, token, private=True):
        """Push this session's model to the signed-in visitor's own Hub account, with its model card.

        ``name``: NAME or USER/NAME (USER: the visitor); ``token``: their OAuth token (``gr.OAuthToken``);
        ``private``: visibility of a new repo. Returns Markdown with the repo's address.
        """
        from . import hub
        model = self._require_model()
        folder = self.folder / "push"
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(folder)
        if self.model_source == TRAINED_HERE and self.history:
            from .train import save_history
            save_history(self.history, folder, title=f"{model.model_type} model, trained in the predistort app")
        from huggingface_hub import constants
        repo_id, url = hub.push_for_visitor(folder, name, token, private=bool(private))
        return (f"Pushed to [{repo_id}]({constants.ENDPOINT}/{repo_id}) ({'private' if private else 'public'}): "
                f"load it with `predistort.load_model('{repo_id}')` or in *Load a model*.")

    # -- export ------------------------------------------------------------------------------------------------
    def export(self):
        """``(weights zip path, comparison figure path or None)`` of this session's model and last results."""
        model = self._require_model()
        folder = self.folder
        if self.model_source == TRAINED_HERE and self.last_train.get("weights_zip") \
                and Path(self.last_train["weights_zip"]).is_file():
            zip_path = self.last_train["weights_zip"]
        else:
            target = folder / "weights"
            shutil.rmtree(target, ignore_errors=True)
            model.save_pretrained(target)
            zip_path = weights.zip_folder(target, folder / "predistort-weights.zip")
        figure, results = None, self.results
        if results:
            figure = folder / "predistort-comparison.png"
            stack_figures([r.figure() for r in results]).save(figure)
            figure = str(figure)
        return zip_path, figure


def _source_name(source):
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return getattr(source, "filename", None) or type(source).__name__
