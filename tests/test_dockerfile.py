"""The Docker Space image's contract: hadolint-clean Dockerfile, base, LLVM, user, port, command, copies.

No Docker engine is needed: the Dockerfile is linted with the virtualenv's hadolint and parsed here.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
REQUIREMENTS = ROOT / "requirements.txt"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments and blank lines dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comment lines may sit inside a continued instruction too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends with a continued line"
    return result


INSTRUCTIONS = _instructions()


def _args(keyword: str) -> list[str]:
    return [args for kw, args in INSTRUCTIONS if kw == keyword]


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _args("ENV"):
        for item in shlex.split(args):
            name, sep, value = item.partition("=")
            assert sep, f"use the ENV name=value form: {args!r}"
            env[name] = value
    return env


def _arg_defaults() -> dict[str, str]:
    defaults = {}
    for args in _args("ARG"):
        name, _, value = args.partition("=")
        defaults[name] = value
    return defaults


def _copy_sources() -> list[str]:
    sources = []
    for args in _args("COPY"):
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        assert len(words) >= 2, f"COPY needs a source and a destination: {args!r}"
        sources += words[:-1]
    return sources


def _dockerignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _is_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last matching pattern wins, '!' re-includes, a folder covers its content."""
    path = path.strip("/")
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, c) for prefix in prefixes for c in candidates):
            ignored = not negate
    return ignored


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), f"hadolint not found next to {sys.executable}: pip install -r requirements-dev.txt"
    result = subprocess.run(
        [str(hadolint), str(DOCKERFILE)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_python_311_on_bookworm():
    bases = _args("FROM")
    assert bases, "no FROM"
    image = bases[-1].split()[0]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-(slim-)?bookworm(@sha256:[0-9a-f]{64})?", image), image


def test_libllvm19_installed_lean():
    runs = [args for args in _args("RUN") if "apt-get install" in args]
    assert runs, "no apt-get install"
    llvm = [args for args in runs if re.search(r"\blibllvm19\b", args)]
    assert llvm, "libllvm19 is not installed (Dr.Jit needs LLVM >= 18)"
    for args in runs:
        assert "--no-install-recommends" in args, args
        assert "apt-get update" in args, f"update in the same layer: {args}"
        assert "rm -rf /var/lib/apt/lists/*" in args, f"clean the lists in the same layer: {args}"
    assert not re.search(r"libllvm1[0-7]\b|llvm-1[0-7]\b", " ".join(runs)), "an LLVM older than 18 would crash Dr.Jit"
    assert _env().get("DRJIT_LIBLLVM_PATH") == "/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1"


def test_runs_as_uid_1000_with_writable_home():
    useradds = [args for args in _args("RUN") if "useradd" in args]
    assert useradds and re.search(r"(--uid|-u)[ =]1000\b", useradds[0]), "no user with uid 1000"
    name = re.search(r"useradd\b.*?\s([a-z_][a-z0-9_-]*)\s*(?:&&|$)", useradds[0])
    assert name, useradds[0]
    assert "--create-home" in useradds[0] or re.search(r"\s-m\b", useradds[0]), "the user needs a home (~/.drjit)"
    users = _args("USER")
    assert users, "the app must not run as root"
    final_user = users[-1].split(":")[0]
    assert final_user in ("1000", name.group(1)), users[-1]
    env = _env()
    assert env.get("HOME") == f"/home/{name.group(1)}" == "/home/user"
    assert _args("WORKDIR")[-1] == "/home/user/app"


def test_runtime_environment():
    env = _env()
    assert env.get("GRADIO_SERVER_NAME") == "0.0.0.0"
    assert env.get("GRADIO_SERVER_PORT") == "7860"
    assert env.get("PYTHONUNBUFFERED") == "1"


def test_port_and_command():
    assert any("7860" in args.split() for args in _args("EXPOSE"))
    cmd = _args("CMD")
    assert cmd, "no CMD"
    assert json.loads(cmd[-1]) == ["python", "app.py"], "exec form, running app.py"


def test_pip_installs_pinned_requirements_with_cpu_torch_index():
    pips = [args for args in _args("RUN") if re.search(r"\bpip3? install\b", args)]
    assert pips, "no pip install"
    install = next((args for args in pips if "-r requirements.txt" in args), None)
    assert install, "pip install -r requirements.txt"
    assert "--no-cache-dir" in install
    assert re.search(r"--extra-index-url\s+\"?\$\{?TORCH_INDEX\}?\"?", install), install
    assert _arg_defaults().get("TORCH_INDEX") == "https://download.pytorch.org/whl/cpu"
    assert "requirements.txt" in _copy_sources()


@pytest.mark.parametrize("source", _copy_sources())
def test_copy_source_exists_and_is_in_build_context(source):
    assert (ROOT / source).exists(), f"COPY {source}: not in the repository (yet)"
    assert not _is_ignored(source, _dockerignore_patterns()), f"COPY {source}: excluded by .dockerignore"


def test_requirements_are_pinned():
    lines = [line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    lines = [line for line in lines if line]
    assert lines
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?==[A-Za-z0-9.+!_-]+(\s*;.*)?", line), (
            f"not pinned with ==: {line!r}"
        )


def test_dockerignore_keeps_local_state_out():
    patterns = _dockerignore_patterns()
    for path in (".venv", ".git", "tests", "bench", "artifacts", "predistort/__pycache__", ".pytest_cache"):
        assert _is_ignored(path, patterns), f"{path} is sent to the Docker build context"
    assert ".venv" in patterns and ".git" in patterns


def test_gpu_gets_optix_from_the_driver():
    """cuda_ad_rgb traces rays with OptiX; the NVIDIA runtime mounts libnvoptix.so.1 only for 'graphics'."""
    capabilities = set(_env().get("NVIDIA_DRIVER_CAPABILITIES", "").split(","))
    assert capabilities == {"all"} or {"compute", "utility", "graphics"} <= capabilities, capabilities
