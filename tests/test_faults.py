"""Faults: cancelled trainings, visitors who vanish, failures inside the renderer, and the queue as visitors see it.

Each test checks what the *next* visitor gets: a server that answers at once, not one stuck behind a dead job.
Most tests use the shared app (``app_server`` in conftest.py); the render-failure test starts its own instance
with a real Mitsuba failure injected from outside the package (a ``sitecustomize`` module, see FAULTS below).
Trainings are 16×16 so that every wait here is bounded by seconds, not minutes.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from common import REPO, picture_paths
from predistort.appserver import launch_app

import gradio_client
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import Status

PROMPT_S = 30          # "promptly": the next visitor's short request is served within this (2 shared cores)


def client(url):
    return Client(url, verbose=False, download_files=True)


def train_args(iterations, resolution=16, spp=4, picture=0, seed=0):
    return ([handle_file(str(picture_paths()[picture]))], "tutorial", iterations, spp, resolution, seed, 1.06, 0.45,
            "crop")


def wait_for_iterations(job, n, timeout=120):
    deadline = time.monotonic() + timeout
    while len(job.outputs()) < n + 1:                   # +1: the "starting" update
        assert not job.done(), f"the training ended early: {job.exception()}"
        assert time.monotonic() < deadline, "the training made no progress"
        time.sleep(0.1)


# -- the server process, as the operating system sees it ------------------------------------------------------
def server_pid(url):
    """The pid of the process listening on `url`'s port (Linux: /proc/net/tcp, then the owner of that socket)."""
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":    # 0A: LISTEN
                    inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in {f"socket:[{i}]" for i in inodes}:
                    return int(pid)
        except OSError:
            continue
    raise RuntimeError(f"no process listens on port {port}")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")     # utime + stime


def wait_until_idle(pid, timeout=20.0, window=2.0, cores=0.3):
    """Seconds until the server uses less than `cores` CPU over `window` s (a training uses about 1 core)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        before = cpu_seconds(pid)
        time.sleep(window)
        if (cpu_seconds(pid) - before) / window < cores:
            return time.monotonic() - start
    raise AssertionError(f"the server kept working for {timeout} s after its visitor left: a dead training runs on")


# -- cancelled and abandoned trainings -------------------------------------------------------------------------
def test_a_cancelled_training_frees_the_server_promptly(app_server):
    a, b = client(app_server.url), client(app_server.url)
    job = a.submit(*train_args(900), api_name="/train")            # ~1–2 minutes if nobody stopped it
    wait_for_iterations(job, 3)
    job.cancel()
    assert job.status().code == Status.CANCELLED
    # The next visitor's training and pre-distortion are served at once, not after the 900 iterations.
    start = time.monotonic()
    metrics = b.predict(*train_args(2, picture=1), api_name="/train")[2]
    assert metrics["iterations_run"] == 2 and not metrics["stopped"]
    assert b.predict(handle_file(str(picture_paths()[2])), 8, api_name="/predistort")[3]["spp"] == 8
    assert time.monotonic() - start < PROMPT_S
    # The cancelled session ended its training and kept what it had learned.
    deadline = time.monotonic() + PROMPT_S
    while "training…" in (status := a.predict(api_name="/status")):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert "trained in this session" in status and "16×16" in status
    assert a.predict(handle_file(str(picture_paths()[0])), api_name="/predistort")[3]["resolution"] == 16


VICTIM = """
import sys, time
import gradio_client
from gradio_client import Client, handle_file
client = Client(sys.argv[1], verbose=False)
job = client.submit([handle_file(sys.argv[2])], "tutorial", 900, 4, 16, 0, 1.06, 0.45, "crop", api_name="/train")
while len(job.outputs()) < 4:
    time.sleep(0.05)
