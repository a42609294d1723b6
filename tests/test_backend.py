"""Backend choice and the LLVM check: a too-old or missing LLVM is a Python error, never an abort."""
from pathlib import Path

import pytest

from common import run_python
from predistort.backend import NO_GPU

OLD_LLVMS = [p for p in ("/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1", "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1")
             if Path(p).exists()]

# Renders and back-propagates once: with LLVM 14/15 and no check, this line aborts the process (SIGABRT).
TRAIN_STEP = """
import torch
from predistort.render import Renderer
from predistort.scene import SceneConfig
r = Renderer(SceneConfig(resolution=16))
t = torch.rand(16, 16, 3)
print("loss", r.loss_and_grad(t, t, spp=1)[0])
"""


@pytest.mark.skipif(not OLD_LLVMS, reason="no Debian LLVM 14/15 on this machine to reproduce the abort with")
def test_old_llvm_is_a_clear_error_not_an_abort():
    result = run_python(TRAIN_STEP, env={"DRJIT_LIBLLVM_PATH": OLD_LLVMS[0], "PREDISTORT_VARIANT": "llvm_ad_rgb"})
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])   # an exception, not -6 (abort)
    assert "BackendError" in result.stderr
    assert "needs LLVM 18 or newer" in result.stderr and "libllvm19" in result.stderr
    assert "DRJIT_LIBLLVM_PATH" in result.stderr
    assert "Cannot select:" not in result.stderr            # what the real abort prints


