"""Calibrate a glass object of any shape from one photo: the camera from markers, the object by render and compare.

The glass ball in front of a square print has its own fit (:mod:`predistort.calibrate`, analytic optics). Any
other glass object — a rod, a glass of water, a cone, your own mesh — is fitted here, in phases
(:func:`calibrate_glass`):

1. *The chart* (:func:`glass_chart`). ArUco markers on a grid over the print wherever the nominal camera sees
   it directly (:func:`predistort.mirrorfit.grid_layout`): no slot whose line of sight to the camera passes
   near the object (its bounding sphere, :data:`KEEP_OUT` times wider) or that lies under it. Everywhere else
   a hue wheel around the object's foot on the print, brighter farther out (:func:`predistort.mirrorfit.draw_chart`):
   smooth and one-to-one, so that whatever the glass shows of it changes with every small move of the object.
2. *The camera*, as for a mirror (:func:`predistort.mirrorfit.fit_camera`, then the fine fit of
   :mod:`predistort.mirrorrefine` to points across the markers' edges): the markers seen directly give the
   camera's pose and lens against the print.
3. *The object*, with the camera held: its place (a solid standing on the print moves along it; one in the
   air in all three directions; a mesh with a way round about the print's normal is also turned about it) and
   its IOR, fitted by rendering the chart in the
   fitted setup and comparing it with the photo over the pixels where the photo departs from the chart seen
   without the object (:func:`predistort.mirrorfit.differs`): :func:`predistort.renderfit.fit_object`, in two
   stages, the place at the nominal IOR, then the place and the IOR together.
4. *The answer*: the world with the fitted camera (a film of the photo's aspect) and the fitted object: a
   sphere's ``center``, a cylinder's or cone's ``base``, a mesh's ``offset`` and ``turn`` (the file is not
   rewritten), and
   ``{"ior": n}``; everything else from the input world. A fit whose mean colour error stays above
   :data:`UNEXPLAINED` of white is refused with what to check.

Limits: one glass object; its orientation is held but for a mesh's turn about the print's normal (a rod's
tilt is not fitted); the object's size is taken as measured; the photo must show at least :data:`predistort.mirrorfit.MIN_MARKERS`
markers beside the object; the render's noise and the work film's pixels bound the precision (measured in
``tests/test_glassfit.py``); a render per step: 30–90 s a photo on two cores.
"""
import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import calibrate as ball
from .calibrate import CalibrationError
from .mirrorfit import differs, draw_chart, fit_camera, grid_layout, with_camera
from .renderfit import NothingToCompare, fit_object

KEEP_OUT = 1.15             # no marker whose line of sight passes within this × the object's bounding radius
UNEXPLAINED = 0.06          # mean colour error (÷ white) above which the fit did not explain the photo


@dataclass
class GlassCalibration:
    """What :func:`calibrate_glass` found: the fitted ``scene``; the object's move (mm) and fitted IOR; the
    markers used and their RMS (px); the mean colour error left over the object (÷ white); seconds."""
    scene: object
    moved_mm: float
    ior: float
    markers: int
    marker_px: float
    colour_error: float
    seconds: float
    warnings: list = field(default_factory=list)

    def to_markdown(self):
        s = self.scene
        turn = s.objects[0].turn
        turned = f", turned {turn[3]:.1f}° about the print's normal" if turn else ""
        lines = [f"**{s.describe_objects()}**: moved {self.moved_mm:.2f} mm from where the setup said{turned}; IOR "
                 f"{self.ior:.3f}.",
                 f"Camera at ({', '.join(f'{v:.1f}' for v in s.camera_origin)}) mm, {s.fov:.2f}° across the "
                 f"picture; {self.markers} markers, {self.marker_px:.2f} px RMS.",
                 f"Colours left unexplained over the object: {self.colour_error:.3f} of white; "
                 f"{self.seconds:.0f} s."]
        return "\n\n".join(["**Warning:** " + w for w in self.warnings] + lines)


def _glass(world):
    glass = [o for o in world.objects if not o.mirror]
    if len(world.objects) != 1 or not glass:
        raise ValueError(f"This calibration fits one glass object; this setup is {world.describe_objects()}.")
    return glass[0]


def _bounds(solid):
    """The object's bounding sphere: ``(centre [3], radius)``."""
    points = solid.points(96)
    centre = (points.min(0) + points.max(0)) / 2
    return centre, float(np.linalg.norm(points - centre, axis=1).max())


