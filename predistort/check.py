"""Close the loop: from a photo of the printed pre-distortion through the ball, how close it is, and what to do.

:func:`check` takes the fitted scene (:mod:`predistort.calibrate`), a photo of the print of a pre-distortion
taken from where the calibration photo was, and the picture the person wanted (and the texture that was
printed; default: the instant solve of the picture for the scene, as ``apply --method solve`` makes it).

1. *The photo on the scene's film.* Upright, sRGB undone, averaged down (in linear light) to the fitted
   scene's film; the exposure is a gain per colour, least squares against the transport's prediction
   ``A·T + b`` of the printed texture T (:mod:`predistort.probe`).
2. *How close.* The goal is the ball-free view of the picture (:func:`predistort.target.ball_free_view`). The
   ratio is ``|photo − goal|₁ / |A·P + b − goal|₁``: the error left, against the error of printing the
   picture P itself (< 1: the pre-distortion helps; what ``apply`` reports as ``l1_ratio``). The map is the
   per-pixel error ``|photo − goal|`` (mean over colours).
3. *Re-calibrate?* Where the photo departs from what the fitted scene predicts for the printed texture by
   more than :data:`RECALIBRATE` (mean absolute, linear), the scene is not where the fit said: re-calibrate.
4. *Correct.* The departure r is *systematic* when a change of the texture can make it: when r and
   ``A·D⁻¹Aᵀ r`` (what one preconditioned solve step undoes) point the same way, cos² ≥ :data:`SYSTEMATIC` —
   a print that fades, uneven light — rather than noise, which no texture makes. Then one step of the solve
   corrects the texture: ``T + D⁻¹Aᵀ(A·T + b − photo)`` (:attr:`predistort.probe.Transport.At_step`), clamped
   to [0, 1]: it undoes the departure and keeps what the solve aimed at.

Limits: the photo must be taken from the calibrated spot (the fitted scene's camera), of the same print.
"""
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .calibrate import CalibrationError
from .encoding import srgb_to_linear
from .images import ImageError, load_image
from .probe_cache import transport_for
from .solve import solve
from .target import ball_free_view

RECALIBRATE = 0.06               # photo vs the fitted scene's prediction, mean absolute error: above it, re-calibrate
SYSTEMATIC = 0.5                 # cos² between the departure and what a texture step undoes: above it, correct


@dataclass
class CheckResult:
    """What :func:`check` found. ``ratio`` the photo's error against the ball-free goal ÷ the picture's own;
    ``ratio_predicted`` the same for the fitted scene's prediction of the printed texture; ``error_map``
    [H, W] float; ``departure`` mean |photo − prediction|; ``systematic`` its smooth share; ``recalibrate``
    (bool) and ``advice`` (one sentence); ``corrected`` [R, R, 3] texture or None."""
    ratio: float
    ratio_predicted: float
    error_map: np.ndarray
    departure: float
    systematic: float
    recalibrate: bool
    advice: str
    corrected: torch.Tensor = None

    def to_dict(self):
        return {"ratio": self.ratio, "ratio_predicted": self.ratio_predicted, "departure": self.departure,
                "systematic": self.systematic, "recalibrate": self.recalibrate, "advice": self.advice,
                "corrected": self.corrected is not None}

    def to_markdown(self):
        return (f"| | |\n|---|---:|\n| ratio (photo vs the ball-free view; 1 = no better than the picture "
                f"printed as it is) | {self.ratio:.3f} |\n| ratio the fitted scene predicts | "
                f"{self.ratio_predicted:.3f} |\n| photo vs prediction (mean absolute) | {self.departure:.4f} |\n"
                f"| systematic share | {self.systematic:.2f} |\n\n{self.advice}\n")

    def map_image(self):
        """The error map as an RGB uint8 image (0 black … 0.25 and more white-hot)."""
        scaled = (np.clip(self.error_map / 0.25, 0, 1) * 255).astype(np.uint8)
        return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def photo_on_film(photo, config):
    """The photo as linear light [H, W, 3] float32 tensor on `config`'s film (averaged in linear light)."""
    try:
        image = load_image(photo)
    except ImageError as e:
        raise CalibrationError(str(e)) from None
    width, height = config.film_size
    if abs(image.width / image.height - width / height) > 0.02 * width / height:
        raise CalibrationError(f"This photo is {image.width}×{image.height} but the fitted scene's film is "
                               f"{width}×{height}: take the photo with the camera used for the calibration, "
                               f"in the same orientation.")
    linear = srgb_to_linear(np.asarray(image, dtype=np.float64) / 255)
    linear = cv2.resize(linear, (width, height), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(linear.astype(np.float32))


def check(config, photo, picture, printed=None, progress=None):
    """Check a photo of the printed pre-distortion through the ball (module doc). Returns a :class:`CheckResult`.

    Parameters: ``config`` the fitted scene; ``photo`` a path, bytes, PIL image or array; ``picture`` the
    picture wanted, [R, R, 3] in [0, 1] (R = ``config.resolution``); ``printed`` the texture that was
    printed (default: the instant solve of `picture`); ``progress(fraction, message)`` hears the probe.
    """
    picture = torch.as_tensor(picture, dtype=torch.float32)
    observed = photo_on_film(photo, config)
    transport = transport_for(config, progress=progress)
    goal = ball_free_view(picture, config)
    printed = solve(goal, transport, start=picture) if printed is None else torch.as_tensor(printed).float()
    predicted = transport.render(printed)
    # 1. The exposure: a gain per colour.
    gain = (predicted * observed).sum((0, 1)) / (observed * observed).sum((0, 1)).clamp_min(1e-9)
    observed = observed * gain
    # 2. How close, against printing the picture itself.
    before = (transport.render(picture).clamp(0, 1) - goal).abs().mean()
    ratio = float((observed - goal).abs().mean() / before.clamp_min(1e-9))
    ratio_predicted = float((predicted.clamp(0, 1) - goal).abs().mean() / before.clamp_min(1e-9))
    error_map = (observed - goal).abs().mean(-1).numpy()
    # 3. and 4. The photo against the prediction: re-calibrate, and is the difference systematic?
    width, height = config.film_size
    res = config.resolution
    departure_image = observed - predicted
    departure = float(departure_image.abs().mean())
    r = departure_image.reshape(width * height, 3)
    explained = transport.A @ (transport.At_step @ r)             # what one texture step can undo
    systematic = float((r * explained).sum() ** 2 / ((r * r).sum() * (explained * explained).sum()).clamp_min(1e-12))
    recalibrate = departure > RECALIBRATE
    corrected = None
    if systematic >= SYSTEMATIC and not recalibrate:
        step = transport.At_step @ (-r)                           # undo the departure, keep the solve's aim
        corrected = (printed + step.reshape(res, res, 3)).clamp(0, 1)
    if recalibrate:
        advice = (f"The photo departs from what the calibrated scene predicts by {departure:.3f} on average: "
                  f"something moved since the calibration photo, so calibrate again from a new photo of the chart.")
    elif corrected is not None:
        advice = (f"The rest of the error is systematic ({systematic:.0%} of it a texture can undo): print the corrected texture "
                  f"and photograph it again.")
    else:
        advice = "The view is as good as this scene allows: what is left is noise, not the setup."
    if not math.isfinite(ratio):
        raise CalibrationError("This photo could not be compared with the picture: take it again.")
    return CheckResult(ratio, ratio_predicted, error_map, departure, systematic, recalibrate, advice, corrected)
