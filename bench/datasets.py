"""Images for benchmarks: the tutorial's four textures, and photographs that no predistort model trained on.

- ``tutorial_textures(res)``: ../shared/data/tutorial_textures/image_00{1..4}.png (128×128), resized if needed.
  Override the folder with PREDISTORT_TUTORIAL_TEXTURES.
- ``unseen_photos(res)``: eight real photographs bundled in the scikit-image wheel (``skimage.data``: public
  domain / CC0 images, see its documentation), centre-cropped to a square and resized. No model in this
  project is trained on photographs, so these are unseen by construction.
"""
import os
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


def tutorial_textures(res=128):
    paths = sorted(TUTORIAL_DIR.glob("image_*.png"))
    if len(paths) != 4:
        raise FileNotFoundError(f"expected the tutorial's 4 textures in {TUTORIAL_DIR} (set PREDISTORT_TUTORIAL_TEXTURES)")
    return [_tensor(_square(Image.open(p), res)) for p in paths]


def unseen_photos(res=128, names=PHOTOS):
    import skimage.data
    out = []
    for name in names:
        array = getattr(skimage.data, name)()
        if array.dtype != np.uint8:
            array = (255 * (array - array.min()) / max(np.ptp(array), 1e-9)).astype(np.uint8)
        out.append(_tensor(_square(Image.fromarray(array), res)))
    return out
