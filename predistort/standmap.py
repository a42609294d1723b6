"""Where you may stand: the predicted ratio of a pre-distortion over camera offsets around its place.

For a pre-distorted texture x of a picture P, the ratio at a camera offset o is predicted from that offset's
light transport (:mod:`predistort.probe`), with no render::

    ratio(o) = |clamp(A_o x + b_o) − P_o| / |clamp(A_o P + b_o) − P_o|

P_o the picture as the moved camera should see it (:func:`predistort.tolerance.view_target`), A_o, b_o the
transport of the scene with the camera moved by o (:func:`predistort.tolerance.view_scene`), probed once and
cached. :func:`stand_map` evaluates it on a grid over x and y and at the two ends of z: the page's small map,
``metrics.json["tolerance"]`` and ``apply``'s one line.

Limits: the camera moves by translation only; above :data:`MAP_RESOLUTION` the map is predicted at that
size (the images area-averaged to it, the film scaled alike).
"""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import probe_cache
from .tolerance import View, at_resolution, predicted_ratio, view_scene

MAP_RESOLUTION = 128         # the stand map predicts at most at this size (see stand_map)
MAP_BOX_MM = 3.0             # ... over this box when the pre-distortion was made for the exact spot


@dataclass
class StandMap:
    """Predicted ratios over camera offsets: ``offsets_mm`` the grid's side values (x and y), ``ratios``
    [n, n] (row: y, column: x) at z = 0, ``z_ratios`` {dz mm: ratio} on the axis, ``box`` the ±mm judged."""
    offsets_mm: list
    ratios: np.ndarray
    z_ratios: dict
    box_mm: float

    @property
    def all(self):
        return list(self.ratios.reshape(-1)) + list(self.z_ratios.values())

    @property
    def worst(self):
        return float(max(self.all))

    @property
    def mean(self):
        return float(np.mean(self.all))

    def summary(self):
        """The ``tolerance`` entry of metrics.json."""
        return {"box_mm": self.box_mm, "worst_predicted_ratio": round(self.worst, 4),
                "mean_predicted_ratio": round(self.mean, 4), "offsets_mm": self.offsets_mm,
                "map": np.round(self.ratios, 4).tolist(),
                "z": {f"{k:g}": round(v, 4) for k, v in self.z_ratios.items()}}

    def line(self):
        return (f"Within ±{self.box_mm:g} mm of the camera's place (x, y, z): predicted ratio worst "
                f"{self.worst:.3f}, mean {self.mean:.3f} (1 = no better than no pre-distortion).")

    def image(self, size=(3.2, 2.8), dpi=100):
        """The map as a PIL image: predicted ratio over the camera's sideways offset (x right, y down)."""
        from matplotlib.figure import Figure
        from PIL import Image
        import io
        fig = Figure(figsize=size, dpi=dpi)
        ax = fig.add_subplot()
        o = self.offsets_mm
        half = (o[-1] - o[0]) / (len(o) - 1) / 2                  # cells centred on the probed offsets
        im = ax.imshow(self.ratios, extent=(o[0] - half, o[-1] + half, o[-1] + half, o[0] - half), vmin=0, vmax=1,
                       cmap="viridis_r")
        for (i, yv) in enumerate(o):
            for (j, xv) in enumerate(o):
                ax.text(xv, yv, f"{self.ratios[i, j]:.2f}", ha="center", va="center", fontsize=6, color="w")
        ax.set_xticks(o)
        ax.set_yticks(o)
        ax.set_xlabel("camera sideways x (mm)")
        ax.set_ylabel("camera y (mm)")
        ax.set_title(f"predicted ratio (worst {self.worst:.2f})", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def stand_map(config, textures, pictures, box_mm=3.0, points=3, progress=None, resolution=None):
    """Predict the ratio of `textures` (the pre-distortions of `pictures`, [N, R, R, 3]) over camera
    offsets around the nominal scene `config`: a points × points grid over ±`box_mm` in x and y, and ±`box_mm`
    in z — one (cached) probe per offset, no renders. Above `resolution` (default :data:`MAP_RESOLUTION`)
    the prediction runs at that size, both images area-averaged to it (the map is about where one may stand,
    not about fine detail; probes stay cheap). Returns a :class:`StandMap`."""
    if not box_mm > 0 or points < 2:
        raise ValueError(f"stand_map(): box_mm must be positive and points at least 2, got {box_mm} and {points}")
    textures, pictures = torch.as_tensor(textures).float(), torch.as_tensor(pictures).float()
    size = min(config.resolution, resolution or MAP_RESOLUTION)
    if size != config.resolution:
        config = at_resolution(config, size)
        textures, pictures = (F.interpolate(x.permute(0, 3, 1, 2), size=(size, size), mode="area").permute(0, 2, 3, 1)
                              for x in (textures, pictures))
    side = np.linspace(-box_mm, box_mm, points).round(6).tolist()
    todo = [View(camera=(x, y, 0.0)) for y in side for x in side] + [View(camera=(0.0, 0.0, s * box_mm))
                                                                     for s in (-1, 1)]
    ratios = []
    for i, v in enumerate(todo):
        transport = probe_cache.transport_for(view_scene(config, v))
        ratios.append(predicted_ratio(transport, config, v, textures, pictures))
        if progress:
            progress((i + 1) / len(todo), f"predicted at {len(ratios)}/{len(todo)} camera offsets")
    grid = np.array(ratios[:points * points]).reshape(points, points)
    return StandMap(side, grid, {-box_mm: ratios[-2], box_mm: ratios[-1]}, float(box_mm))
