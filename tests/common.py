"""Shared paths and small helpers for the tests (plain module: fixtures live in conftest.py).

Test pictures come from the repository itself: :func:`picture_paths` are four of ``examples/`` (made by
``examples/make_examples.py``) as 128×128 PNG files, written once per test process into a temporary folder.
No test needs anything outside the repository.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PICTURES = ("landscape", "rings", "shapes", "text")      # examples/<name>.png, all 256×256 RGB
_made = {}


def picture_paths():
    """Four of the repository's example pictures as 128×128 RGB PNG files (in a temporary folder)."""
    if "paths" not in _made:
        folder = Path(tempfile.mkdtemp(prefix="predistort-test-pictures-"))
        paths = []
        for k, name in enumerate(PICTURES):
            path = folder / f"image_{k + 1:03d}.png"        # named as the tutorial names its textures
            Image.open(REPO / "examples" / f"{name}.png").convert("RGB").resize((128, 128), Image.LANCZOS).save(path)
            paths.append(path)
        _made["paths"] = paths
    return list(_made["paths"])


def picture_textures(resolution=128):
    """:func:`picture_paths` as [R,R,3] float tensors (values/255, as mi.Bitmap.convert gives them)."""
    out = []
    for p in picture_paths():
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
