"""Pre-distort a picture for any world: its target, the solve over the pixels that show it, renders and scores.

The phases (:func:`predistort_world`):

1. *Light transport.* The world's ``render(T) = A·T + b`` (:func:`predistort.probe_cache.transport_for`),
   with its object masks: the pixels whose camera ray first meets an object (the *silhouette*) and those of
   them whose light comes from the print (*through*: for a mirror, its pixels that reflect the print).
2. *Target.* The picture on :func:`predistort.target.target_rect` (the world's ``target``; a mirror's card;
   glass: the print seen without the objects), as the camera sees it, with the pixels it covers.
3. *Solve.* :func:`predistort.solve.solve_pixels` over the pixels that should show the picture: for a
   mirror, the target's pixels that see the print in the mirror (the rest of the print is seen directly and
   stays white paper), aiming at the picture × the predicted render of a white print (the picture as a
   reflectance: how the print near the mirror is lit is not the picture's to undo), then the texels between
   the ones its samples landed on filled from their neighbours (:func:`fill_between`); for glass, every
   target pixel (the objects' silhouette and the print around it), starting from the picture printed plain.
4. *Scores* (Mitsuba renders, ``spp`` samples a pixel), written to ``metrics.json`` by :func:`save`:

   - ``l1_initial``, ``l1_final``, ``l1_ratio``: mean |render − target| over the target's pixels, for the
     picture printed plain and for the pre-distortion, and their ratio (< 1: better than printing plain);
   - ``silhouette``: the same three over the target's pixels inside the objects' silhouette;
   - ``mirror_error`` (a world with a mirror): mean |render ÷ render of an all-white print − target| over the
     mirror's pixels whose reflection reaches the print; the division takes out the light the mirror and
     the room take from the print, so it measures the picture's geometry alone.

Limits: the instant solve only (no trained layer, no refinement); the print's lighting is modelled per film
pixel (:mod:`predistort.probe`'s calibration, smooth over 4 pixels), so a glass object lying on the print,
whose sharp contact shadow the probe does not trace, is predicted 10–25 % too bright right beside the contact
(a 20 mm glass rod on the print, measured); the texture is the print's aspect with
``resolution`` pixels on its long side. The world's scene checks (:class:`predistort.scene.SceneConfig`) and
the probe (a camera that sees none of the objects, a mirror that reflects only the sky) refuse with a
sentence that says what to move.
"""
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .images import save_png, side_by_side
from .probe_cache import transport_for
from .solve import solve_pixels
from .target import on_print, world_target

EVAL_SPP = 64                 # samples a pixel of the scoring renders


