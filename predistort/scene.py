"""The scene as data: a small typed config, read from ``scenes/*.json``, turned into a Mitsuba scene dict.

Geometry (the tutorial's, all in world units):

    camera (z=-2) ──▶ glass sphere (centre z=-1, radius 0.45, IOR 1.06) ──▶ textured plane (z=0, 2.4×2.4)

The camera looks along +z with "up" pointing to -y, so the plane's texture appears upright. Every camera
ray that meets the sphere is refracted twice (in and out) before it lands on the plane: the texture seen
through the sphere is magnified and bent; rays that miss the sphere see the plane directly. A constant
environment light illuminates the diffuse plane, and the sphere also reflects a little of it (Fresnel).

Units. World units are arbitrary for the renderer; ``units_mm`` says how many millimetres one is, so that a
scene can be built and printed from a real setup (:mod:`predistort.physical`). Scenes that state none (the
tutorial's) are read at ``DEFAULT_UNITS_MM`` = 100 mm per unit: a 90 mm ball, 100 mm in front of a 240 mm print.

Camera and film. The camera may stand anywhere that sees the ball: any ``camera_origin``, ``camera_target``
and ``camera_up`` (Mitsuba's ``look_at``), on the ball's side of the print, facing it, outside the ball, with
some of the ball in its field of view. ``fov`` is the *horizontal* field of view (Mitsuba's ``fov_axis``
'x'). The film is ``film_width`` × ``film_height`` pixels (:attr:`SceneConfig.film_size`); a scene that
states none has a square film of the texture's side, as every scene had before the fields existed.

Limits: square textures (the print's pixels), ``resolution`` from ``MIN_RESOLUTION`` to
``MAX_TEXTURE_RESOLUTION``; films from ``MIN_RESOLUTION`` to ``MAX_RESOLUTION`` on a side. The sphere must
not touch the plane.
"""
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

def _data_dir(name):
    """A data folder of the repository (scenes/, weights/), or its copy installed inside the package."""
    here = Path(__file__).resolve().parent
    return here.parent / name if (here.parent / name).is_dir() else here / "_data" / name


SCENES_DIR = _data_dir("scenes")                                # the repository's scenes/ folder
DEFAULT_SCENE = SCENES_DIR / "tutorial.json"
DEFAULT_UNITS_MM = 100.0          # world unit in mm when a scene states none: the tutorial's ball is then 90 mm wide
TEXTURE_KEY = "textured_plane.bsdf.brdf_0.reflectance.data"      # the texture inside mi.traverse(scene)
MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024          # film side (and the app's largest), pixels
MAX_TEXTURE_RESOLUTION = 4096                    # texture side (the print's pixels)


