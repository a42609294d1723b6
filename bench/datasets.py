"""Images for benchmarks: the tutorial's four textures, and photographs that no predistort model trained on.

- ``tutorial_textures(res)``: the tutorial's image_00{1..4}.png (128×128), resized if needed, read from
  PREDISTORT_TUTORIAL_TEXTURES (default ../shared/data/tutorial_textures beside the checkout). They are not
  part of this repository: they come with Mitsuba's tutorials (the ``mitsuba-tutorials`` repository).
  A benchmark that needs them calls :func:`require_tutorial_textures` first, which says in one line where
  to get them when they are missing.
- ``unseen_photos(res)``: eight real photographs bundled in the scikit-image wheel (``skimage.data``: public
  domain / CC0 images, see its documentation), centre-cropped to a square and resized. No model in this
  project is trained on photographs, so these are unseen by construction.
"""
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
TUTORIAL_DIR = Path(os.environ.get("PREDISTORT_TUTORIAL_TEXTURES", REPO.parent / "shared" / "data" / "tutorial_textures"))
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry", "camera", "hubble_deep_field"]


def _square(im, res):
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return im.resize((res, res), Image.LANCZOS) if s != res else im


def _tensor(im):
    return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)


MISSING = ("the tutorial's four textures (image_001.png … image_004.png) are not in {folder}: they come with "
           "Mitsuba's tutorials (github.com/mitsuba-renderer/mitsuba-tutorials); put them in a folder and set "
           "PREDISTORT_TUTORIAL_TEXTURES to it.")


def tutorial_paths():
    """The four texture files, or FileNotFoundError with :data:`MISSING`'s one-line explanation."""
    paths = sorted(TUTORIAL_DIR.glob("image_*.png"))
    if len(paths) != 4:
        raise FileNotFoundError(MISSING.format(folder=TUTORIAL_DIR))
    return paths


def require_tutorial_textures():
    """Exit with status 2 and one line on stderr (no traceback) when the tutorial's textures are missing."""
    try:
        tutorial_paths()
    except FileNotFoundError as e:
        sys.exit(f"{Path(sys.argv[0]).name}: {e}")


def tutorial_textures(res=128):
    return [_tensor(_square(Image.open(p), res)) for p in tutorial_paths()]


def unseen_photos(res=128, names=PHOTOS):
    import skimage.data
    out = []
    for name in names:
        array = getattr(skimage.data, name)()
        if array.dtype != np.uint8:
            array = (255 * (array - array.min()) / max(np.ptp(array), 1e-9)).astype(np.uint8)
        out.append(_tensor(_square(Image.fromarray(array), res)))
    return out
