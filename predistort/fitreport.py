"""The calibration's answer: what :func:`predistort.calibrate.calibrate` found, as a table, a report and an overlay.

    Calibration             the fitted scene, each quantity against its nominal value with the fit's σ, the
                            residuals, the warnings (first in every report) and the notes, the overlay
    quantities(...)         the report's rows from the fitted θ (:data:`predistort.photofit.NAMES`)
    overlay(...)            the fitted prediction over the photo, the ball's rim in red, the fitted points in green
    write_report(...)       report.md, overlay.png and report.json
    film_for(config, size)  the fitted scene's film: the photo's aspect

Limits: the ± are the fit's own spread (Gauss–Newton, scaled by the residuals): the noise's share only.
"""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from .encoding import linear_to_srgb
from .target import camera_frame


def film_for(config, size):
    """The fitted scene's film: the photo's aspect, the long side the scene's resolution within [64, 1024]."""
    width, height = size
    side = min(1024, max(64, config.resolution))
    if width >= height:
        return side, max(8, round(side * height / width))
    return max(8, round(side * width / height)), side


@dataclass
class Calibration:
    """What :func:`predistort.calibrate.calibrate` found. ``scene`` the fitted :class:`~predistort.scene.SceneConfig` (for ``apply
    --scene``); ``quantities`` rows ``{name, nominal, fitted, uncertainty, unit}``; ``residual`` {``colour``:
    mean absolute colour error of the fitted prediction (linear, ÷ exposure gain) on the fitted pixels,
    ``ball_colour``: the same inside the ball, ``markers_px``: the fitted points' reprojection RMS in photo
    pixels (the aligned print's lattice, or the markers' corners where the alignment failed), ``markers``: how
    many markers were found, ``marker_inset_px``: the detector's inset undone, ``aligned``: the correlation
    of the print's alignment (:mod:`predistort.printview`; None where it failed), ``points``: the points
    fitted, ``pixels``: colour-fit pixels, ``points_sigma``: the points' RMS in their own σ, ``tone_local`` and
    ``tone_global``: how the photo's brightness follows its local brightness, and its own, beyond the fitted
    exposure (:meth:`predistort.photofit.Model.tone_mapping`: 0 and 0 for a photo the model explains),
    ``described``: how far the fit is from the setup the scene describes (``ball_mm`` the ball's move, ``ior``
    and ``nominal_ior``)};
    ``overlay`` [h, w, 3] uint8: the fitted prediction blended over
    the photo, the ball's fitted rim in red, the fitted points in green;
    ``seconds``; ``focal_35mm`` the EXIF (or given) focal length used, None if fitted freely; ``warnings``
    sentences saying not to print for this setup and what to do (each report's first lines:
    :meth:`to_markdown`, ``report.json``, the command line's first output); ``notes`` what else the reader
    should know."""
    scene: object
    quantities: list
    residual: dict
    overlay: np.ndarray
    seconds: float = 0.0
    focal_35mm: float = None
    notes: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def quantity(self, name):
        """The row of quantity `name`."""
        return next(q for q in self.quantities if q["name"] == name)

    def to_dict(self):
        return {"scene": self.scene.to_dict(), "quantities": self.quantities, "residual": self.residual,
                "seconds": round(self.seconds, 2), "focal_35mm": self.focal_35mm, "notes": self.notes,
                "warnings": self.warnings}

    def to_markdown(self):
        lines = [f"**Warning:** {w}" for w in self.warnings] + ([""] if self.warnings else [])
        lines += ["| quantity | nominal | fitted | ± | unit |", "|---|---:|---:|---:|---|"]
        for q in self.quantities:
            digits = 4 if q["unit"] == "" else 2
            lines.append(f"| {q['name']} | {q['nominal']:.{digits}f} | {q['fitted']:.{digits}f} | "
                         f"{q['uncertainty']:.{digits}f} | {q['unit']} |")
        r = self.residual
        aligned = (f"the print seen beside the ball aligned (correlation {r['aligned']:.4f})"
                   if r.get("aligned") is not None else "the print not aligned: the markers' corners fitted")
        lines += ["", f"Residual: colours {r['colour']:.4f} (inside the ball {r['ball_colour']:.4f}) mean absolute "
                      f"error on {r['pixels']} pixels; the print's {r.get('points', 0)} points "
                      f"{r['markers_px']:.3f} px RMS, {aligned}; {r['markers']} markers found (their corners moved "
                      f"out by {r.get('marker_inset_px', 0):.2f} px, the detector's inset). "
                      f"Fitted in {self.seconds:.1f} s."]
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def angles(rotation_nominal, rotation):
    """(pitch, yaw, roll) degrees of `rotation` against `rotation_nominal`, both world-from-camera."""
    w = cv2.Rodrigues(rotation_nominal.T @ rotation)[0].ravel()
    return np.degrees(w)