@dataclass
class WorldResult:
    """What :func:`predistort_world` made: textures [rows, cols, 3], images [H, W, 3], masks [H, W], metrics."""
    predistorted: torch.Tensor
    plain: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    render_plain: torch.Tensor
    render_final: torch.Tensor
    metrics: dict = field(default_factory=dict)

    def save(self, out_dir):
        """Write predistorted.png, texture.png (the picture printed plain), target.png, render_initial.png,
        render_final.png, comparison.png and metrics.json to `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_png(self.predistorted, out / "predistorted.png")
        save_png(self.plain, out / "texture.png")
        for name, image in (("target", self.target), ("render_initial", self.render_plain),
                            ("render_final", self.render_final)):
            save_png(image, out / f"{name}.png")
        side_by_side([self.target, self.render_plain, self.render_final],
                     ["target", "printed plain", "pre-distorted"],
                     [f"{self.metrics['pixels']} pixels", f"L1 {self.metrics['l1_initial']:.4f}",
                      f"L1 {self.metrics['l1_final']:.4f}"]).save(out / "comparison.png")
        (out / "metrics.json").write_text(json.dumps(self.metrics, indent=2) + "\n")
        return out


def _l1(a, b, pixels):
    return float((a - b).abs()[pixels].mean()) if pixels.any() else float("nan")


def _scores(render_plain, render_final, target, pixels):
    initial, final = _l1(render_plain, target, pixels), _l1(render_final, target, pixels)
    return {"l1_initial": round(initial, 5), "l1_final": round(final, 5),
            "l1_ratio": round(final / max(initial, 1e-12), 4), "pixels": int(pixels.sum())}


def predistort_world(picture, config, fit="crop", spp=EVAL_SPP, renderer=None, progress=None, tolerance_mm=0.0):
    """Pre-distort `picture` [h, w, 3] (float in [0, 1], any size) for world `config`: a :class:`WorldResult`.

    Parameters: ``fit`` how the picture meets the target's aspect (``crop``: its centre; ``resize``: whole,
    squashed); ``spp`` samples a pixel of the scoring renders; ``renderer`` a
    :class:`predistort.render.Renderer` of `config` to reuse; ``progress(fraction, message)`` for the probe;
    ``tolerance_mm``: one print for the camera anywhere within ± this many mm of its place
    (:func:`predistort.worldtolerance.robust_solve`: 7 views, each probed once), and the predicted score
    over that box in ``metrics['tolerance']`` (:func:`predistort.worldtolerance.stand_map`).
    """
    from .render import Renderer
    renderer = renderer or Renderer(config)
    start = time.perf_counter()
    transport = transport_for(config, renderer=renderer, progress=progress)              # 1. light transport
    probe_seconds = time.perf_counter() - start
    silhouette, through = transport.masks()
    target, covered = world_target(picture, config, fit)                                  # 2. target
    plain = on_print(picture, config, fit)
    start = time.perf_counter()
    if config.has_mirror:                                                                 # 3. solve
        # The picture's reflectance in the mirror: the render ÷ that of a white print (the light the mirror
        # and the room take from the print near it is the lighting's, not the picture's).
        pixels = covered & through
        white = transport.render(torch.ones_like(plain))
        texture = fill_between(solve_pixels(target * white, pixels, transport, torch.ones_like(plain)),
                               seen_texels(transport, pixels))
    else:
        pixels = covered
        texture = fill_between(solve_pixels(target, pixels, transport, plain), seen_texels(transport, pixels))
    if tolerance_mm:
        from .worldtolerance import robust_solve
        texture = robust_solve(picture, config, tolerance_mm, fit)
    solve_seconds = time.perf_counter() - start
    render_plain = renderer.render(plain, spp=spp, seed=0).cpu()                          # 4. scores
    render_final = renderer.render(texture, spp=spp, seed=0).cpu()
    metrics = {"world": config.describe_objects(), "resolution": config.resolution,
               "texture": list(config.texture_size), "film": list(config.film_size), "spp": spp,
               **_scores(render_plain, render_final, target, covered),
               "silhouette": _scores(render_plain, render_final, target, covered & silhouette),
               "probe_seconds": round(probe_seconds, 3), "solve_seconds": round(solve_seconds, 3),
               "pruned": transport.info.get("pruned")}
    if config.has_mirror:
        white = renderer.render(torch.ones_like(plain), spp=spp, seed=1).cpu()
        mirror = covered & through
        seen = render_final / white.clamp_min(1e-3)
        metrics["mirror_error"] = round(_l1(seen, target, mirror), 5)
        metrics["mirror_error_plain"] = round(_l1(render_plain / white.clamp_min(1e-3), target, mirror), 5)
        metrics["mirror_pixels"] = int(mirror.sum())
    if tolerance_mm:
        from .worldtolerance import stand_map
        offsets, scores = stand_map(texture, picture, config, box_mm=tolerance_mm, fit=fit)
        metrics["tolerance"] = {"camera_mm": tolerance_mm, "offsets_mm": offsets, "map": np.round(scores, 4).tolist(),
                                "worst_predicted": round(float(scores.max()), 4)}
    return WorldResult(texture, plain, target, covered, render_plain, render_final, metrics)


FILL_SIGMA = 1.5             # texels: the gaps between the samples' texels are filled from this close
FILL_DENSITY = 0.05         # ... where the seen texels around make up at least this share (else: white paper)


def seen_texels(transport, pixels):
    """[rows, cols] bool: the texels that the film pixels `pixels` [H, W] see (A's columns with an entry)."""
    from .solve import rows_of
    A, _ = rows_of(transport, pixels)
    seen = torch.zeros(A.shape[1], dtype=torch.bool)
    seen[A.col_indices().long()] = True
    return seen.reshape(transport.texture_shape)


def fill_between(texture, seen, sigma=FILL_SIGMA):
    """`texture` [rows, cols, 3] with the texels no pixel's samples landed on, but that lie among texels that
    did, set to their neighbours' (normalised Gaussian) mean.

    Why: where a mirror squeezes a long strip of the print into one pixel (a ball's horizon, a cone's tip), the
    pixel's few traced samples land on scattered texels; the solve sets those, but the pixel really sees the
    whole strip. Filled, the strip carries the colour the solve chose for it. Texels far from any seen one
    keep the solve's start (white paper)."""
    from .probe import _blur
    weight = seen.float()
    density = _blur(weight, sigma)
    filled = torch.stack([_blur(texture[..., c] * weight, sigma) for c in range(3)], -1)
    filled = filled / density.clamp_min(1e-6)[..., None]
    use = (~seen) & (density >= FILL_DENSITY)
    return torch.where(use[..., None], filled.clamp(0, 1), texture)


def load_picture(source, longest=2048):
    """A picture file as a float tensor [h, w, 3] in [0, 1] (upright, 8-bit values ÷ 255), shrunk to at most
    `longest` pixels on its long side (a world's target never needs more)."""
    from PIL import Image
    from .images import load_image
    image = load_image(source)
    if max(image.size) > longest:
        k = longest / max(image.size)
        image = image.resize((max(1, round(image.width * k)), max(1, round(image.height * k))), Image.LANCZOS)
    return torch.from_numpy(np.array(image, dtype=np.uint8)).float().div_(255)


MAX_SETUP_BYTES = 1 << 20     # a setup file larger than this is refused before it is read


def world_from_uploads(setup_file, mesh_files, folder):
    """The world of an uploaded setup file and its mesh files, read from `folder` (a fresh folder of the
    visitor's own): the setup is copied there as ``setup.json``, each mesh under its own file name, so that
    the setup's ``file`` names can reach nothing but these uploads. Raises ValueError with what to change."""
    import shutil
    from .scene import SceneConfig
    if setup_file is None:
        raise ValueError("Upload a setup file (the world's JSON: print, objects, camera).")
    size = Path(setup_file).stat().st_size
    if size > MAX_SETUP_BYTES:
        raise ValueError(f"The setup file is {size / 2**20:.1f} MB; a setup is a few kB of JSON: upload the right "
                         f"file.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(setup_file, folder / "setup.json")
    for mesh in mesh_files or []:
        name = Path(mesh).name
        if Path(name).suffix.lower() in (".obj", ".ply", ".stl"):
            shutil.copyfile(mesh, folder / name)
    return SceneConfig.load(folder / "setup.json")
