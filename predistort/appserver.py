"""Start the web app (``python app.py``) in a child process on a free loopback port, for tests and benchmarks.

The app is started exactly as the Dockerfile starts it — ``python app.py`` with ``GRADIO_SERVER_NAME`` and
``GRADIO_SERVER_PORT`` — so whatever talks to it (gradio_client, a browser, raw HTTP) meets the deployed
code path. :func:`launch_app` is a context manager yielding an :class:`AppProcess`; the process is stopped
on exit. Needs the repository checkout (``app.py`` beside the package).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNNING: list = []          # the AppProcess of every app launch_app is running now (tests ask them for stacks)


def free_port():
    """A TCP port that nothing listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppProcess:
    """A running app: its ``url``, ``port``, ``log`` (stdout + stderr file), ``proc`` and ``start_seconds``
    (from launch until it answered)."""
    url: str
    port: int
    log: Path
    proc: subprocess.Popen
    start_seconds: float

    @property
    def pid(self):
        return self.proc.pid

    def stacks(self, wait_s=2.0):
        """Every thread's stack in the app now (app.py dumps them to its log on SIGUSR1), as text."""
        if self.proc.poll() is not None:
            return f"(the app has exited with status {self.proc.returncode})"
        start = self.log.stat().st_size
        os.kill(self.proc.pid, signal.SIGUSR1)
        time.sleep(wait_s)
        with open(self.log, errors="replace") as f:
            f.seek(start)
            return f.read()


@contextlib.contextmanager
def launch_app(log_dir, timeout=180, base_env=None, **extra_env):
    """Run ``python app.py`` on a free loopback port; yield an :class:`AppProcess`; stop it afterwards.

    The environment is `base_env` (default: this process's) plus GRADIO_SERVER_NAME/PORT and `extra_env`.
    The app's output goes to ``log_dir/app-<port>.log``. Raises RuntimeError (with the log's end) when the
    app exits or does not answer within `timeout` seconds.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**(os.environ if base_env is None else base_env), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           **extra_env}
    log = log_dir / f"app-{port}.log"
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
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
            time.sleep(0.1)
        app = AppProcess(url, port, log, proc, time.perf_counter() - start)
        RUNNING.append(app)
        yield app
    finally:
        RUNNING[:] = [a for a in RUNNING if a.proc is not proc]
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
