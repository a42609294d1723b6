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
   the ones its samples landed on filled from their neighbours (:func:`predistort.worldaim.fill_between`);
   for glass, every
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
from .worldaim import aim, instant

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
    silhouette, _ = transport.masks()
    goal = aim(picture, config, transport, fit)                                          # 2. target
    target, covered, plain = goal.target, goal.covered, goal.plain
    start = time.perf_counter()
    if tolerance_mm:                                                                      # 3. solve
        from .worldtolerance import robust_solve
        texture = robust_solve(picture, config, tolerance_mm, fit)
    else:
        texture = instant(goal, transport)
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
        mirror = goal.pixels
        seen = render_final / white.clamp_min(1e-3)
        metrics["mirror_error"] = round(_l1(seen, target, mirror), 5)
        metrics["mirror_error_plain"] = round(_l1(render_plain / white.clamp_min(1e-3), target, mirror), 5)
        metrics["mirror_pixels"] = int(mirror.sum())
    if tolerance_mm:
        from .worldtolerance import stand_map
        offsets, scores = stand_map(texture, picture, config, box_mm=tolerance_mm, fit=fit)
        metrics["tolerance"] = {"camera_mm": tolerance_mm, "offsets_mm": offsets,
                                "map": np.round(scores, 4).tolist(), "worst_predicted": round(float(scores.max()), 4)}
    return WorldResult(texture, plain, target, covered, render_plain, render_final, metrics)


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


def load_printed(source, config):
    """The texture that was printed for world `config` (a file ``apply`` or the page wrote): [rows, cols, 3] in
    [0, 1]. Refuses, naming the size it needs, a picture that is not the world's texture size."""
    texture = load_picture(source, longest=1 << 16)
    rows, cols = config.texture_shape
    if tuple(texture.shape[:2]) != (rows, cols):
        raise ValueError(f"The printed texture is {texture.shape[1]}×{texture.shape[0]} pixels but this setup's "
                         f"print is {cols}×{rows} at resolution {config.resolution}: give the pre-distorted texture "
                         f"made for this setup (predistorted.png), or set the setup's resolution to match it.")
    return texture


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
    copy_meshes(mesh_files, folder)
    return SceneConfig.load(folder / "setup.json")


def copy_meshes(mesh_files, folder):
    """Copy the uploaded mesh files (OBJ, PLY, STL; others are left out) into `folder`, each under its own file
    name; returns the copies' paths."""
    import shutil
    copies = []
    for mesh in mesh_files or []:
        name = Path(mesh).name
        if Path(name).suffix.lower() in (".obj", ".ply", ".stl"):
            shutil.copyfile(mesh, Path(folder) / name)
            copies.append(Path(folder) / name)
    return copies
