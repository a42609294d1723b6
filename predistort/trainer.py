"""A session's training, in a thread of its own: its options, a server slot, progress events, the model adopted.

:class:`Training` is a part of :class:`predistort.service.Session` (its base class): :meth:`Training.train`
checks the options, prepares the pictures and hands the work to a thread (:meth:`Training._train_work`) that
waits for one of the server's training slots (:func:`predistort.resources.training_slots`), runs the method
of :data:`predistort.methods.METHODS`, evaluates the model on the pictures and makes it the session's own.
Progress, the final event and any error reach the caller through a queue as :class:`predistort.report.TrainEvent`;
a visitor who leaves stops the training after its current iteration, and the session keeps what was learned.
"""
from __future__ import annotations

import math
import queue
import shutil
import threading
import time
from typing import Iterator

from . import backend, weights
from .methods import DEFAULT_METHOD, METHODS, TrainJob, median_step, record_speed
from .report import TrainEvent, train_metrics
from .resources import discard_renderer, renderer_for, training_slots
from .scene import DEFAULT
from .settings import ServiceError, check_whole, is_number

TRAINED_HERE = "trained in this session"


class Training:
    """The training side of a :class:`predistort.service.Session` (see the module doc)."""

    def check_train_options(self, method, iterations, spp, resolution, seed, lr):
        """The options as numbers, or a ServiceError naming the one at fault (and the limit it broke)."""
        s = self.settings
        if not isinstance(method, str) or method not in METHODS:
            raise ServiceError(f"Unknown method '{method}'; choose one of: {', '.join(METHODS)}.")
        iterations = check_whole("iterations", iterations, 1, s.max_iterations, limit="max_iterations")
        spp = check_whole("spp", spp, 1, s.max_spp, limit="max_spp")
        top = min(s.max_resolution, METHODS[method].max_resolution or s.max_resolution)
        resolution = check_whole("resolution", resolution, 8, top, limit="max_resolution")
        seed = check_whole("seed", seed, 0, 2 ** 31 - 1)
        if lr is None:
            lr = METHODS[method].lr
        if not (is_number(lr) and not isinstance(lr, str) and math.isfinite(lr) and 0 < lr <= 1):
            raise ServiceError(f"learning rate must be a number in (0, 1], got {lr!r}.")
        return method, iterations, spp, resolution, seed, float(lr)

    def stop(self):
        """Ask the running training to end after its current iteration (it keeps what it learned)."""
        running = self.training
        self._stop.set()
        return "Stopping after the current iteration; what was learned is kept." if running else "No training is running."

    def train(self, sources, method=DEFAULT_METHOD, iterations=100, spp=4, resolution=128, seed=0,
              sphere_ior=None, sphere_radius=None, lr=None, fit="crop") -> Iterator[TrainEvent]:
        """Train a model on `sources`; a generator of :class:`TrainEvent` (progress, then one final event).

        The work runs in a thread of its own (:meth:`_train_work`): closing the generator (a visitor leaving)
        stops the training after the current iteration, and the session still keeps what was learned. The
        final event carries ``weights_zip`` and ``metrics``: method, iterations_run, stopped, seconds,
        first/final loss, per-picture before/after (L1, PSNR) at the preview spp, and their means. ``lr``
        None: the method's default. A scene (IOR, radius, resolution) not measured before is probed first by
        the methods built on its light transport.
        """
        method, iterations, spp, resolution, seed, lr = self.check_train_options(
            method, iterations, spp, resolution, seed, lr)
        scene = self.training_scene(resolution, DEFAULT.sphere_ior if sphere_ior is None else sphere_ior,
                                    DEFAULT.sphere_radius if sphere_radius is None else sphere_radius)
        prepared = self.prepare(sources, resolution=resolution, fit=fit)
        iterations = iterations if METHODS[method].iterative else 1
        if not self._train_lock.acquire(blocking=False):
            raise ServiceError("A training is already running in this session; stop it or wait for it.")
        self._stop.clear()
        plan = {"method": method, "iterations": iterations, "spp": spp, "resolution": resolution, "seed": seed,
                "lr": lr, "sphere_ior": scene.sphere_ior, "sphere_radius": scene.sphere_radius, "fit": fit,
                "textures": [name for name, _, _ in prepared]}
        events: queue.Queue = queue.Queue()
        abandoned = threading.Event()    # the consumer went away: nobody waits for the evaluation
        worker = threading.Thread(target=self._train_work, args=(plan, scene, prepared, events, abandoned),
                                  name="predistort-train", daemon=True)
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

    def _train_work(self, plan, scene, prepared, events, abandoned):
        """The training thread: wait for a slot, run the method, evaluate, adopt the model; every outcome
        (progress, the final event, an error) goes into `events`."""
        renderer, slots, slot = None, training_slots(self.settings.train_concurrency), False
        try:
            slot = self._wait_for_slot(slots, events, plan["iterations"])
            start, history = time.perf_counter(), []

            def callback(i, loss, elapsed):
                history.append({"iteration": i, "loss": loss, "seconds": elapsed})
                eta = elapsed / i * (plan["iterations"] - i)
                events.put(TrainEvent(i, plan["iterations"], loss, elapsed, eta, list(history)))

            renderer = renderer_for(scene)
            job = TrainJob(renderer, [t for _, t, _ in prepared], plan["iterations"], plan["spp"], plan["seed"],
                           plan["lr"], callback, self._stop, base_model=self.model)
            model, history = METHODS[plan["method"]].run(job)
            history = list(history or [])
            model.eval()
            if abandoned.is_set():       # keep what was learned, skip the renders nobody will see
                self._adopt(model, scene, history, [], {**plan, "weights_zip": None}, prepared)
                return
            elapsed = time.perf_counter() - start
            events.put(TrainEvent(len(history), plan["iterations"], history[-1]["loss"] if history else None,
                                  elapsed, 0.0, history, stage="evaluating"))
            record_speed(plan["method"], plan["resolution"], len(prepared), plan["spp"], history)
            results = [self._result(t, self.settings.preview_spp, name, notes, model=model, scene=scene)
                       for name, t, notes in prepared]
            metrics = train_metrics(plan, history, results, elapsed, self._stop.is_set(), median_step(history))
            model.info = _model_info(scene, plan, history, metrics)
            zip_path = self._save_trained(model, history)
            self._adopt(model, scene, history, results, {**plan, "weights_zip": zip_path}, prepared)
            events.put(TrainEvent(len(history), plan["iterations"], metrics.get("final_train_loss"), elapsed, 0.0,
                                  history, done=True, stage="done", weights_zip=zip_path, metrics=metrics,
                                  results=results))
        except MemoryError:
            events.put(ServiceError(_out_of_memory(plan["resolution"])))
        except RuntimeError as e:
            if renderer is not None:
                discard_renderer(renderer)
            out_of_memory = "can't allocate memory" in str(e) or "out of memory" in str(e).lower()
            events.put(ServiceError(_out_of_memory(plan["resolution"])) if out_of_memory else e)
        except BaseException as e:   # handed to the generator, which raises it in the caller's thread
            if renderer is not None and not isinstance(e, ValueError):
                discard_renderer(renderer)
            events.put(e)
        finally:
            if slot:
                slots.release()
            self._train_lock.release()
            backend.trim_memory()

    def _wait_for_slot(self, slots, events, iterations):
        """Take a training slot of the server; a cancelled training may still be ending its last iteration.
        Says once that it waits; a Stop while waiting ends the training before it starts."""
        waiting = False
        while not slots.acquire(timeout=0.25):
            if self._stop.is_set():
                raise ServiceError("Stopped before the training started (it was waiting for the previous "
                                   "training on this server to end).")
            if not waiting:
                waiting = True
                events.put(TrainEvent(0, iterations, None, 0.0, None, [], stage="waiting"))
        return True

    def _adopt(self, model, scene, history, results, last_train, prepared):
        """From now on this session (only) uses the model it trained."""
        self.model, self.model_source, self.scene, self.model_note = model, TRAINED_HERE, scene, ""
        self.history, self.results = history, results
        self.last_train = {**last_train, "summary": _summary(last_train["method"], history, prepared)}

    def _save_trained(self, model, history):
        """Save the model (+ history, loss curve) in this session's folder and zip it; returns the zip path."""
        from .train import save_history
        folder = self.folder / "weights"
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(folder)
        if history:
            save_history(history, folder, title=f"{model.model_type} model, trained in the predistort app")
        return weights.zip_folder(folder, self.folder / "predistort-weights.zip")


def _out_of_memory(resolution):
    from .methods import tutorial_memory_gb
    return (f"This machine ran out of memory training at {resolution}×{resolution}: lower the resolution (the "
            f"tutorial layer needs 16·R⁴ bytes: {tutorial_memory_gb(resolution):.2f} GB at {resolution}²) or try "
            f"again later.")


def _summary(method, history, pictures):
    m = METHODS[method]
    if not m.iterative:
        return f"{m.label}, for {len(pictures)} picture(s)"
    return f"{m.label}, {len(history)} iterations on {len(pictures)} picture(s)"


def _model_info(scene, plan, history, metrics):
    """What config.json records about a model trained here: its scene, recipe and metrics."""
    recipe = {k: v for k, v in plan.items() if k not in ("sphere_ior", "sphere_radius")}
    return {"scene": scene.to_dict(),
            "recipe": {**recipe, "iterations_run": len(history), "loss": "l1", "trained_with": "predistort app"},
            "metrics": {k: metrics[k] for k in ("final_train_loss", "l1_initial_mean", "l1_final_mean",
                                                "psnr_initial_mean", "psnr_final_mean") if k in metrics}}
