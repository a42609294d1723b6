"""A real setup in millimetres — ball, material, print, camera — and its scene config, both ways.

What a person measures::

        camera ◀─ camera_distance_mm ─▶ ( ball ) ◀─ print_distance_mm ─▶ ┃ print
                  (lens to ball centre)   diameter    (ball centre to print)   ┃ print_size_mm wide

The camera, the ball's centre and the print's centre lie on one line, perpendicular to the print; the
camera looks along it. Its field of view ``fov_deg`` is that of the square picture's side (for a photo
cropped to its centre square: the field of view across the sensor's short side, :func:`fov_from_lens`).

Mapping onto :class:`predistort.scene.SceneConfig` (the scene JSON stays the format on disk):

- the ball is always :data:`WORLD_RADIUS` = 0.45 world units (the tutorial's), so ``units_mm`` (mm per
  world unit) is ``ball_diameter_mm / 0.9``; every distance is divided by it;
- the print lies in z = 0 with its centre on the axis, the ball's centre at z = −print distance, the camera
  at z = −(print distance + camera distance), looking at the print's centre, image "up" = −y;
- the print's size follows from what the camera sees: the camera sees a square of half side
  ``L · tan(fov/2)`` at distance L; the print reaches :data:`PLANE_MARGIN` (3.9 %) beyond it on every side,
  as the tutorial's 2.4-unit plane does at L = 2, fov 60°. So moving the print away grows it.

Defaults = the tutorial's scene at 100 mm per unit: a 90 mm ball of IOR 1.06, 100 mm from the camera and
100 mm in front of a 240 mm print, 60°. ``PhysicalSetup().to_scene() == scene.DEFAULT``.

Optics worth knowing (paraxial): a ball of index n and radius r focuses parallel light at
``n·r / (2(n − 1))`` from its centre (:attr:`PhysicalSetup.focal_distance_mm`): 3.98 r for the tutorial's
1.06 (far behind the print), 1.5 r for glass. Near that distance many camera pixels see the same few
texels of the print, and no texture can give them different colours (:mod:`predistort.advise`).
"""
import math
import numbers
from dataclasses import asdict, dataclass, replace

from .scene import DEFAULT

WORLD_RADIUS = 0.45                                    # the ball's radius in world units (the tutorial's)
PLANE_MARGIN = 1.2 / (2 * math.tan(math.radians(30)))  # print half side ÷ half side the camera sees (1.0392)
MATERIALS = {                                          # index of refraction of the ball's material (visible light)
    "tutorial (1.06)": 1.06,
    "water (1.33)": 1.33,
    "acrylic (1.49)": 1.49,
    "crown glass (1.52)": 1.52,
}
_DIGITS = 9                                            # world coordinates are rounded to this many decimals


def fov_from_lens(focal_mm, side_mm=24.0):
    """Field of view (degrees) across an image side of `side_mm` behind a lens of focal length `focal_mm`.

    Default side 24 mm: the short side of the 35 mm frame, so `focal_mm` may be the "35 mm-equivalent"
    focal length phones state and the result is the field of view of the photo's centre square.
    """
    if not (focal_mm > 0 and side_mm > 0):
        raise ValueError(f"focal length and sensor side must be positive, got {focal_mm} and {side_mm} mm")
    return math.degrees(2 * math.atan(side_mm / (2 * focal_mm)))


