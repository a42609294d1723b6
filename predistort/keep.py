"""What a web session keeps between its visitor's requests: results on disk, and the server's budget over sessions.

A session lives as long as its visitor may come back (``PREDISTORT_SESSION_TTL_S``, hours), but works only
while one of their requests runs. So what it made waits where it costs no memory:

* **Results** — the four images of each pre-distorted picture and their metrics — go to the session's
  folder as soon as they are made (:func:`store`: 8-bit, as every PNG the visitor downloads is), and are read
  back when the page needs them again (:meth:`StoredResult.load`: the before/after slider, the print, the
  downloads, the correctability map). In memory a stored result is its name, notes and metrics: a few
  hundred bytes, at any resolution.
* **Models** a session owns (trained in it; the default and Hub models are shared and never counted) stay in
  memory while their session is in use.

The :class:`Ledger` counts, for every live session, its own model's bytes in memory and its results' bytes on
disk. When a total passes its budget (``PREDISTORT_SESSION_MODELS_MB``, ``PREDISTORT_RESULTS_DISK_MB``), the
sessions idle longest give way first — never one that is training or was used in the last
:data:`MIN_IDLE_S` seconds:

* a model is written to its session's folder (safetensors) and read back when its visitor returns;
* results are deleted, and the visitor is told so when they come back (:attr:`Session.keep_note
  <predistort.service.Session>`).

So what an idle session keeps in memory is bounded by a constant (its metadata), and the server's total by
the two budgets plus the sessions in use. Limits: the ledger sees only sessions of this process; files on
disk go with the session (its folder is deleted when the session closes).
"""
from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

MIN_IDLE_S = 60.0          # a session used this recently never gives way (its visitor is probably still there)
IMAGES = ("target", "initial", "predistorted", "final")          # the fields of a pipeline.Comparison


# -- results on disk --------------------------------------------------------------------------------------------
@dataclass
class StoredResult:
    """A :class:`predistort.report.Result` whose images wait on disk: ``path`` (an .npz of uint8 [H,W,3] images),
    ``nbytes`` (their size), and the small parts kept in memory."""
    name: str
    notes: list
    metrics: dict
    path: Path
    nbytes: int

    def load(self):
        """The Result again (images as float tensors in [0,1], 8-bit values), or None if its file is gone."""
        from .pipeline import Comparison
        from .report import Result
        try:
            with np.load(self.path) as data:
                images = {k: torch.from_numpy(data[k].astype(np.float32) / 255.0) for k in IMAGES}
        except (OSError, KeyError, ValueError):
            return None
        return Result(self.name, Comparison(**images, metrics=dict(self.metrics)), list(self.notes))


def store(results, folder):
    """Write `results` (Results) to `folder` (replacing what was there); returns their StoredResults.

    Each image is rounded to 8 bits (what every PNG of it holds); the metrics were measured before, in full
    precision. Uncompressed .npz: writing and reading cost milliseconds even at 1024².
    """
    folder = Path(folder)
    clear(folder)
    if not results:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    kept = []
    for i, r in enumerate(results):
        c = r.comparison
        images = {k: getattr(c, k).detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round()
                  .to(torch.uint8).numpy() for k in IMAGES}
        path = folder / f"result-{i}.npz"
        np.savez(path, **images)
        kept.append(StoredResult(r.name, list(r.notes), dict(c.metrics), path, path.stat().st_size))
    return kept


def clear(folder):
    """Delete the stored results in `folder` (if any)."""
    folder = Path(folder)
    if folder.is_dir():
        for f in folder.glob("result-*.npz"):
            f.unlink(missing_ok=True)


def model_nbytes(model):
    """Bytes of a model's parameters and buffers (what it holds in memory); 0 for None."""
    if model is None:
        return 0
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


# -- the server's budget over sessions -----------------------------------------------------------------------------
@dataclass
class _Entry:
    last_used: float = field(default_factory=time.monotonic)
    model_bytes: int = 0                 # the session's own model, in memory (0 when shared or spilled)
    result_bytes: int = 0                # its results, on disk


class Ledger:
    """Every live session's own bytes (its model in memory, its results on disk), and the budgets over them.

    Sessions call :meth:`touch` when their visitor uses them and :meth:`update` when what they hold changes;
    :meth:`update` then makes the sessions idle longest give way until both totals are within budget
    (``session.spill_model()`` / ``session.release_results()``). Sessions are held weakly: one that is
    garbage-collected leaves the ledger by itself. Thread-safe.
    """

    def __init__(self):
        self._lock = threading.RLock()
        self._entries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def touch(self, session):
        with self._lock:
            self._entries.setdefault(session, _Entry()).last_used = time.monotonic()

    def forget(self, session):
        with self._lock:
            self._entries.pop(session, None)

    def totals(self):
        """``(model bytes in memory, result bytes on disk, sessions)`` over every live session."""
        with self._lock:
            entries = list(self._entries.values())
        return sum(e.model_bytes for e in entries), sum(e.result_bytes for e in entries), len(entries)

    def update(self, session, model_bytes, result_bytes, models_budget, results_budget):
        """Record what `session` holds now, then enforce the budgets (bytes) over the sessions idle longest."""
        with self._lock:
            entry = self._entries.setdefault(session, _Entry())
            entry.model_bytes, entry.result_bytes = model_bytes, result_bytes
            entry.last_used = time.monotonic()
            self._enforce(models_budget, results_budget)

    def _enforce(self, models_budget, results_budget):
        now = time.monotonic()
        idle = sorted(((e.last_used, id(s), s, e) for s, e in self._entries.items()
                       if now - e.last_used >= MIN_IDLE_S and not s.training), key=lambda t: t[:2])
        models, results, _ = self.totals()
        for _, _, s, e in idle:
            if models <= models_budget and results <= results_budget:
                break
            if models > models_budget and e.model_bytes:
                models -= e.model_bytes
                s.spill_model()
                e.model_bytes = 0
            if results > results_budget and e.result_bytes:
                results -= e.result_bytes
                s.release_results()
                e.result_bytes = 0


LEDGER = Ledger()