print("training", flush=True)
time.sleep(600)                  # killed long before
"""


def test_a_client_that_disconnects_mid_training_does_not_block_the_next_visitor(app_server, tmp_path):
    script = tmp_path / "victim.py"
    script.write_text(VICTIM)
    pid = server_pid(app_server.url)
    victim = subprocess.Popen([sys.executable, str(script), app_server.url, str(picture_paths()[0])],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert victim.stdout.readline().strip() == "training"          # 3 iterations done, 897 to go
    finally:
        victim.send_signal(signal.SIGKILL)                              # the connection drops without a word
        victim.wait(timeout=30)
    # Gradio notices the closed stream and closes the generator; the training thread ends after its iteration.
    wait_until_idle(pid)
    start = time.monotonic()
    metrics = client(app_server.url).predict(*train_args(2, picture=1), api_name="/train")[2]
    assert metrics["iterations_run"] == 2 and time.monotonic() - start < PROMPT_S


# -- the queue, as a waiting visitor sees it --------------------------------------------------------------------
def test_waiting_visitors_see_their_place_in_the_queue(app_server):
    a, b, c = (client(app_server.url) for _ in range(3))
    first = a.submit(*train_args(900), api_name="/train")
    wait_for_iterations(first, 2)

    def place(job):
        deadline = time.monotonic() + 20
        while (s := job.status()).code != Status.IN_QUEUE or s.rank is None:
            assert time.monotonic() < deadline and not job.done(), s
            time.sleep(0.1)
        return s

    second = b.submit(*train_args(2, picture=1), api_name="/train")
    assert place(second).rank == 0                       # next in line (the running training is not counted)
    third = c.submit(*train_args(2, picture=2), api_name="/train")
    s3 = place(third)
    assert s3.rank == 1 and s3.queue_size >= 2
    assert second.status().rank == 0 and not first.done()
    a.predict(api_name="/stop")
    assert first.result(timeout=60)[2]["stopped"]
    assert second.result(timeout=60)[2]["iterations_run"] == 2
    assert third.result(timeout=60)[2]["iterations_run"] == 2


# -- one training thread at a time, even when a cancelled one is still ending ---------------------------------
@pytest.fixture
def tiny_session(tmp_path):
    from conftest import make_tiny_model
    from predistort.service import Session
    from predistort.settings import Settings
    return Session(Settings(default_weights=str(make_tiny_model(tmp_path / "m16", 16)), preview_spp=4))


def test_a_training_waits_for_the_previous_training_thread_and_says_so(tiny_session):
    from predistort import resources
    slots = resources.training_slots(tiny_session.settings.train_concurrency)
    assert slots.acquire(timeout=5)                         # a cancelled training's thread, still ending
    try:
        events = tiny_session.train([str(picture_paths()[0])], iterations=2, spp=2, resolution=16)
        assert next(events).stage == "starting"
        waiting = next(events)
        assert waiting.stage == "waiting" and "previous training" in waiting.description
    finally:
        slots.release()
    rest = list(events)
    assert rest[-1].done and rest[-1].metrics["iterations_run"] == 2


def test_a_training_stopped_while_waiting_says_so(tiny_session):
    from predistort import resources, settings
    slots = resources.training_slots(tiny_session.settings.train_concurrency)
    assert slots.acquire(timeout=5)
    try:
        events = tiny_session.train([str(picture_paths()[0])], iterations=2, spp=2, resolution=16)
        next(events), next(events)                          # starting, waiting
        tiny_session.stop()
        with pytest.raises(settings.ServiceError, match="Stopped before the training started"):
            next(events)
    finally:
        slots.release()
    assert not tiny_session.training                        # the session can train again


# -- a real failure inside the renderer -------------------------------------------------------------------------
# Injected from outside the package: Python imports ``sitecustomize`` at start-up from PYTHONPATH, and this one
# wraps two Renderer methods. With the magic values below they make Mitsuba itself fail inside the render lock,
# the worst way: a texture of 2 channels is written into the shared scene, so that its parameters_changed() and
# then every Dr.Jit texture call fails. Measured: one scene left like that fails *every* later render of the
# process, in every scene, until it is freed; the service must drop it and the next visitor must not notice.
FAULT_SPP = 13                   # /predistort with this spp fails
FAULT_TRAIN_SPP, FAULT_TRAIN_SEED = 3, 2   # a /train with spp 3 fails at its third render (seed 2)
FAULTS = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
import mitsuba as mi
import torch
from predistort import backend, render


def break_scene(renderer):
    with backend.RENDER_LOCK:
        r = renderer.resolution
        renderer.params[render.TEXTURE_KEY] = mi.TensorXf(torch.rand(r, r, 2))
        renderer.params.update()
        mi.render(renderer.scene, renderer.params, spp=1)       # raises: a real Dr.Jit / Mitsuba error


plain_render, plain_loss_and_grad = render.Renderer.render, render.Renderer.loss_and_grad


def faulty_render(self, texture, spp=4, seed=0, seed_grad=None):
    if spp == {FAULT_SPP}:
        break_scene(self)
    return plain_render(self, texture, spp=spp, seed=seed, seed_grad=seed_grad)


def faulty_loss_and_grad(self, texture, target, spp=4, seed=0, **kwargs):
    if spp == {FAULT_TRAIN_SPP} and seed == {FAULT_TRAIN_SEED}:
        break_scene(self)
    return plain_loss_and_grad(self, texture, target, spp=spp, seed=seed, **kwargs)


render.Renderer.render, render.Renderer.loss_and_grad = faulty_render, faulty_loss_and_grad
"""


