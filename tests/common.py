"""Shared paths and small helpers for the tests (plain module: fixtures live in conftest.py)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
# The tutorial's four 128×128 textures: data for tests, read from the shared folder, never copied here.
TUTORIAL_TEXTURES = Path(os.environ.get("PREDISTORT_TUTORIAL_TEXTURES",
                                        REPO.parent / "shared" / "data" / "tutorial_textures"))


def tutorial_paths():
    paths = sorted(TUTORIAL_TEXTURES.glob("image_*.png"))
    assert len(paths) == 4, f"expected the tutorial's 4 textures in {TUTORIAL_TEXTURES} (set PREDISTORT_TUTORIAL_TEXTURES)"
    return paths


def tutorial_textures(resolution=128):
    """The tutorial textures as [R,R,3] float tensors (values/255, as mi.Bitmap.convert gives them)."""
    out = []
    for p in tutorial_paths():
        im = Image.open(p).convert("RGB")
        if im.size != (resolution, resolution):
            im = im.resize((resolution, resolution), Image.LANCZOS)
        out.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0))
    return out


def run_python(code_or_args, env=None, timeout=300):
    """Run python (the venv's) in a subprocess from the repo root; return CompletedProcess (text)."""
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
