"""Close the loop: from a photo of the printed pre-distortion through the object, how close it is, and what to do.

:func:`check` takes the fitted setup (:mod:`predistort.calibrate` for a glass ball, :mod:`predistort.mirrorfit`
for a mirror on the print: any world), a photo of the print of a pre-distortion taken from where the
calibration photo was, and the picture the person wanted (and the texture that was printed; default: the
instant solve of the picture for the setup, as ``apply --method solve`` makes it).

1. *The photo on the setup's film.* Upright, sRGB undone, averaged down (in linear light) to the fitted
   setup's film; the exposure is a gain per colour, least squares against the transport's prediction
   ``A·T + b`` of the printed texture T (:mod:`predistort.probe`).
2. *How close.* What the photo should show is the picture's aim in the world (:func:`predistort.worldaim.aim`):
   for glass, the object-free view of the picture (the ball's *ball-free view*), over the whole film; for a
   mirror, the picture on its target card, over the mirror's pixels that reflect the print, compared as a
   reflectance (the photo ÷ the predicted render of a white print: the light the mirror and the room take
   from the print is not the picture's). The ratio is the error left against the error of printing the
   picture P itself (< 1: the pre-distortion helps; what ``apply`` reports as ``l1_ratio``, or a mirror's
   ``mirror_error`` ÷ ``mirror_error_plain``). The map is the per-pixel error (mean over colours).
3. *Re-calibrate?* Where the photo departs from what the fitted setup predicts for the printed texture by
   more than :data:`RECALIBRATE` (mean absolute, linear), the setup is not where the fit said: re-calibrate.
4. *Correct.* The departure r is *systematic* when a change of the texture can make it: when r and
   ``A·D⁻¹Aᵀ r`` (what one preconditioned solve step undoes) point the same way, cos² ≥ :data:`SYSTEMATIC` —
   a print that fades, uneven light — rather than noise, which no texture makes. Then one step of the solve
   corrects the texture: ``T + D⁻¹Aᵀ(A·T + b − photo)`` (:attr:`predistort.probe.Transport.At_step`), clamped
   to [0, 1]: it undoes the departure and keeps what the solve aimed at.

Limits: the photo must be taken from the calibrated spot (the fitted setup's camera), of the same print.
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
from .worldaim import aim, instant

RECALIBRATE = 0.06               # photo vs the fitted scene's prediction, mean absolute error: above it, re-calibrate
SYSTEMATIC = 0.5                 # cos² between the departure and what a texture step undoes: above it, correct


@dataclass
class CheckResult:
    """What :func:`check` found. ``ratio`` the photo's error against the wanted view ÷ the picture's own;
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
        return (f"| | |\n|---|---:|\n| ratio (photo vs the wanted view; 1 = no better than the picture "
                f"printed as it is) | {self.ratio:.3f} |\n| ratio the fitted setup predicts | "
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


def _error(image, target_aim):
    """[H, W, 3]: |`image` − the aim's target| where the aim counts (a mirror: as a reflectance), else 0."""
    a = target_aim
    seen = image / a.white if a.white is not None else image.clamp(0, 1)
    return torch.where(a.pixels[..., None], (seen - a.target).abs(), 0.0)


def _mean(error, target_aim):
    return error[target_aim.pixels].mean()


def check(config, photo, picture, printed=None, fit="crop", progress=None):
    """Check a photo of the printed pre-distortion through the object (module doc). Returns a :class:`CheckResult`.

    Parameters: ``config`` the fitted setup (any world); ``photo`` a path, bytes, PIL image or array;
    ``picture`` the picture wanted, [h, w, 3] in [0, 1] (fitted to the target's aspect as ``fit`` says: a
    glass ball's square print takes it as it is); ``printed`` the texture that was printed, [rows, cols, 3]
    (default: the instant solve of `picture`); ``progress(fraction, message)`` hears the probe.
    """
    picture = torch.as_tensor(picture, dtype=torch.float32)
    observed = photo_on_film(photo, config)
    transport = transport_for(config, progress=progress)
    goal = aim(picture, config, transport, fit)
    printed = instant(goal, transport) if printed is None else torch.as_tensor(printed).float()
    predicted = transport.render(printed)
    # 1. The exposure: a gain per colour.
    gain = (predicted * observed).sum((0, 1)) / (observed * observed).sum((0, 1)).clamp_min(1e-9)
    observed = observed * gain
    # 2. How close, against printing the picture itself.
    before = _mean(_error(transport.render(goal.plain), goal), goal)
    error = _error(observed, goal)
    ratio = float(_mean(error, goal) / before.clamp_min(1e-9))
    ratio_predicted = float(_mean(_error(predicted, goal), goal) / before.clamp_min(1e-9))
    error_map = error.mean(-1).numpy()
    # 3. and 4. The photo against the prediction: re-calibrate, and is the difference systematic?
    width, height = config.film_size
    departure_image = observed - predicted
    departure = float(departure_image.abs().mean())
    r = departure_image.reshape(width * height, 3)
    explained = transport.A @ (transport.At_step @ r)             # what one texture step can undo
    systematic = float((r * explained).sum() ** 2 / ((r * r).sum() * (explained * explained).sum()).clamp_min(1e-12))
    recalibrate = departure > RECALIBRATE
    corrected = None
    if systematic >= SYSTEMATIC and not recalibrate:
        step = transport.At_step @ (-r)                           # undo the departure, keep the solve's aim
        corrected = (printed + step.reshape(*transport.texture_shape, 3)).clamp(0, 1)
    if recalibrate:
        advice = (f"The photo departs from what the calibrated setup predicts by {departure:.3f} on average: "
                  f"something moved since the calibration photo, so calibrate again from a new photo of the chart.")
    elif corrected is not None:
        advice = (f"The rest of the error is systematic ({systematic:.0%} of it a texture can undo): print the corrected texture "
                  f"and photograph it again.")
    else:
        advice = "The view is as good as this setup allows: what is left is noise, not the setup."
    if not math.isfinite(ratio):
        raise CalibrationError("This photo could not be compared with the picture: take it again.")
    return CheckResult(ratio, ratio_predicted, error_map, departure, systematic, recalibrate, advice, corrected)