@pytest.mark.skipif(not OLD_LLVMS, reason="no Debian LLVM 14/15 on this machine to reproduce the abort with")
def test_cli_with_old_llvm_prints_one_line_and_exits_2(tmp_path):
    from common import picture_paths
    result = run_python(["-m", "predistort", "train", "--textures", str(picture_paths()[0]), "--iterations", "1",
                         "--resolution", "16", "--fit", "resize", "--out", str(tmp_path / "w")],
                        env={"DRJIT_LIBLLVM_PATH": OLD_LLVMS[0], "PREDISTORT_VARIANT": "llvm_ad_rgb"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: No usable Mitsuba variant") and "Traceback" not in result.stderr
    assert not (tmp_path / "w").exists()


def test_missing_llvm_is_a_clear_error():
    result = run_python(TRAIN_STEP, env={"DRJIT_LIBLLVM_PATH": "/nonexistent/libLLVM.so", "PREDISTORT_VARIANT": "llvm_ad_rgb"})
    assert result.returncode == 1, result.stderr[-2000:]
    assert "BackendError" in result.stderr and "could not be found" in result.stderr
    assert "libllvm19" in result.stderr


def test_unknown_variant_is_refused():
    result = run_python("from predistort.backend import init; init()", env={"PREDISTORT_VARIANT": "scalar_spectral_nope"})
    assert result.returncode == 1
    assert "not a variant of this Mitsuba build" in result.stderr and "llvm_ad_rgb" in result.stderr


def test_default_choice_works_here():
    """cuda_ad_rgb where a GPU works, else llvm_ad_rgb with a new enough LLVM; the train step runs."""
    result = run_python(TRAIN_STEP + "from predistort import backend; import drjit as dr\n"
                        "print('variant', backend.init(), tuple(dr.detail.llvm_version()) if backend.init().startswith('llvm') else '')",
                        env={"PREDISTORT_VARIANT": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loss" in result.stdout
    variant_line = [l for l in result.stdout.splitlines() if l.startswith("variant")][0]
    assert "cuda_ad_rgb" in variant_line or "llvm_ad_rgb" in variant_line


# -- the GPU check: CUDA only after a real test render, else llvm with the reason --------------------------------
# These tests make the CUDA candidate fail in a child process, so the test process's own variant is untouched.
# Pretending that Dr.Jit found a CUDA driver sends the candidate through the real checks on a CPU machine; on a
# machine with a GPU, NO_GPU_ENV hides it from the child (and from the render check it starts), so that the
# candidate fails the same way there: every test here passes with and without a GPU.
NO_GPU_ENV = {"CUDA_VISIBLE_DEVICES": ""}
PRETEND_GPU = """
import logging
logging.basicConfig(format="LOG %(levelname)s %(name)s: %(message)s")
from predistort import backend
backend._cuda_present = lambda: True                    # as on a machine with an NVIDIA driver
"""
AFTER = """
print("variant", backend.init())
print("reason", backend.fallback_reason)
print("describe", backend.describe())
""" + TRAIN_STEP


def _log_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("LOG ")]


def test_the_render_check_renders_for_real(monkeypatch):
    import mitsuba as mi
    from predistort import backend
    assert backend._render_check("llvm_ad_rgb") is None          # a working variant passes
    assert "cuda_ad_rgb" in mi.variants()                        # pip's Mitsuba has it, GPU or not
    for name, value in NO_GPU_ENV.items():                       # no GPU for the child: it really fails
        monkeypatch.setenv(name, value)
    reason = backend._render_check("cuda_ad_rgb")
    assert reason.startswith("a 4×4 test render failed:") and "CUDA" in reason, reason


def test_cuda_that_cannot_render_falls_back_to_llvm_with_one_warning():
    # Torch is told it can use CUDA, so the test render is what fails (as without libnvoptix.so.1).
    result = run_python(PRETEND_GPU + "backend._torch_cuda_reason = lambda: None\n" + AFTER,
                        env={"PREDISTORT_VARIANT": "", **NO_GPU_ENV})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "variant llvm_ad_rgb" in result.stdout
    assert "reason a 4×4 test render failed:" in result.stdout
    assert "GPU not used: a 4×4 test render failed" in result.stdout
    logs = _log_lines(result.stderr)
    assert len(logs) == 1 and logs[0].startswith("LOG WARNING predistort.backend: Rendering with llvm_ad_rgb, not "
                                                 "cuda_ad_rgb: a 4×4 test render failed"), logs
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics" in logs[0]
    assert "loss" in result.stdout                               # and the CPU renders and trains


def test_cuda_without_cuda_torch_falls_back_to_llvm_and_says_how_to_fix():
    # The real torch check: a CPU build of torch, or a CUDA build that sees no GPU (none here, or hidden).
    import torch
    result = run_python(PRETEND_GPU + AFTER, env={"PREDISTORT_VARIANT": "", **NO_GPU_ENV})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "variant llvm_ad_rgb" in result.stdout
    build = "a CPU build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda} but sees no GPU"
    assert f"cannot use CUDA ({build})" in result.stdout
    logs = _log_lines(result.stderr)
    assert len(logs) == 1 and "WARNING" in logs[0] and "TORCH_INDEX=https://pypi.org/simple" in logs[0], logs
    assert "loss" in result.stdout


def test_no_gpu_is_no_warning():
    result = run_python("import logging\nlogging.basicConfig(format='LOG %(levelname)s %(name)s: %(message)s')\n"
                        "from predistort import backend\n" + AFTER, env={"PREDISTORT_VARIANT": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    if "variant cuda_ad_rgb" in result.stdout:                   # a machine with a working GPU
        assert "reason None" in result.stdout and "on the GPU" in result.stdout
        return
    assert "variant llvm_ad_rgb" in result.stdout and f"reason {NO_GPU}" in result.stdout
    assert f"describe Mitsuba `llvm_ad_rgb` on the CPU (GPU not used: {NO_GPU})" in result.stdout
    assert _log_lines(result.stderr) == []                       # the normal CPU case is logged at INFO only


def test_forced_cuda_that_cannot_work_is_a_clear_error():
    result = run_python(PRETEND_GPU + "backend.init()", env={"PREDISTORT_VARIANT": "cuda_ad_rgb", **NO_GPU_ENV})
    assert result.returncode == 1, result.stderr[-2000:]
    assert "BackendError: No usable Mitsuba variant." in result.stderr
    assert "cuda_ad_rgb: torch" in result.stderr and "TORCH_INDEX=https://pypi.org/simple" in result.stderr
    assert "libllvm19" not in result.stderr                      # the LLVM fix is not the answer here
    assert "llvm_ad_rgb" not in result.stdout                    # forced: no fallback


def test_forced_llvm_is_not_second_guessed():
    result = run_python(PRETEND_GPU + AFTER, env={"PREDISTORT_VARIANT": "llvm_ad_rgb"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "variant llvm_ad_rgb" in result.stdout and "reason None" in result.stdout
    assert _log_lines(result.stderr) == []