@pytest.fixture(scope="module")
def faulty_app(tmp_path_factory):
    """An app of its own: the faults above injected, a 16×16 default model, room for one waiting request."""
    from conftest import make_tiny_model
    tmp = tmp_path_factory.mktemp("faulty-app")
    (tmp / "inject").mkdir()
    (tmp / "inject" / "sitecustomize.py").write_text(textwrap.dedent(FAULTS))
    model = make_tiny_model(tmp / "default16", 16)
    with launch_app(tmp, PYTHONPATH=str(tmp / "inject"), PREDISTORT_DEFAULT_WEIGHTS=str(model),
                    PREDISTORT_WARMUP="0", PREDISTORT_QUEUE_SIZE="1") as app:
        yield app.url, app.log


def test_a_failure_inside_the_renderer_reaches_the_visitor_and_the_server_recovers(faulty_app):
    url, log = faulty_app
    picture = handle_file(str(picture_paths()[0]))
    c = client(url)
    before = c.predict(picture, 8, api_name="/predistort")[3]
    with pytest.raises(AppError, match="server failed while rendering.*RuntimeError.*try again"):
        c.predict(picture, FAULT_SPP, api_name="/predistort")
    # The broken scene was dropped: the same request gives the same result as before the failure.
    after = c.predict(picture, 8, api_name="/predistort")[3]
    for key in ("l1_initial", "l1_final", "psnr_initial", "psnr_final"):
        assert after[key] == pytest.approx(before[key], abs=1e-5), key
    # Inside a training (the backward pass through dr.wrap): the visitor is told, the session keeps its model.
    with pytest.raises(AppError, match="server failed while rendering.*try again"):
        c.predict(*train_args(5, spp=FAULT_TRAIN_SPP), api_name="/train")
    status = c.predict(api_name="/status")
    assert "trained in this session" not in status and "training…" not in status
    metrics = c.predict(*train_args(2), api_name="/train")[2]          # this session can train again
    assert metrics["iterations_run"] == 2
    other = client(url)                                                # and so can everyone else
    assert other.predict(picture, 8, api_name="/predistort")[3]["l1_initial"] == pytest.approx(
        before["l1_initial"], abs=1e-5)
    assert "Traceback" in log.read_text()                              # the details are in the server's log


