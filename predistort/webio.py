"""What crosses the web page's boundary: uploads, output files, visitors' errors, and how long sessions live.

Gradio-specific glue between ``app.py`` and the session (:mod:`predistort.service`), kept out of the page so
that it is tested without a browser:

* :func:`upload_path` accepts only files in Gradio's upload folder (or the app's own examples): a raw API
  call must not make the app read any picture on the server's disk;
* :func:`cached_png` writes an output image once, atomically, under Gradio's content hash, so that two
  visitors getting the same image at once never download a half-written file;
* :func:`user_errors` shows a visitor's mistake (any ``ValueError``) as ``gr.Error`` and any other failure as
  a ``gr.Error`` that says so, the traceback going to the server's log — the server keeps running;
* :class:`LeanSessions` is Gradio's store of per-visitor state, less what this app never uses and what Gradio
  never frees (:func:`install_sessions`), and :func:`forget_session` frees a visitor's session the moment
  their tab closes.
"""
import contextlib
import datetime
import functools
import hashlib
import inspect
import io
import os
import tempfile
from pathlib import Path

import gradio as gr
from gradio.state_holder import StateHolder

from .settings import ServiceError, examples


def server_failure(e):
    """gr.Error for a failure that is not the visitor's mistake (a Dr.Jit / Mitsuba / torch error): it says what
    failed, that nothing of theirs was lost, and what to try; the traceback goes to the server's log."""
    lines = str(e).strip().splitlines()
    reason = lines[0] if lines else ""
    reason = reason if len(reason) <= 300 else reason[:297] + "..."
    what = type(e).__name__ + (f": {reason}" if reason else "")
    return gr.Error(f"The server failed while rendering or training ({what}). Your session and model are "
                    f"unchanged and the app keeps running: try again; fewer samples per pixel or a lower resolution "
                    f"may help.", print_exception=True)


def user_errors(fn):
    """Show a user's mistake (any ValueError: bad picture, option, repo id) as gr.Error, and any other failure as
    a gr.Error that says so (:func:`server_failure`); either way the server keeps running."""
    @contextlib.contextmanager
    def shown():
        try:
            yield
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as e:
            raise server_failure(e) from e

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            with shown():
                yield from fn(*args, **kwargs)
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with shown():
            return fn(*args, **kwargs)
    return call


def upload_path(payload):
    """The server path of an uploaded file, as Gradio hands it over without preprocessing (a FileData dict).

    Only files in Gradio's upload folder (uploads, and the examples Gradio copied there) or the example
    pictures themselves are accepted: without preprocessing Gradio does not check a path that comes without
    ``meta``, and a raw API call could otherwise make the app read any picture on the server's disk.
    """
    path = payload.get("path") if isinstance(payload, dict) else getattr(payload, "path", payload)
    if path is None or path == "":
        return None
    if not isinstance(path, str):
        raise ServiceError(f"Expected an uploaded file, got {type(path).__name__}: upload the picture.")
    from gradio.utils import get_upload_folder
    resolved = Path(path).resolve()
    if not (resolved.is_relative_to(Path(get_upload_folder()).resolve())
            or any(resolved == Path(p).resolve() for p in examples())):
        raise ServiceError(f"{Path(path).name}: this file was not uploaded to this app; upload the picture.")
    return path


def upload_paths(payloads):
    """:func:`upload_path` of each file of a multiple-file input (None stays None)."""
    if payloads is None:
        return None
    if not isinstance(payloads, (list, tuple)):
        payloads = [payloads]
    return [upload_path(p) for p in payloads]


def cached_png(image, name="image"):
    """A PIL image as a PNG file in Gradio's cache, written atomically; returns its path (for an output).

    Why not return the PIL image: Gradio names the file it saves after the image's content and rewrites it in
    place on every request, so when two visitors get the same image at once (the same example picture, say),
    one of them can download it while the other's request is rewriting it, and gets an empty, broken image
    (seen under concurrent load: tests/test_robustness.py repeats it). Here an existing file is never
    rewritten, and a new one appears under its final name only when complete. The folder is named by
    Gradio's own content hash, so Gradio finds the file in place and does not copy it again.
    """
    from gradio import processing_utils
    from gradio.utils import get_upload_folder
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    digest = getattr(processing_utils, "hash_bytes", lambda b: hashlib.sha256(b).hexdigest())(data)
    folder = Path(get_upload_folder()) / digest
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    if not path.exists():
        fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(staging, path)
    return str(path)


