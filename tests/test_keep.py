"""predistort.keep and what a Session keeps between requests: results on disk, models that wait on disk while
their session is idle, the server's budgets, and sessions freed when their visitor leaves (real renders, real
files, a real Gradio store of sessions)."""
import gc
import sys

import gradio as gr
import pytest
import torch

from common import picture_paths
from conftest import make_tiny_model
from predistort import keep
from predistort.keep import LEDGER, StoredResult
from predistort.service import Session
from predistort.settings import ServiceError, Settings
from predistort.webio import LeanSessions


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = make_tiny_model(tmp_path_factory.mktemp("default16") / "model", 16)
    return Settings(default_weights=str(folder), preview_spp=4)


def pictures(n=1):
    return [str(p) for p in picture_paths()[:n]]


def tensors_in(obj, seen=None):
    """Every torch tensor reachable from `obj`'s attributes, lists, dicts (what it holds in memory)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        items = list(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, torch.nn.Module)):
        items = list(vars(obj).values())
    else:
        return []
    return [t for item in items for t in tensors_in(item, seen)]


def test_results_wait_on_disk_and_come_back_at_8_bits(tiny):
    s = Session(tiny)
    r = s.predistort(pictures()[0], spp=4)
    assert all(isinstance(k, StoredResult) and k.path.is_file() for k in s._kept)
    held = [t for k in s._kept for t in tensors_in(k)]
    assert held == [], "a stored result keeps no image in memory"
    (back,) = s.results
    assert back.metrics == r.metrics
    assert (back.comparison.final - r.comparison.final.clamp(0, 1)).abs().max() <= 0.5 / 255 + 1e-6
    pdf, png = s.print_files()                             # the print reads the stored texture
    assert pdf.endswith(".pdf") and png.endswith(".png")
    folder = s.folder
    s.close()
    assert not folder.exists() and s.results == []


def test_an_idle_sessions_model_waits_on_disk_past_the_budget_and_comes_back_unchanged(tiny, monkeypatch):
    monkeypatch.setattr(keep, "MIN_IDLE_S", 0.0)
    budget = Settings(default_weights=tiny.default_weights, preview_spp=4, session_models_mb=0.3)
    first, second = Session(budget), Session(budget)
    list(first.train(pictures(), method="tutorial", iterations=1, spp=1, resolution=16))   # 16⁴·4 B = 0.26 MB
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}
    assert first._model is not None and first._spilled is None
    list(second.train(pictures(), method="tutorial", iterations=1, spp=1, resolution=16, seed=1))
    # Two own models (0.52 MB) pass the 0.3 MB budget: the one idle longest (first) waits on disk.
    assert first._model is None and (first._spilled / "model.safetensors").is_file()
    assert second._model is not None
    assert LEDGER.totals()[0] <= 0.3e6
    assert "waited on the server's disk" in first.status() and "unchanged" in first.status()
    assert all(torch.equal(weights[k], v) for k, v in first.model.state_dict().items())
    first.close(), second.close()


def test_an_idle_sessions_results_go_first_past_the_disk_budget_and_its_visitor_is_told(tiny, monkeypatch):
    monkeypatch.setattr(keep, "MIN_IDLE_S", 0.0)
    one = Session(tiny)
    one.predistort(pictures()[0], spp=2)
    size = sum(k.nbytes for k in one._kept)
    budget = Settings(default_weights=tiny.default_weights, preview_spp=4, results_disk_mb=1.5 * size / 1e6)
    first, second = Session(budget), Session(budget)
    first.predistort(pictures()[0], spp=2)
    second.predistort(pictures()[0], spp=2)
    assert first.results == [] and len(second.results) == 1
    assert "released while you were away" in first.status()
    with pytest.raises(ServiceError, match="released while you were away"):
        first.print_files()
    first.predistort(pictures()[0], spp=2)                 # coming back: a new result, the note goes
    assert len(first.results) == 1 and "released" not in first.status()
    for s in (one, first, second):
        s.close()


def test_a_busy_or_recently_used_session_never_gives_way(tiny):
    budget = Settings(default_weights=tiny.default_weights, preview_spp=4, results_disk_mb=0.0)
    first, second = Session(budget), Session(budget)
    first.predistort(pictures()[0], spp=2)
    second.predistort(pictures()[0], spp=2)
    assert len(first.results) == 1 and len(second.results) == 1      # both used within MIN_IDLE_S
    first.close(), second.close()


def test_a_session_that_is_gone_leaves_the_ledger():
    before = LEDGER.totals()[2]
    s = Session(Settings(default_weights="none"))
    assert LEDGER.totals()[2] == before + 1
    del s
    gc.collect()
    assert LEDGER.totals()[2] == before


# -- Gradio's store of sessions ----------------------------------------------------------------------------------
@pytest.fixture
def holder():
    closed = []
    with gr.Blocks() as demo:
        state = gr.State(Session(Settings(default_weights="none")), time_to_live=3600,
                         delete_callback=lambda s: (closed.append(s), s.close()))
    lean = LeanSessions()
    lean.set_blocks(demo)
    return lean, state, closed


def test_lean_sessions_keep_no_config_copies_and_free_a_closed_tab_at_once(holder):
    lean, state, closed = holder
    one = lean["tab-1"]
    assert one.config_values == {}
    session = one[state._id]                              # the tab's Session, made from the State's value
    assert isinstance(session, Session)
    lean.forget("tab-1")
    assert closed == [session] and "tab-1" not in lean.session_data and "tab-1" not in lean.time_last_used


def test_lean_sessions_close_a_session_unused_for_its_time_to_live(holder, monkeypatch):
    """An API client that just stops calling: its Session is read by every call but never returned, so
    Gradio's own time-to-live never starts; here it counts from the last use."""
    lean, state, closed = holder
    session = lean["api-1"][state._id]
    lean.delete_all_expired_state()                       # Gradio's own loop, every second
    assert closed == [] and "api-1" in lean.session_data  # just used
    monkeypatch.setattr(lean, "ttl_s", 0.0)
    lean.delete_all_expired_state()
    assert closed == [session] and "api-1" not in lean.session_data


def test_lean_sessions_drop_an_emptied_session_once_idle(holder, monkeypatch):
    lean, state, closed = holder
    lean["api-2"]                                          # a session that never made a State
    lean.delete_all_expired_state()
    assert "api-2" in lean.session_data                    # a request may be about to make its first State
    monkeypatch.setattr(lean, "idle_s", 0.0)
    lean.delete_all_expired_state()
    assert "api-2" not in lean.session_data and closed == []


def test_the_package_reads_no_gradio(tiny):
    """keep.py is the package's, not the page's: it works without Gradio loaded (the CLI never loads it)."""
    import subprocess
    code = "import sys, predistort.keep; assert 'gradio' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
