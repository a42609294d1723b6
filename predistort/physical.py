"""A real setup in millimetres — ball, material, print, camera — and its scene config, both ways.

What a person measures::

        camera ◀─ camera_distance_mm ─▶ ( ball ) ◀─ print_distance_mm ─▶ ┃ print
                  (lens to ball centre)   diameter    (ball centre to print)   ┃ print_size_mm wide

By default the camera, the ball's centre and the print's centre lie on one line, perpendicular to the
print, and the camera looks along it. The camera may also stand off that line — ``camera_x_mm`` to the
right and ``camera_y_mm`` up, as the camera sees the print, in the camera's plane ``camera_distance_mm``
in front of the ball's centre — and aim at any point: ``aim_x_mm`` right, ``aim_y_mm`` up of the print's
centre and ``aim_z_mm`` in front of the print (0, 0, 0: the print's centre; 0, 0, ``print_distance_mm``:
the ball's centre). Its field of view ``fov_deg`` is across the picture's *width* (for a square picture:
its side; for a photo cropped to its centre square: the field of view across the sensor's short side,
:func:`fov_from_lens`). The picture is ``film_width`` × ``film_height`` pixels (e.g. 4:3 for a photo;
default: the texture's square, ``resolution``).

Mapping onto :class:`predistort.scene.SceneConfig` (the scene JSON stays the format on disk):

- the ball is always :data:`WORLD_RADIUS` = 0.45 world units (the tutorial's), so ``units_mm`` (mm per
  world unit) is ``ball_diameter_mm / 0.9``; every distance is divided by it;
- the print lies in z = 0 with its centre on the axis, the ball's centre at z = −print distance, the camera
  at (camera_x, −camera_y, −(print distance + camera distance)), looking at (aim_x, −aim_y, −aim_z), image
  "up" = −y (the world's y points down the picture, as in the tutorial);
- the print's size follows from what an on-axis camera sees: a half width ``L · tan(fov/2)`` at distance L
  (times H/W for a film taller than wide); the print reaches :data:`PLANE_MARGIN` (3.9 %) beyond it on
  every side, as the tutorial's 2.4-unit plane does at L = 2, fov 60°. So moving the print away grows it;
  moving or turning the camera does not change it.

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
LENSES = {                                             # a phone's lenses by their 35 mm-equivalent focal length
    "phone main camera, 1× (26 mm)": 26.0,
    "phone 2× (52 mm)": 52.0,
    "phone 3× (77 mm)": 77.0,
    "phone ultra-wide, 0.5× (13 mm)": 13.0,
}
# The maker's path starts here (the Real object tab): a 90 mm crown-glass ball, the print 225 mm behind it, the
# phone 200 mm before it with a 45° view: a setup the chart can calibrate (the markers beside the ball in the
# photo; tests/test_calibrate.py fits photos of it) and the advisor's kind of print distance, beyond the focus.
MAKER_DEFAULT = dict(ior=1.52, print_distance_mm=225.0, camera_distance_mm=200.0, fov_deg=45.0)
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
    centre to the camera's lens (along the axis); ``fov_deg`` the field of view across the picture's width;
    ``resolution`` the texture's (the print's) side in pixels; ``camera_x_mm``, ``camera_y_mm`` the camera's
    offset from the axis (right, up); ``aim_x_mm``, ``aim_y_mm``, ``aim_z_mm`` the point it aims at (right,
    up of the print's centre, in front of the print); ``film_width``, ``film_height`` the camera's picture in
    pixels (None: ``resolution``).
    """
    ball_diameter_mm: float = 90.0
    ior: float = 1.06
    print_distance_mm: float = 100.0
    camera_distance_mm: float = 100.0
    fov_deg: float = 60.0
    resolution: int = 128
    camera_x_mm: float = 0.0
    camera_y_mm: float = 0.0
    aim_x_mm: float = 0.0
    aim_y_mm: float = 0.0
    aim_z_mm: float = 0.0
    film_width: int = None
    film_height: int = None

    def __post_init__(self):
        problems = []
        for name in ("ball_diameter_mm", "ior", "print_distance_mm", "camera_distance_mm", "fov_deg",
                     "camera_x_mm", "camera_y_mm", "aim_x_mm", "aim_y_mm", "aim_z_mm"):
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
        if (self.film_width is None) != (self.film_height is None):
            problems.append("film_width and film_height go together: give both, or neither (the texture's square)")
        for name in ("film_width", "film_height"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool)
                                      or not 8 <= value <= 1024):
                problems.append(f"{name} must be a whole number of pixels from 8 to 1024, got {value!r}")
        if problems:
            raise ValueError("Invalid setup: " + "; ".join(problems) + ".")

    @property
    def film_size(self):
        """``(width, height)`` of the camera's picture, pixels."""
        return (self.film_width or self.resolution, self.film_height or self.resolution)

    @property
    def on_axis(self):
        """True when the camera stands on the axis and aims at the print's centre (the default framing)."""
        return (self.camera_x_mm, self.camera_y_mm, self.aim_x_mm, self.aim_y_mm, self.aim_z_mm) == (0,) * 5

    # -- what follows from the measurements ---------------------------------------------------------------
    @property
    def units_mm(self):
        """Millimetres per world unit of the scene (the ball is :data:`WORLD_RADIUS` units)."""
        return self.ball_diameter_mm / (2 * WORLD_RADIUS)

    @property
    def print_size_mm(self):
        """Side of the square print: what the camera sees at the print's distance, plus the margin."""
        distance = self.print_distance_mm + self.camera_distance_mm
        width, height = self.film_size
        return 2 * PLANE_MARGIN * distance * math.tan(math.radians(self.fov_deg) / 2) * max(1.0, height / width)

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
        """The fields as a dict; the film is left out when it is the texture's square (None)."""
        out = asdict(self)
        if self.film_width is None:
            del out["film_width"], out["film_height"]
        return out

    # -- to and from the scene config ---------------------------------------------------------------------
    def to_scene(self, base=DEFAULT):
        """The :class:`SceneConfig` of this setup (`base` gives what a setup does not say: the integrator)."""
        unit = self.units_mm
        d, c = self.print_distance_mm / unit, self.camera_distance_mm / unit
        half_view = self.print_size_mm / (2 * PLANE_MARGIN * unit)

        def r(x):                                                  # rounded; +0.0: no "-0.0" in scene files
            return round(x, _DIGITS) + 0.0

        # Right = world +x; up = world −y (the tutorial's camera_up); towards the camera = world −z.
        origin = (r(self.camera_x_mm / unit), r(-self.camera_y_mm / unit), r(-(d + c)))
        target = (r(self.aim_x_mm / unit), r(-self.aim_y_mm / unit), r(-self.aim_z_mm / unit))
        width, height = self.film_size
        film = {} if (width, height) == (self.resolution,) * 2 else {"film_width": int(width),
                                                                      "film_height": int(height)}
        return base.replace(
            resolution=int(self.resolution), fov=float(self.fov_deg), sphere_ior=float(self.ior),
            camera_origin=origin, camera_target=target, camera_up=(0.0, -1.0, 0.0),
            sphere_center=(0.0, 0.0, r(-d)), sphere_radius=WORLD_RADIUS,
            plane_scale=r(PLANE_MARGIN * half_view), units_mm=round(unit, _DIGITS),
            film_width=film.get("film_width"), film_height=film.get("film_height"))

    @classmethod
    def from_scene(cls, config):
        """The setup of a scene whose ball's centre is on the axis through the print's centre, with the camera
        in front of the ball and image "up" −y as in the tutorial (the camera may stand off the axis and aim
        anywhere). The print's size is not read: it follows from the camera (see the module doc). Raises
        ValueError for any other scene."""
        (cx, cy, cz), (sx, sy, sz) = config.camera_origin, config.sphere_center
        if (sx, sy) != (0, 0) or not cz < sz < 0 or tuple(config.camera_up) != (0, -1, 0):
            raise ValueError("This scene is not an on-axis setup (the ball's centre on the line through the "
                             "print's centre perpendicular to the print, the camera in front of the ball, the "
                             "print's top up).")
        unit = config.units_mm
        tx, ty, tz = config.camera_target

        def r(x):                                                  # to the micrometre
            return round(x, 6) + 0.0

        film = {} if config.film_width is None else {"film_width": config.film_width,
                                                     "film_height": config.film_height}
        return cls(ball_diameter_mm=r(2 * config.sphere_radius * unit), ior=config.sphere_ior,
                   print_distance_mm=r(-sz * unit), camera_distance_mm=r((sz - cz) * unit),
                   fov_deg=config.fov, resolution=config.resolution, camera_x_mm=r(cx * unit),
                   camera_y_mm=r(-cy * unit), aim_x_mm=r(tx * unit), aim_y_mm=r(-ty * unit), aim_z_mm=r(-tz * unit),
                   **film)

    # -- words --------------------------------------------------------------------------------------------
    def material(self):
        """The preset name of :attr:`ior` (e.g. "crown glass (1.52)"), or "IOR x"."""
        return next((name for name, n in MATERIALS.items() if abs(n - self.ior) < 1e-9), f"IOR {self.ior:g}")

    def camera_place(self):
        """Where the camera stands and aims, in words (for :meth:`describe` and the print's margin)."""
        if self.on_axis:
            return "on the line through the ball's centre perpendicular to the print"
        place = ("on that line" if (self.camera_x_mm, self.camera_y_mm) == (0, 0) else
                 f"{self.camera_x_mm:g} mm right and {self.camera_y_mm:g} mm up of the line through the ball's "
                 f"centre perpendicular to the print")
        return (f"{place}, aimed at the point {self.aim_x_mm:g} mm right, {self.aim_y_mm:g} mm up of the print's "
                f"centre and {self.aim_z_mm:g} mm in front of it")

    def picture_words(self):
        """"square picture" or "640 × 480 picture's width"."""
        width, height = self.film_size
        return "square picture" if width == height else f"{width} × {height} picture's width"

    def describe(self):
        """Three lines (Markdown) that say how to build this setup."""
        return (f"- **Ball:** {self.ball_diameter_mm:g} mm diameter, {self.material()}; its centre "
                f"{self.print_distance_mm:.0f} mm in front of the print's centre.\n"
                f"- **Camera:** {self.camera_distance_mm:.0f} mm from the ball's centre, {self.camera_place()}; "
                f"{self.fov_deg:.3g}° across the {self.picture_words()}.\n"
                f"- **Print:** {self.print_size_mm:.0f} × {self.print_size_mm:.0f} mm "
                f"({self.resolution} px, {self.print_dpi:.1f} dpi).")