def pil(tensor, name="image"):
    from predistort.images import to_pil
    return cached_png(to_pil(tensor), name)


def figures(results):
    return [(cached_png(r.figure(), "comparison"), r.name) for r in results]


TABLE_HEADERS = ["picture", "L1 without", "L1 with", "PSNR without (dB)", "PSNR with (dB)", "gain (dB)"]


def metrics_table(results):
    import pandas as pd
    rows = [[m["texture"], round(m["l1_initial"], 4), round(m["l1_final"], 4), round(m["psnr_initial"], 2),
             round(m["psnr_final"], 2), round(m["psnr_gain_db"], 2)] for m in (r.metrics for r in results)]
    return pd.DataFrame(rows, columns=TABLE_HEADERS)


# -- how long a visitor's session lives ------------------------------------------------------------------------
class LeanSessions(StateHolder):
    """Gradio's store of sessions (one per tab or API client), made to free what it holds.

    Gradio's own keeps, for every session hash it ever saw, a ``SessionState`` with a copy of every block's
    config (for deep links) until 10,000 sessions have come, and deletes a
    ``gr.State`` value only when its time-to-live ends — counted from when a handler last *returned* it, so a
    State that is only read (``/predistort``'s session) is never deleted. Here:

    * a new session gets no config copies (this app has no deep links; a component a handler updates is
      still recorded, as Gradio does);
    * a session unused for :attr:`ttl_s` seconds is closed whole: every State's delete callback runs (a
      :class:`~predistort.service.Session` frees its model, results and folder) and the session goes;
    * a session whose States are all gone is dropped once unused for :attr:`idle_s` seconds (not at once: a
      request just arriving may be about to make its first State);
    * :meth:`forget` closes a session at once (its tab closed).
    """
    idle_s = 60.0
    ttl_s = 7200.0

    def __getitem__(self, session_id):
        new = session_id not in self.session_data
        state = super().__getitem__(session_id)
        if new:
            state.config_values = {}
        return state

    def delete_state(self, session_id, expired_only=False):
        """Gradio's (called every second over all sessions, for expired States), then close or drop the
        session if it has been unused long enough."""
        super().delete_state(session_id, expired_only)
        used = self.time_last_used.get(session_id)
        unused = float("inf") if used is None else (datetime.datetime.now() - used).total_seconds()
        state = self.session_data.get(session_id)
        if state is not None and (unused >= self.ttl_s or (not state.state_data and unused >= self.idle_s)):
            self.forget(session_id)

    def forget(self, session_id):
        """Close `session_id` now: each of its States' delete callbacks runs, then the session is dropped."""
        from gradio.components import State
        with self.lock:
            state = self.session_data.pop(session_id, None)
            self.time_last_used.pop(session_id, None)
        if state is None:
            return
        for _id, value in list(state.state_data.items()):
            block = state.blocks_config.blocks.get(_id)
            if isinstance(block, State) and block.delete_callback is not None:
                block.delete_callback(value)
        state.state_data.clear()


def install_sessions(blocks, ttl_s):
    """Give the launched app `blocks` a :class:`LeanSessions` in place of Gradio's store, keeping every session
    it already holds (call right after ``launch(prevent_thread_lock=True)``); sessions unused for `ttl_s`
    seconds close. Returns the new store."""
    app = blocks.server_app
    old, lean = app.state_holder, LeanSessions()
    lean.ttl_s = float(ttl_s)
    lean.set_blocks(blocks)
    with old.lock:
        lean.session_data, lean.time_last_used = old.session_data, old.time_last_used
        for state in lean.session_data.values():
            state.config_values = {}
    app.state_holder = lean
    return lean


def forget_session(blocks, session_hash):
    """Free the session of a tab that closed (``demo.unload``): its Session closes, Gradio's state goes."""
    holder = getattr(getattr(blocks, "server_app", None), "state_holder", None)
    if isinstance(holder, LeanSessions) and session_hash:
        holder.forget(session_hash)