@dataclass(frozen=True)
class PhysicalSetup:
    """A ball, a print and a camera as a person measures them (millimetres, degrees). See the module doc.

    Fields: ``ball_diameter_mm``; ``ior`` the ball's index of refraction (:data:`MATERIALS`, or any value in
    [1, 3]); ``print_distance_mm`` from the ball's centre to the print; ``camera_distance_mm`` from the ball's
    centre to the camera's lens; ``fov_deg`` the field of view of the square picture's side; ``resolution``
    the picture's (and texture's) side in pixels.
    """
    ball_diameter_mm: float = 90.0
    ior: float = 1.06
    print_distance_mm: float = 100.0
    camera_distance_mm: float = 100.0
    fov_deg: float = 60.0
    resolution: int = 128

    def __post_init__(self):
        problems = []
        for name in ("ball_diameter_mm", "ior", "print_distance_mm", "camera_distance_mm", "fov_deg"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"Invalid setup: {name} must be a finite number, got {value!r}.")
            object.__setattr__(self, name, float(value))        # numpy numbers too: plain floats for Mitsuba
        radius = self.ball_diameter_mm / 2
        if not self.ball_diameter_mm > 0:
            problems.append(f"the ball's diameter must be positive, got {self.ball_diameter_mm} mm")
        if not 1.0 <= self.ior <= 3.0:
            problems.append(f"the index of refraction must be from 1.0 to 3.0, got {self.ior}")
        if not self.print_distance_mm > radius:
            problems.append(f"the print must be farther from the ball's centre ({self.print_distance_mm} mm) than "
                            f"the ball's radius ({radius} mm)")
        if not self.camera_distance_mm > radius:
            problems.append(f"the camera must be farther from the ball's centre ({self.camera_distance_mm} mm) "
                            f"than the ball's radius ({radius} mm)")
        if not 1.0 < self.fov_deg < 170.0:
            problems.append(f"the field of view must be between 1 and 170 degrees, got {self.fov_deg}")
        if problems:
            raise ValueError("Invalid setup: " + "; ".join(problems) + ".")

    # -- what follows from the measurements ---------------------------------------------------------------
    @property
    def units_mm(self):
        """Millimetres per world unit of the scene (the ball is :data:`WORLD_RADIUS` units)."""
        return self.ball_diameter_mm / (2 * WORLD_RADIUS)

    @property
    def print_size_mm(self):
        """Side of the square print: what the camera sees at the print's distance, plus the margin."""
        distance = self.print_distance_mm + self.camera_distance_mm
        return 2 * PLANE_MARGIN * distance * math.tan(math.radians(self.fov_deg) / 2)

    @property
    def focal_distance_mm(self):
        """Where the ball focuses parallel light, from its centre: n·r / (2(n − 1)) (paraxial; inf at n = 1)."""
        if self.ior <= 1.0:
            return math.inf
        return self.ior * (self.ball_diameter_mm / 2) / (2 * (self.ior - 1))

    @property
    def print_dpi(self):
        """Dots per inch of a `resolution`-pixel texture printed at :attr:`print_size_mm`."""
        return self.resolution / (self.print_size_mm / 25.4)

    def replace(self, **changes):
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)

    def to_dict(self):
        return asdict(self)

    # -- to and from the scene config ---------------------------------------------------------------------
    def to_scene(self, base=DEFAULT):
        """The :class:`SceneConfig` of this setup (`base` gives what a setup does not say: the integrator)."""
        unit = self.units_mm
        d, c = self.print_distance_mm / unit, self.camera_distance_mm / unit
        half_view = (d + c) * math.tan(math.radians(self.fov_deg) / 2)

        def r(x):                                                  # rounded; +0.0: no "-0.0" in scene files
            return round(x, _DIGITS) + 0.0

        return base.replace(
            resolution=int(self.resolution), fov=float(self.fov_deg), sphere_ior=float(self.ior),
            camera_origin=(0.0, 0.0, r(-(d + c))), camera_target=(0.0, 0.0, 0.0), camera_up=(0.0, -1.0, 0.0),
            sphere_center=(0.0, 0.0, r(-d)), sphere_radius=WORLD_RADIUS,
            plane_scale=r(PLANE_MARGIN * half_view), units_mm=round(unit, _DIGITS))

    @classmethod
    def from_scene(cls, config):
        """The setup of an on-axis scene (camera, ball centre and print centre on the z axis, camera looking
        at the print's centre, image "up" −y as in the tutorial). The print's size is not read: it follows
        from the camera (see the module doc). Raises ValueError for any other scene."""
        (cx, cy, cz), (sx, sy, sz) = config.camera_origin, config.sphere_center
        if (cx, cy, sx, sy) != (0, 0, 0, 0) or tuple(config.camera_target) != (0, 0, 0) or not cz < sz < 0 \
                or tuple(config.camera_up) != (0, -1, 0):
            raise ValueError("This scene is not an on-axis setup (camera, ball centre and print centre on one "
                             "line perpendicular to the print, the camera looking at the print's centre, the "
                             "print's top up).")
        unit = config.units_mm

        def r(x):                                                  # to the micrometre
            return round(x, 6) + 0.0

        return cls(ball_diameter_mm=r(2 * config.sphere_radius * unit), ior=config.sphere_ior,
                   print_distance_mm=r(-sz * unit), camera_distance_mm=r((sz - cz) * unit),
                   fov_deg=config.fov, resolution=config.resolution)

    # -- words --------------------------------------------------------------------------------------------
    def material(self):
        """The preset name of :attr:`ior` (e.g. "crown glass (1.52)"), or "IOR x"."""
        return next((name for name, n in MATERIALS.items() if abs(n - self.ior) < 1e-9), f"IOR {self.ior:g}")

    def describe(self):
        """Three lines (Markdown) that say how to build this setup."""
        return (f"- **Ball:** {self.ball_diameter_mm:g} mm diameter, {self.material()}; its centre "
                f"{self.print_distance_mm:.0f} mm in front of the print's centre.\n"
                f"- **Camera:** {self.camera_distance_mm:.0f} mm from the ball's centre, on the line through the "
                f"ball's centre perpendicular to the print; {self.fov_deg:.3g}° across the square picture.\n"
                f"- **Print:** {self.print_size_mm:.0f} × {self.print_size_mm:.0f} mm "
                f"({self.resolution} px, {self.print_dpi:.1f} dpi).")
