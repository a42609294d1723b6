"""Shared pytest fixtures.

Fake Hugging Face Hub (see ``tests/fake_hub.py``):

* ``fake_hub``: a started :class:`FakeHub` (storage in ``tmp_path/"fake-hub"``) with the
  already-imported ``huggingface_hub`` pointed at it for the duration of the test
  (``HF_ENDPOINT`` + patched import-time constants, ``HF_HOME=tmp_path/"hf-home"``, no token).
  Write with ``token=fake_hub.token``; assert on ``fake_hub.requests`` / ``fake_hub.recorded``.
* ``fake_hub_env``: environment dict for a *fresh* Python process using the same hub and cache
  (``subprocess.run([sys.executable, ...], env=fake_hub_env)``); add ``HF_TOKEN`` yourself if needed.
* ``hf_offline``: a context-manager factory, ``with hf_offline(): ...`` behaves like ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_hub import FakeHub, client_offline, use_fake_hub  # noqa: E402


@pytest.fixture
def fake_hub(tmp_path: Path):
    with FakeHub(tmp_path / "fake-hub") as hub, use_fake_hub(hub, tmp_path / "hf-home"):
        yield hub
    assert not hub.errors, "bugs in the fake hub itself:\n" + "\n".join(hub.errors)


@pytest.fixture
def fake_hub_env(fake_hub: FakeHub, tmp_path: Path) -> dict[str, str]:
    return fake_hub.client_env(tmp_path / "hf-home")


@pytest.fixture
def hf_offline():
    return client_offline


# -- the real web app, launched as the Dockerfile launches it ------------------------------------------------
# ``app_server`` (session scope): ``python app.py`` (predistort.appserver.launch_app) with a fake Hugging Face
# Hub (``app_server.hub``, repo ``test/tiny16``: a 16×16 tutorial model) reachable through HF_ENDPOINT, and the
# bundled default model when weights/default exists (else the instant solve at 32×32, made here, through
# PREDISTORT_DEFAULT_WEIGHTS: the default pre-distortion helps either way). Yields an object with ``url``,
# ``hub``, ``log`` (the app's stdout+stderr file), ``default_resolution`` (the model's) and ``picture_resolution`` (the page's for a new picture, which
# /predistort uses when a caller leaves the resolution out). Another instance: ``with launch_app(tmp_dir, **env) as app`` (app.url,
# app.log). ``browser`` (session scope): Debian's chromium driven by Playwright.
import os  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from predistort.appserver import launch_app  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "artifacts"          # git-ignored: screenshots and logs of the test run
CHROMIUM = os.environ.get("PREDISTORT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def wait_for_the_page(page):
    """Wait for what the page does as it loads: the status line, and the resolution it offers a new picture
    (0 in the API, the page's own after load; a test that picks another one must wait for this first)."""
    from predistort.settings import Settings
    # Generous: the load events may queue behind whatever the shared test server still finishes for the test
    # before (an advice's search, a 1024² render); CI once took over 30 s here.
    page.wait_for_selector("#predistort-button", timeout=60_000)
    wait_for_the_status(page)
    r = Settings().page_resolution()
    if r:
        page.wait_for_function(f"document.querySelector('#resolution-choice input').value == '{r}×{r}'",
                               timeout=120_000)


def wait_for_the_status(page, timeout_s=60):
    """Wait for the page's first status line (a load event). Under load it has twice not come at all (once in
    CI's full suite, 30 s; once here beside other fits, 120 s; the server logged nothing). Not understood yet:
    a first miss prints what the page asked the server and heard back, its console, and every app's thread
    stacks (:func:`page_report`), then the page is loaded once more and waited for again; a second miss fails
    with the same report."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    script = "document.querySelector('#status') && document.querySelector('#status').innerText.includes('Model:')"
    try:
        page.wait_for_function(script, timeout=timeout_s * 1000)
    except PlaywrightTimeout:
        print(f"the page's first status line did not come within {timeout_s} s: loading the page again\n"
              + page_report(page))
        page.reload(wait_until="load")
        try:
            page.wait_for_function(script, timeout=2 * timeout_s * 1000)
        except PlaywrightTimeout:
            raise AssertionError("the page's first status line did not come, twice\n" + page_report(page)) from None


def page_report(page):
    """What a page that waits shows and did: its status line, its requests to the app (with what came back;
    "pending" for none yet), its console and errors, and the thread stacks of every app launched here."""
    from predistort import appserver
    lines = ["status line: " + repr(page.evaluate(
        "document.querySelector('#status') ? document.querySelector('#status').innerText : null"))]
    for req in page.requests():
        if "/gradio_api/" not in req.url and "/config" not in req.url:
            continue
        done = req.timing.get("responseEnd", -1) >= 0
        lines.append(f"request {req.method} {req.url.split('//', 1)[-1].split('/', 1)[-1]}: "
                     + (f"failed ({req.failure})" if req.failure else "answered" if done else "pending"))
    lines += [f"console {m.type}: {m.text}" for m in page.console_messages()[-20:]]
    lines += [f"page error: {e}" for e in page.page_errors()[-10:]]
    for app in list(appserver.RUNNING):
        lines.append(f"--- app on port {app.port}: thread stacks ---\n{app.stacks()[-12000:]}")
    return "\n".join(lines)


def make_tiny_model(folder, resolution, seed=0):
    """Save a small (untrained) tutorial model with the tutorial scene recorded, as predistort saves them."""
    import torch
    from predistort.layers import TutorialLayer
    from predistort.scene import DEFAULT
    torch.manual_seed(seed)
    model = TutorialLayer(resolution)
    model.info = {"scene": DEFAULT.replace(resolution=resolution).to_dict(), "recipe": {"note": "test model"}}
    model.save_pretrained(folder)
    return Path(folder)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    from predistort import weights
    tmp = tmp_path_factory.mktemp("app")
    env = {}
    if (weights.bundled_dir() / weights.WEIGHTS_NAME).exists():
        from predistort import load_model
        default_resolution = load_model("default").resolution
    else:
        from predistort import probe
        from predistort.layers import instant_model
        from predistort.scene import DEFAULT
        default_resolution = 32
        instant_model(probe.probe(DEFAULT.replace(resolution=32))).save_pretrained(tmp / "default32")
        env["PREDISTORT_DEFAULT_WEIGHTS"] = str(tmp / "default32")
    tiny = make_tiny_model(tmp / "tiny16", 16, seed=1)
    with FakeHub(tmp / "fake-hub") as hub:
        hub.add_repo("test/tiny16", {p.name: p.read_bytes() for p in tiny.iterdir() if p.is_file()})
        with launch_app(tmp, base_env=hub.client_env(tmp / "hf-home"), **env) as app:
            from predistort.settings import Settings
            yield SimpleNamespace(url=app.url, hub=hub, log=app.log, default_resolution=default_resolution,
                                  picture_resolution=Settings().page_resolution() or default_resolution)
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "app-test-server.log").write_text(app.log.read_text())


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium (``setup.sh --dev`` installs it; PREDISTORT_CHROMIUM points elsewhere), headless."""
    from playwright import sync_api
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: run ./setup.sh --dev (it installs Debian's chromium), or set "
                    f"PREDISTORT_CHROMIUM")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