@dataclass(frozen=True)
class SceneConfig:
    """Everything that defines the scene; defaults are exactly the tutorial's (``scenes/tutorial.json``)."""
    resolution: int = 128                                   # texture side (the print's pixels)
    camera_origin: tuple = (0.0, 0.0, -2.0)                 # camera position
    camera_target: tuple = (0.0, 0.0, 0.0)                  # point the camera looks at
    camera_up: tuple = (0.0, -1.0, 0.0)                     # image "up" direction (-y: texture upright)
    fov: float = 60.0                                       # horizontal field of view, degrees
    plane_scale: float = 1.2                                # half side of the textured plane (rectangle is [-1,1]²)
    sphere_center: tuple = (0.0, 0.0, -1.0)                 # centre of the glass sphere
    sphere_radius: float = 0.45                             # radius of the glass sphere
    sphere_ior: float = 1.06                                # interior index of refraction (exterior: air)
    integrator: str = "prb"                                 # Mitsuba integrator (must be differentiable)
    units_mm: float = DEFAULT_UNITS_MM                      # millimetres per world unit (predistort.physical)
    film_width: int = None                                  # camera's picture, pixels (None: resolution)
    film_height: int = None                                 # (None: resolution)

    def __post_init__(self):
        # Normalise JSON lists to tuples so configs compare and hash by value.
        for name in ("camera_origin", "camera_target", "camera_up", "sphere_center"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        # A film equal to the texture is stored as None (None, None): it then follows `resolution`, and the
        # scene keeps the file and cache key it had before films were stated.
        if (self.film_width in (None, self.resolution)) and (self.film_height in (None, self.resolution)):
            object.__setattr__(self, "film_width", None)
            object.__setattr__(self, "film_height", None)
        else:
            for name in ("film_width", "film_height"):
                if getattr(self, name) is None:
                    object.__setattr__(self, name, self.resolution)
        self.validate()

    @property
    def film_size(self):
        """``(width, height)`` of the camera's film, pixels (the texture's side unless stated)."""
        if self.film_width is None:
            return (self.resolution, self.resolution)
        return (self.film_width, self.film_height)

    @property
    def film_pixels(self):
        """Pixels of the film (rows of the light transport)."""
        width, height = self.film_size
        return width * height

    def validate(self):
        """Raise ValueError with a plain message if this scene cannot be rendered as intended."""
        problems = []
        if not _whole(self.resolution, MIN_RESOLUTION, MAX_TEXTURE_RESOLUTION):
            problems.append(f"resolution must be a whole number of pixels from {MIN_RESOLUTION} to "
                            f"{MAX_TEXTURE_RESOLUTION}, got {self.resolution!r}")
        if self.film_width is not None:
            for name in ("film_width", "film_height"):
                if not _whole(getattr(self, name), MIN_RESOLUTION, MAX_RESOLUTION):
                    problems.append(f"{name} must be a whole number of pixels from {MIN_RESOLUTION} to "
                                    f"{MAX_RESOLUTION}, got {getattr(self, name)!r}")
        elif not problems and self.resolution > MAX_RESOLUTION:
            problems.append(f"film_width and film_height must be stated for a texture above {MAX_RESOLUTION} "
                            f"pixels (the film is at most {MAX_RESOLUTION} on a side), got resolution "
                            f"{self.resolution} and no film")
        for name in ("fov", "plane_scale", "sphere_radius", "sphere_ior", "units_mm"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"{name} must be a finite number, got {value!r}")
        if problems:
            raise ValueError("Invalid scene: " + "; ".join(problems) + ".")
        if not 1.0 < self.fov < 170.0:
            problems.append(f"fov must be between 1 and 170 degrees, got {self.fov}")
        if not 0.01 <= self.plane_scale <= 100.0:
            problems.append(f"plane_scale must be between 0.01 and 100, got {self.plane_scale}")
        if not self.units_mm > 0:
            problems.append(f"units_mm (millimetres per world unit) must be positive, got {self.units_mm}")
        if not 1.0 <= self.sphere_ior <= 3.0:
            problems.append(f"sphere_ior must be between 1.0 (no refraction) and 3.0, got {self.sphere_ior}")
        centre, origin = np.array(self.sphere_center), np.array(self.camera_origin)
        if not self.sphere_radius > 0:
            problems.append(f"sphere_radius must be positive, got {self.sphere_radius}")
        elif np.linalg.norm(centre - origin) <= self.sphere_radius:
            problems.append(f"a sphere of radius {self.sphere_radius} would contain the camera")
        elif abs(centre[2]) <= self.sphere_radius:
            problems.append(f"a sphere of radius {self.sphere_radius} would cut through the textured plane")
        if self.integrator not in ("prb", "direct_projective", "prb_projective"):
            problems.append(f"integrator must be a differentiable one (prb), got {self.integrator!r}")
        if not problems:
            problems += self._camera_problems()
        if problems:
            raise ValueError("Invalid scene: " + "; ".join(problems) + ".")

    def _camera_problems(self):
        """What keeps the camera from seeing the ball in front of the print (a list of sentences)."""
        origin, target, up = (np.array(v) for v in (self.camera_origin, self.camera_target, self.camera_up))
        centre = np.array(self.sphere_center)
        view = target - origin
        if not np.linalg.norm(view) > 1e-9:
            return ["camera_target must differ from camera_origin"]
        forward = view / np.linalg.norm(view)
        left = np.cross(up, forward)
        if not np.linalg.norm(left) > 1e-6 * max(np.linalg.norm(up), 1e-300):
            return ["camera_up must not be parallel to the viewing direction (camera_target - camera_origin)"]
        left /= np.linalg.norm(left)
        if origin[2] == 0 or np.sign(origin[2]) != np.sign(centre[2]):
            return [f"camera_origin {list(self.camera_origin)} is behind or on the print (z = 0): put it on the "
                    f"ball's side (z of the same sign as sphere_center's, {centre[2]:g})"]
        if not forward[2] * -np.sign(origin[2]) > 0:
            return ["the camera looks away from the print: aim camera_target towards the plane z = 0"]
        # The ball's centre in the camera's tangent plane, and its apparent radius there.
        rel = centre - origin
        depth = rel @ forward
        if not depth > self.sphere_radius:
            return ["the ball is not in front of the camera: aim camera_target at the ball"]
        reach = self.sphere_radius / math.sqrt(max(rel @ rel - self.sphere_radius ** 2, 1e-300)) * \
            np.linalg.norm(rel) / depth                      # tan of the ball's angular radius, off-axis widened
        width, height = self.film_size
        tan_x = math.tan(math.radians(self.fov) / 2)
        x, y = abs(rel @ left) / depth, abs(rel @ np.cross(forward, left)) / depth
        if x - reach >= tan_x or y - reach >= tan_x * height / width:
            return ["the ball is outside the camera's field of view: aim camera_target at the ball, or widen fov"]
        return []

    def replace(self, **changes):
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """JSON-ready dict (tuples as lists). ``units_mm`` at its default and the film when it is the
        texture's square are left out, so that every scene written before they existed keeps its file, its
        probe cache key and its equality with saved models."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        if out["units_mm"] == DEFAULT_UNITS_MM:
            del out["units_mm"]
        if out["film_width"] is None:
            del out["film_width"], out["film_height"]
        return out

    @classmethod
    def from_dict(cls, data):
        """Build from a dict (e.g. JSON); keys starting with '_' are comments; unknown keys are an error."""
        data = {k: v for k, v in data.items() if not k.startswith("_")}
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Invalid scene: unknown field(s) {', '.join(sorted(unknown))}.")
        return cls(**data)

    @classmethod
    def load(cls, path=DEFAULT_SCENE):
        """Read a scene JSON file (default: the tutorial's scene in scenes/tutorial.json)."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def save(self, path):
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _whole(value, low, high):
    """True for a whole number (not a bool) from `low` to `high`."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and low <= value <= high


def mitsuba_dict(config, texture=None):
    """The Mitsuba scene dict for `config`, with `texture` ([H,W,3] float array; default mid-grey) on the plane.

    Call after :func:`predistort.backend.init` (the transforms are built with the chosen variant's types).
    """
    import mitsuba as mi
    from mitsuba.scalar_rgb import Transform4f as T

    res = config.resolution
    if texture is None:
        texture = np.full((res, res, 3), 0.5, dtype=np.float32)
    return {
        "type": "scene",
        "integrator": {"type": config.integrator},
        # Pinhole camera, fov across the film's width (fov_axis 'x'). By default the film has the texture's
        # resolution, so that the on-axis render and the texture align pixel for pixel.
        "sensor": {
            "type": "perspective",
            "to_world": T().look_at(origin=config.camera_origin, target=config.camera_target, up=config.camera_up),
            "fov": config.fov,
            "fov_axis": "x",
            "film": {"type": "hdrfilm", "width": config.film_size[0], "height": config.film_size[1]},
        },
        # The textured plane: Mitsuba's rectangle spans [-1,1]² in z=0, scaled to the plane's half side.
        # Its reflectance is the (pre-distorted) texture; two-sided so either face shows it.
        "textured_plane": {
            "type": "rectangle",
            "to_world": T().scale(config.plane_scale),
            "bsdf": {"type": "twosided", "nested": {
                "type": "diffuse",
                # float32 storage ('variant'), so that a float texture can be written into it at every render
                "reflectance": {"type": "bitmap", "bitmap": mi.Bitmap(np.asarray(texture, dtype=np.float32)),
                                "format": "variant"},
            }},
        },
        # The refracting glass sphere: a smooth dielectric, interior IOR `sphere_ior`, exterior air.
        "glass_sphere": {
            "type": "sphere",
            "to_world": T().translate(list(config.sphere_center)).scale(config.sphere_radius),
            "bsdf": {"type": "dielectric", "int_ior": config.sphere_ior},
        },
        # Uniform white environment light: the plane is lit evenly from every direction.
        "light": {"type": "constant"},
    }


DEFAULT = SceneConfig.load(DEFAULT_SCENE) if DEFAULT_SCENE.exists() else SceneConfig()