def quantities(config, model, theta, covariance, vignette=(0.0, 0.0)):
    """The report's rows: camera, aim, field of view, ball, print distance, IOR, and the photo's lens distortion
    k1 (OpenCV's convention, :meth:`predistort.photofit.Model.project`) and `vignette` (c of 1 + c ρ², ρ = 1 at
    the corners, and its σ: measured after the fit, :meth:`predistort.photofit.Model.tone_mapping`), both of
    nominal 0."""
    unit = config.units_mm
    theta, sigma = theta.numpy(), np.sqrt(np.clip(np.diag(covariance.numpy()), 0, None))
    o_nom, left, up, forward = camera_frame(config)
    rotation_nom = np.stack([left, up, forward], 1)
    origin, rotation, tan_x = (x.numpy() if hasattr(x, "numpy") else x for x in model.camera(torch.tensor(theta)))
    tan_x = float(tan_x)
    turned = angles(rotation_nom, rotation)
    c_nom = np.array(config.sphere_center)
    d_fov = math.degrees(2 * tan_x / (1 + tan_x ** 2)) * sigma[6]
    rows = [("camera x (right)", o_nom[0] * unit, origin[0] * unit, sigma[0] * unit, "mm"),
            ("camera y (up)", -o_nom[1] * unit, -origin[1] * unit, sigma[1] * unit, "mm"),
            ("camera distance from the print", -o_nom[2] * unit, -origin[2] * unit, sigma[2] * unit, "mm"),
            ("camera pitch", 0.0, turned[0], math.degrees(sigma[3]), "deg"),
            ("camera yaw", 0.0, turned[1], math.degrees(sigma[4]), "deg"),
            ("camera roll", 0.0, turned[2], math.degrees(sigma[5]), "deg"),
            ("field of view (across the width)", config.fov, math.degrees(2 * math.atan(tan_x)), d_fov, "deg"),
            ("ball x (right)", c_nom[0] * unit, theta[7] * unit, sigma[7] * unit, "mm"),
            ("ball y (up)", -c_nom[1] * unit, -theta[8] * unit, sigma[8] * unit, "mm"),
            ("print distance (ball centre to print)", -c_nom[2] * unit, -theta[9] * unit, sigma[9] * unit, "mm"),
            ("IOR", config.sphere_ior, theta[10], sigma[10], ""),
            ("lens distortion k1 (OpenCV's, r in focal lengths)", 0.0, theta[14], sigma[14], ""),
            ("vignette (brightness at the corners − 1)", 0.0, vignette[0], vignette[1], "")]
    return [{"name": n, "nominal": float(a), "fitted": float(b), "uncertainty": float(s), "unit": u}
            for n, a, b, s, u in rows]


def overlay(model, theta, predicted=None):
    """[h, w, 3] uint8: the fitted prediction over the photo (half and half), rim red, corners green.
    `predicted` [w·h, 3]: the prediction at every work pixel, if made already."""
    w, h = model.work_size
    every = torch.arange(w * h)
    if predicted is None:
        predicted = model.predict(theta, every)
    predicted = predicted.numpy().reshape(h, w, 3)
    blend = 0.5 * linear_to_srgb(model.work) + 0.5 * linear_to_srgb(predicted)
    col, row = (every % w).double(), (every // w).double()
    impact = model.rays(theta, (col + 0.5) / w, (row + 0.5) / h)["impact"].numpy().reshape(h, w)
    blend[np.abs(impact - 1) < 1.5 / max(w, h) * 8] = (1.0, 0.1, 0.1)
    for s, t in model.project(theta).numpy():
        x, y = int(s * w), int(t * h)
        if 0 <= x < w and 0 <= y < h:
            blend[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = (0.1, 1.0, 0.1)
    return (np.clip(blend, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_report(calibration, out_dir):
    """Write ``report.md`` (the table), ``overlay.png`` and ``report.json`` into `out_dir`; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("# Calibration\n\n" + calibration.to_markdown() + "\n![overlay](overlay.png)\n")
    Image.fromarray(calibration.overlay).save(out / "overlay.png")
    (out / "report.json").write_text(json.dumps(calibration.to_dict(), indent=1) + "\n")
    return out / "report.md", out / "overlay.png", out / "report.json"
