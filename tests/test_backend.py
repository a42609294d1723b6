"""Backend choice and the LLVM check: a too-old or missing LLVM is a Python error, never an abort."""
from pathlib import Path

import pytest

from common import run_python

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
