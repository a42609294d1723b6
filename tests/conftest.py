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
# ``app_server`` (session scope): ``python app.py`` in a subprocess with GRADIO_SERVER_NAME=127.0.0.1 and
# GRADIO_SERVER_PORT=<a free port>, a fake Hugging Face Hub (``app_server.hub``, repo ``test/tiny16``: a
# 16×16 tutorial model) reachable through HF_ENDPOINT, and the bundled default model when weights/default
# exists (else a 32×32 tutorial model made here, through PREDISTORT_DEFAULT_WEIGHTS). Yields an object
# with ``url``, ``hub``, ``log`` (the app's stdout+stderr file) and ``default_resolution``.
# ``launch_app(tmp_dir, **env)`` starts another instance (a context manager) with extra environment.
import contextlib  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from types import SimpleNamespace  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "artifacts"          # git-ignored: screenshots and logs of the test run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@contextlib.contextmanager
def launch_app(tmp_dir, timeout=180, base_env=None, **extra_env):
    """Run ``python app.py`` on a free localhost port; yield (url, log path); stop it afterwards.

    The environment is `base_env` (default: this process's) plus GRADIO_SERVER_NAME/PORT and `extra_env`.
    """
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**(os.environ if base_env is None else base_env), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **extra_env}
    log = tmp_dir / f"app-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with status {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url + "config", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not answer on {url} within {timeout} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.3)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    from predistort import weights
    tmp = tmp_path_factory.mktemp("app")
    env = {}
    if (weights.bundled_dir() / weights.WEIGHTS_NAME).exists():
        from predistort import load_model
        default_resolution = load_model("default").resolution
    else:
        default_resolution = 32
        env["PREDISTORT_DEFAULT_WEIGHTS"] = str(make_tiny_model(tmp / "default32", 32))
    tiny = make_tiny_model(tmp / "tiny16", 16, seed=1)
    with FakeHub(tmp / "fake-hub") as hub:
        hub.add_repo("test/tiny16", {p.name: p.read_bytes() for p in tiny.iterdir() if p.is_file()})
        with launch_app(tmp, base_env=hub.client_env(tmp / "hf-home"), **env) as (url, log):
            yield SimpleNamespace(url=url, hub=hub, log=log, default_resolution=default_resolution)
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "app-test-server.log").write_text(log.read_text())