def glass_layout(world):
    """The markers of `world`'s glass chart (module doc, phase 1)."""
    from .mirrorfit import print_points
    centre, reach = _bounds(_glass(world))
    eye = np.asarray(world.camera_origin, np.float64)
    w, h = world.plane.size
    (fu, fv), = world.plane.uv(centre[None])

    def keep_out(cx, cy, slot):
        p = print_points(world, np.array([[cx / w, cy / h]]))[0]
        seg = p - eye
        along = np.clip((centre - eye) @ seg / (seg @ seg), 0, 1)
        near = np.linalg.norm(eye + along * seg - centre) < KEEP_OUT * reach + slot * 0.75
        under = math.hypot(cx - fu * w, cy - fv * h) < reach + slot * 0.75
        return bool(near or under)
    return grid_layout(world, keep_out)


def glass_chart(world, resolution=None):
    """The chart of `world`'s glass object as a texture [rows, cols, 3] float32 in [0, 1] and its layout."""
    world = world if resolution is None else world.replace(resolution=resolution)
    layout = glass_layout(world)
    (fu, fv), = world.plane.uv(_bounds(_glass(world))[0][None])
    return draw_chart(world, layout, (fu, fv)), layout


def calibrate_glass(world, source, focal_mm=None, progress=None):
    """Fit the camera and the glass object of `world` to a photo of its chart (:func:`glass_chart`): a
    :class:`GlassCalibration` (module doc). Raises CalibrationError with what to do."""
    from . import mirrorrefine as fine_fit
    start = time.perf_counter()
    say = progress or (lambda fraction, message: None)
    solid = _glass(world)
    photo = ball.read_photo(source, focal_mm)
    say(0.05, "finding the chart's markers")
    chart, layout = glass_chart(world, resolution=min(2048, max(world.resolution, 1024)))
    origin, rotation, tan_x, rms, ids, corners = fit_camera(world, photo, layout)
    camera = (origin, rotation, tan_x)
    mask, white = differs(world, photo, chart, camera)
    luminance = photo.linear_full.mean(-1) / white
    edges = fine_fit.fit_camera(layout.object_points(ids), corners, camera, luminance, photo.size,
                                None if photo.focal_35mm is None else tan_x)
    camera, rms = edges["camera"], edges["marker_px"]
    mask, white = differs(world, photo, chart, camera)
    say(0.2, "fitting the object's place and IOR (a render a step)")
    scene = with_camera(world, camera, photo.size)
    try:
        fitted, err = fit_object(scene, solid, chart, photo, mask, lambda n, e: say(
            min(0.95, 0.2 + n / 150 * 0.75), f"render {n}: error {e:.4f}"))
    except NothingToCompare:
        raise CalibrationError("The glass object hardly shows against the chart in this photo: photograph it "
                               "with the object in front of the chart's colour field, from where the camera "
                               "goes.") from None
    scene = scene.replace(objects=(fitted,))
    ior = fitted.material
    delta = np.subtract(*(np.mean(o.points(96), 0) for o in (fitted, solid)))
    colour = err / max(white, 1e-6)
    warnings = []
    if colour > UNEXPLAINED:
        raise CalibrationError(f"The fit leaves the object's colours {colour:.2f} of white off: check that the "
                               f"setup file's object (its size, its shape, which way it stands) is the one in the "
                               f"photo, and that the chart was printed at 100 %.")
    distance = float(np.linalg.norm(delta)) * world.units_mm
    if distance > 15:
        warnings.append(f"the object is {distance:.0f} mm from where the setup said: stand it on its printed "
                        f"outline, or check the setup's numbers.")
    say(1.0, "done")
    return GlassCalibration(scene, distance, ior, len(ids), float(rms), colour, round(time.perf_counter() - start, 1),
                            warnings)


def save_with_meshes(scene, path):
    """Save `scene` to `path` with its mesh files beside it (copied there when they lie elsewhere): a fitted
    world names its meshes by plain file names, as every world file does."""
    import shutil
    from pathlib import Path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for solid in scene.objects:
        if solid.shape == "mesh" and Path(solid.folder).resolve() != path.parent.resolve():
            shutil.copyfile(Path(solid.folder, solid.file), path.parent / solid.file)
    scene.save(path)
    return path


def write_glass_chart(world, out_dir):
    """Write ``chart.png`` and ``chart.pdf`` (at the print's true size, the object's outline marked) for
    `world`'s glass object; returns both paths."""
    from pathlib import Path
    from .printout import write_world_print
    out = Path(out_dir)
    chart, _ = glass_chart(world, resolution=min(2048, max(world.resolution, 1024)))
    pdf, png = write_world_print(chart, world, out, title="predistort: calibration chart (place the object on "
                                                          "its outline)")
    return png.rename(out / "chart.png"), pdf.rename(out / "chart.pdf")