# -------------------------------------------------------------------------------------------------------------
# A glass ball written as a world in any frame <-> the tutorial's frame the ball-only steps work in
# -------------------------------------------------------------------------------------------------------------
def _ball_rotation(world):
    """The rotation [3, 3] that takes the world's print frame to the tutorial's: right → x, up → −y,
    right × up → −z (rows: the images of x, y, z's preimages)."""
    import numpy as np
    plane = world.plane
    return np.array([plane.right, np.negative(plane.up), np.negative(plane.normal)], dtype=np.float64)


def is_lone_ball(world):
    """Whether `world` is one glass sphere before a square print (any frame): the glass ball's chart and fit
    (:mod:`predistort.calibrate`) work on it; any other glass object has :mod:`predistort.glassfit`."""
    try:
        ball_frame(world)
    except ValueError:
        return False
    return True


def ball_frame(world):
    """`world` (one glass sphere before a square print, in any position) in the tutorial's frame: the print in
    z = 0 centred at the origin, row 0 at −y, facing −z; the same scene moved rigidly (units kept). Chart,
    calibration and the ball's advisor work there; :func:`from_ball_frame` moves their answers back.
    A world already in that frame is returned as it is."""
    import numpy as np
    if world.is_ball_world:
        return world
    ball = world.objects[0] if len(world.objects) == 1 else None
    if ball is None or ball.shape != "sphere" or ball.mirror or world.target is not None:
        raise ValueError(f"This step works on a single glass ball for now; this setup is "
                         f"{world.describe_objects()}.")
    if world.plane.size[0] != world.plane.size[1]:
        raise ValueError(f"This step needs a square print for the glass ball for now; this one is "
                         f"{world.plane.size[0]:g} × {world.plane.size[1]:g}: make print.size square.")
    R, c = _ball_rotation(world), np.array(world.plane.center)

    def move(p, point=True):
        return tuple(float(round(v, 9)) + 0.0 for v in R @ (np.asarray(p) - (c if point else 0)))
    return DEFAULT.replace(
        resolution=world.resolution, fov=world.fov, film_width=world.film_width, film_height=world.film_height,
        integrator=world.integrator, units_mm=world.units_mm, camera_origin=move(world.camera_origin),
        camera_target=move(world.camera_target), camera_up=move(world.camera_up, point=False),
        plane_scale=world.plane.size[0] / 2, sphere_center=move(ball.center), sphere_radius=ball.radius,
        sphere_ior=ball.material)


def from_ball_frame(world, flat):
    """`flat` (a scene in the tutorial's frame: e.g. calibrate's fit of :func:`ball_frame` (`world`)) moved back
    into `world`'s frame: its camera, film, ball and print size, `world`'s print placement."""
    import dataclasses
    import numpy as np
    if world.is_ball_world:
        return flat
    R, c = _ball_rotation(world), np.array(world.plane.center)

    def back(q, point=True):
        return tuple(float(v) for v in R.T @ np.asarray(q) + (c if point else 0))
    ball = dataclasses.replace(world.objects[0], center=back(flat.sphere_center), radius=flat.sphere_radius,
                               material=flat.sphere_ior)
    return world.replace(resolution=flat.resolution, fov=flat.fov, film_width=flat.film_size[0],
                         film_height=flat.film_size[1], camera_origin=back(flat.camera_origin),
                         camera_target=back(flat.camera_target), camera_up=back(flat.camera_up, point=False),
                         objects=(ball,), plane=dataclasses.replace(world.plane, size=(2 * flat.plane_scale,) * 2))