# -- a browser tab closed during its training -------------------------------------------------------------------
def test_a_tab_closed_during_training_does_not_keep_the_server_busy(browser, app_server):
    pid = server_pid(app_server.url)
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(app_server.url, wait_until="load")
    page.wait_for_selector("#predistort-button", timeout=60_000)
    page.get_by_role("tab", name="Several pictures · train").click()
    page.get_by_role("button", name="Use the example pictures").click()
    page.wait_for_function("document.querySelectorAll('#textures a, #textures tr').length > 0", timeout=30_000)
    for label, value in (("number input for Resolution, pixels (tutorial: 128)", "16"),
                         ("number input for Iterations (generalising layer: 30; tutorial: 100)", "1000")):
        box = page.get_by_label(label)
        box.fill(value)
        box.press("Enter")
    page.wait_for_function("document.querySelector('#estimate').innerText.includes('× 1000')", timeout=30_000)
    page.click("#train-button")
    page.wait_for_function("/Iteration [3-9]\\d*\\/1000/.test(document.querySelector('#train-progress').innerText)",
                           timeout=60_000)
    page.close()                                                   # ~1000 × 0.5 s of training left
    wait_until_idle(pid)
    start = time.monotonic()
    metrics = client(app_server.url).predict(*train_args(2, picture=3), api_name="/train")[2]
    assert metrics["iterations_run"] == 2 and time.monotonic() - start < PROMPT_S


def test_a_full_queue_refuses_new_requests_clearly_and_recovers(faulty_app):
    """PREDISTORT_QUEUE_SIZE=1: one training runs, one waits, the next request is refused with a clear message."""
    url, _ = faulty_app
    a, b, c = (client(url) for _ in range(3))
    first = a.submit(*train_args(900), api_name="/train")
    wait_for_iterations(first, 2)
    second = b.submit(*train_args(2, picture=1), api_name="/train")
    deadline = time.monotonic() + 20
    while second.status().code != Status.IN_QUEUE:
        assert time.monotonic() < deadline and not second.done(), second.status()
        time.sleep(0.1)
    with pytest.raises(gradio_client.utils.QueueError, match="Queue is full! Please try again"):
        c.predict(handle_file(str(picture_paths()[2])), 4, api_name="/predistort")
    first.cancel()                                  # /cancel is not queued: it works with a full queue
    assert second.result(timeout=PROMPT_S)[2]["iterations_run"] == 2
    assert c.predict(handle_file(str(picture_paths()[2])), 4, api_name="/predistort")[3]["spp"] == 4


def test_stop_in_the_page_works_while_the_queue_is_full(browser, faulty_app):
    """Stop and the status line run outside the queue, so a visitor can end their training even when the queue
    is full (queued, Stop itself was refused: "Queue is full")."""
    url, _ = faulty_app
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(url, wait_until="load")
    page.wait_for_selector("#predistort-button", timeout=60_000)
    page.get_by_role("tab", name="Several pictures · train").click()
    page.get_by_role("button", name="Use the example pictures").click()
    page.wait_for_function("document.querySelectorAll('#textures a, #textures tr').length > 0", timeout=30_000)
    for label, value in (("number input for Resolution, pixels (tutorial: 128)", "16"),
                         ("number input for Iterations (generalising layer: 30; tutorial: 100)", "1000")):
        box = page.get_by_label(label)
        box.fill(value)
        box.press("Enter")
    page.wait_for_function("document.querySelector('#estimate').innerText.includes('× 1000')", timeout=30_000)
    page.click("#train-button")
    page.wait_for_function("/Iteration [3-9]\\d*\\/1000/.test(document.querySelector('#train-progress').innerText)",
                           timeout=60_000)
    waiting = client(url).submit(*train_args(2, picture=1), api_name="/train")     # fills the queue (size 1)
    deadline = time.monotonic() + 20
    while waiting.status().code != Status.IN_QUEUE:
        assert time.monotonic() < deadline and not waiting.done(), waiting.status()
        time.sleep(0.1)
    with pytest.raises(gradio_client.utils.QueueError):
        client(url).predict(handle_file(str(picture_paths()[2])), 4, api_name="/predistort")
    page.click("#stop-button")
    page.wait_for_function("document.querySelector('#train-progress').innerText.includes('Done')", timeout=60_000)
    assert waiting.result(timeout=PROMPT_S)[2]["iterations_run"] == 2
    page.close()
