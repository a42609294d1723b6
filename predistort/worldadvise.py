"""Where to stand, or where to put the print, for any world: one free quantity searched on predicted errors.

The free quantity (:func:`advise_world`):

- *a mirror*: the camera's **elevation**, the angle between the print's plane and the line from
  ``camera.target`` to the camera, turned about ``camera.target`` at the same distance and the same
  bearing. Seen too low, the mirror reflects the room above the print; too high, it shows its own cap and a
  thin, stretched band of the print;
- *glass*: the print's **distance** along its normal (the objects and the camera stay): as for the ball,
  near the object's focus many pixels share a few texels and nothing can be corrected.

The prediction, no render: each candidate world is probed cheaply (:data:`SEARCH_PROBE`, on a film of at
most :data:`SEARCH_FILM` pixels and a texture of :data:`SEARCH_RESOLUTION`), the project's procedural
pictures are solved on it (:func:`predistort.worldsolve`'s solve) and the transport predicts the score:

- mirror: the mean |predicted render ÷ predicted render of a white print − target| over the mirror's pixels
  that see the print (the metric of ``metrics.json``'s ``mirror_error``);
- glass: the error ratio over the frame, |pre-distorted − target| ÷ |printed plain − target|.

Candidates the scene refuses (the print through an object, the camera seeing nothing) are skipped. The
current value is kept unless another is better by :data:`TOLERANCE`.

Limits: one quantity at a time; the prediction ignores Monte Carlo noise, as the transport does.
"""
import dataclasses
import math
import time

import numpy as np

from .procedural import dataset
from .probe import probe
from .worldaim import aim, instant, predicted_score

SEARCH_PROBE = {"calibrate_spp": 0, "supersampling": 2}
SEARCH_FILM, SEARCH_RESOLUTION = 96, 128
ELEVATIONS = (15, 25, 35, 45, 55, 65, 75)          # degrees, a mirror's candidates
DISTANCES = (0.6, 0.8, 1.0, 1.25, 1.6, 2.0, 2.5)    # × the current print distance, glass's candidates
PICTURES, PICTURE_SEED, TOLERANCE = 4, 4242, 0.005


def _small(config):
    w, h = config.film_size
    k = min(1.0, SEARCH_FILM / max(w, h))
    return config.replace(resolution=min(config.resolution, SEARCH_RESOLUTION), film_width=max(8, round(w * k)),
                          film_height=max(8, round(h * k)))


def predicted_error(config, pictures):
    """The predicted score of `config` (:func:`predistort.worldaim.predicted_score` of the instant solve, the
    mean over `pictures`; a mirror that shows the print in under 16 pixels: infinite), lower is better."""
    transport = probe(config, **SEARCH_PROBE)
    scores = []
    for picture in pictures:
        goal = aim(picture, config, transport)
        if goal.pixels.sum() < 16:
            return math.inf
        scores.append(predicted_score(instant(goal, transport), goal, transport))
    return float(np.mean(scores))


def at_elevation(config, degrees):
    """`config` with the camera turned about ``camera.target`` to `degrees` above the print's plane."""
    target, origin = np.array(config.camera_target), np.array(config.camera_origin)
    normal = np.array(config.plane.normal)
    rel = origin - target
    distance = np.linalg.norm(rel)
    flat = rel - (rel @ normal) * normal
    bearing = flat / np.linalg.norm(flat)
    e = math.radians(degrees)
    new = target + distance * (math.cos(e) * bearing + math.sin(e) * normal)
    return config.replace(camera_origin=tuple(float(round(v, 3)) for v in new))


def elevation_of(config):
    rel = np.array(config.camera_origin) - np.array(config.camera_target)
    return math.degrees(math.asin(np.clip(rel @ np.array(config.plane.normal) / np.linalg.norm(rel), -1, 1)))


def at_print_distance(config, factor):
    """`config` with the print moved along its normal so that its distance from the objects' centre is
    `factor` × today's."""
    normal, centre = np.array(config.plane.normal), np.array(config.plane.center)
    middle = np.mean([s.points().mean(0) for s in config.objects], axis=0)
    distance = (middle - centre) @ normal
    moved = centre + (1 - factor) * distance * normal
    return config.replace(plane=dataclasses.replace(config.plane, center=tuple(float(round(v, 3)) for v in moved)))


@dataclasses.dataclass
class WorldAdvice:
    """``quantity`` ("elevation_deg" or "print_distance_factor"), ``current`` and ``best`` values, their
    predicted scores, the ``curve`` [(value, score)], the advised ``scene`` (full size), ``seconds``."""
    quantity: str
    current: float
    best: float
    current_score: float
    best_score: float
    curve: list
    scene: object
    seconds: float

    def to_dict(self):
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "scene"}

    def sentence(self):
        what = "error in the mirror" if self.quantity == "elevation_deg" else "error ratio"
        if self.best == self.current:
            return f"Keep it: the predicted {what} is {self.current_score:.3f}, as good as any other tried."
        if self.quantity == "elevation_deg":
            return (f"Raise the camera to {self.best:.0f}° above the print (now {self.current:.0f}°), at the same "
                    f"distance from what it looks at: predicted {what} {self.best_score:.3f} (now "
                    f"{self.current_score:.3f}).")
        return (f"Move the print to {self.best:g}× its distance from the objects: predicted {what} "
                f"{self.best_score:.3f} (now {self.current_score:.3f}).")


def advise_world(config, progress=None):
    """Search the world's free quantity (module doc) for the lowest predicted score: a :class:`WorldAdvice`."""
    start = time.perf_counter()
    small = _small(config)
    pictures = dataset(PICTURES, SEARCH_RESOLUTION, seed=PICTURE_SEED)
    if config.has_mirror:
        quantity, current = "elevation_deg", round(elevation_of(config), 1)
        values, move = sorted(set(ELEVATIONS) | {current}), at_elevation
    else:
        quantity, current = "print_distance_factor", 1.0
        values, move = DISTANCES, at_print_distance
    scores = {}
    for i, value in enumerate(values):
        try:
            candidate = small if value == current else move(small, value)
            scores[value] = predicted_error(candidate, pictures)
        except ValueError:                                   # refused: the print through an object, ...
            continue
        if progress:
            progress(i + 1, len(values), value, scores[value])
    if current not in scores:
        raise ValueError("The setup as it stands cannot be scored: check it with apply first.")
    best = min(scores, key=scores.get)
    if scores[current] <= scores[best] + TOLERANCE:
        best = current
    scene = config if best == current else move(config, best)
    return WorldAdvice(quantity, current, best, scores[current], scores[best], sorted(scores.items()), scene,
                       round(time.perf_counter() - start, 2))
