"""The scene as data: a world of a print, optical objects and a camera, read from JSON, turned into Mitsuba.

One scene type, :class:`SceneConfig` (also named :data:`World`), written two ways:

**A world** (``"units": "mm"``): a print, any objects, a camera and optionally a target, in millimetres::

    {"units": "mm",
     "print":   {"center": [0, -40, 0], "right": [1, 0, 0], "up": [0, 1, 0], "size": [297, 210]},
     "objects": [{"shape": "cylinder", "base": [0, 0, 0], "axis": [0, 0, 1], "radius": 30, "height": 100,
                  "material": "mirror"}],
     "camera":  {"origin": [0, -280, 300], "target": [0, 0, 50], "up": [0, 0, 1], "fov": 14, "film": [300, 400]},
     "target":  {"center": [0, 0, 50], "right": [1, 0, 0], "up": [0, 0.68, 0.73], "size": [60, 80]}}

- *The print* is a diffuse rectangle of ``size`` = [width, height] facing ``right × up``, lit by a uniform
  white environment. Texture row 0 lies on its ``+up`` edge, column 0 on its ``−right`` edge. Its texture
  has the print's aspect: ``resolution`` pixels on the long side (:attr:`SceneConfig.texture_size`).
- *Objects*: :class:`predistort.objects.Solid` (sphere, cylinder, cone, mesh; mirror or glass).
- *The camera*: Mitsuba's ``look_at``; ``fov`` horizontal; ``film`` = [width, height] pixels; the image's
  right is forward × up.
- *The target* (:class:`Rect`, same row and column convention) is where the picture should appear. Omitted:
  for glass, the print itself seen without the objects; for a mirror, a card through its axis facing the
  camera (:mod:`predistort.target`).
- Optional ``resolution`` (the texture's long side) and ``integrator``.

**The tutorial's flat fields** (every scene file written before worlds existed: the tutorial's, the
advisor's, calibrate's output) are the same type: one glass sphere (``sphere_center``, ``sphere_radius``,
``sphere_ior``) in front of a square print in z = 0 (half side ``plane_scale``, facing −z, row 0 at
y = −plane_scale), the camera's fields flat (``camera_origin``, ...), in world units of ``units_mm``
millimetres (``DEFAULT_UNITS_MM`` = 100 when unstated: the tutorial's ball is then 90 mm wide)::

    camera (z=-2) ──▶ glass sphere (centre z=-1, radius 0.45, IOR 1.06) ──▶ textured plane (z=0, 2.4×2.4)

A world that is one glass sphere before such a print is written back in the flat form
(:attr:`SceneConfig.is_ball_world`), so old files, probe cache keys and saved models keep their bytes; the
flat properties (``sphere_center``, ``plane_scale``, ...) exist for such worlds only, and the steps that
are still ball-only (calibration, the chart, the advisor's ball search) read them.

Limits: textures from ``MIN_RESOLUTION`` to ``MAX_TEXTURE_RESOLUTION`` on the long side; films from
``MIN_RESOLUTION`` to ``MAX_RESOLUTION`` on a side. Objects must stand on the camera's side of the print
and must not contain the camera; the camera must see some object.
"""
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .objects import ObjectError, Solid, mesh_digest, mitsuba_parts, part_roles
from .scenecheck import ball_problems, world_problems


def _data_dir(name):
    """A data folder of the repository (scenes/, weights/), or its copy installed inside the package."""
    here = Path(__file__).resolve().parent
    return here.parent / name if (here.parent / name).is_dir() else here / "_data" / name


SCENES_DIR = _data_dir("scenes")                                # the repository's scenes/ folder
DEFAULT_SCENE = SCENES_DIR / "tutorial.json"
DEFAULT_UNITS_MM = 100.0          # world unit in mm when a scene states none: the tutorial's ball is then 90 mm wide
TEXTURE_KEY = "textured_plane.bsdf.brdf_0.reflectance.data"      # the texture inside mi.traverse(scene)
MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024          # film side (and the app's largest), pixels
MAX_TEXTURE_RESOLUTION = 4096                    # texture's long side (the print's pixels)
WORLD_RESOLUTION = 512                           # a world file's texture long side when it states none
FLAT_FIELDS = ("resolution", "camera_origin", "camera_target", "camera_up", "fov", "plane_scale", "sphere_center",
               "sphere_radius", "sphere_ior", "integrator", "units_mm", "film_width", "film_height")
BALL_ONLY = ("plane_scale", "sphere_center", "sphere_radius", "sphere_ior")


@dataclass(frozen=True)
class Rect:
    """A rectangle in the world: ``center``, unit ``right`` and ``up`` (made orthonormal), ``size`` =
    (width along right, height along up). It faces ``right × up``."""
    center: tuple
    right: tuple
    up: tuple
    size: tuple

    @classmethod
    def from_dict(cls, data, name):
        if not isinstance(data, dict) or set(data) - {"center", "right", "up", "size"} - {k for k in data
                                                                                         if k.startswith("_")}:
            raise ValueError(f"Invalid scene: {name} must be {{\"center\", \"right\", \"up\", \"size\"}}, got {data!r}.")
        try:
            center, right, up = (np.asarray(data[k], dtype=np.float64) for k in ("center", "right", "up"))
            size = tuple(float(v) for v in data["size"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"Invalid scene: {name} needs center, right, up ([x, y, z]) and size "
                             f"([width, height]).") from None
        if center.shape != (3,) or right.shape != (3,) or up.shape != (3,) or len(size) != 2 \
                or not np.all(np.isfinite([*center, *right, *up, *size])):
            raise ValueError(f"Invalid scene: {name}'s center, right and up are three numbers, size two.")
        if not min(size) > 0:
            raise ValueError(f"Invalid scene: {name}.size must be positive, got {list(size)}.")
        if not np.linalg.norm(right) > 0 or not np.linalg.norm(np.cross(right, up)) > 1e-6 * np.linalg.norm(up):
            raise ValueError(f"Invalid scene: {name}.right and {name}.up must be two different directions.")
        right = right / np.linalg.norm(right)
        up = up - (up @ right) * right                      # up made square to right (a user's 0.68, 0.73)
        up = up / np.linalg.norm(up)
        return cls(*(tuple(float(v) for v in x) for x in (center, right, up)), size)

    def to_dict(self):
        return {"center": list(self.center), "right": list(self.right), "up": list(self.up), "size": list(self.size)}

    @property
    def normal(self):
        """The unit normal ``right × up`` (the side it faces)."""
        return tuple(np.cross(self.right, self.up))

    def uv(self, points):
        """Texture coordinates [N, 2] of world `points` [N, 3] in the plane: u = 0 at the −right edge, v = 0 at
        the +up edge (row 0), both 1 at the opposite edges."""
        rel = np.asarray(points, np.float64) - self.center
        return np.stack([rel @ self.right / self.size[0] + 0.5, 0.5 - rel @ self.up / self.size[1]], -1)

    def to_world(self):
        """Mitsuba's rectangle ([−1, 1]², uv = ((x + 1)/2, (y + 1)/2), bitmap row 0 at v = 0) mapped here: local
        x = right · w/2, local y = −up · h/2 (row 0 on the +up edge), local z = their cross product."""
        from mitsuba.scalar_rgb import Transform4f as T
        x = np.asarray(self.right) * self.size[0] / 2
        y = -np.asarray(self.up) * self.size[1] / 2
        z = np.cross(x, y)
        z = z / np.linalg.norm(z) * min(self.size) / 2
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, self.center
        return T(m.tolist())


TUTORIAL_PLANE = Rect((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (2.4, 2.4))
TUTORIAL_BALL = Solid("sphere", 1.06, center=(0.0, 0.0, -1.0), radius=0.45)


@dataclass(frozen=True, init=False)
class SceneConfig:
    """A world: the print (``plane``), ``objects``, the camera, an optional ``target``, the texture's
    ``resolution`` (long side), ``units_mm`` per world unit, the ``integrator``. Defaults: the tutorial's scene
    (``scenes/tutorial.json``). Accepts the flat fields too (``sphere_center=...``), here and in
    :meth:`replace`."""
    resolution: int
    camera_origin: tuple
    camera_target: tuple
    camera_up: tuple
    fov: float
    film_width: int
    film_height: int
    integrator: str
    units_mm: float
    plane: Rect
    objects: tuple
    target: Rect

    def __init__(self, resolution=128, camera_origin=(0.0, 0.0, -2.0), camera_target=(0.0, 0.0, 0.0),
                 camera_up=(0.0, -1.0, 0.0), fov=60.0, film_width=None, film_height=None, integrator="prb",
                 units_mm=DEFAULT_UNITS_MM, plane=TUTORIAL_PLANE, objects=(TUTORIAL_BALL,), target=None,
                 plane_scale=None, sphere_center=None, sphere_radius=None, sphere_ior=None):
        set_ = lambda name, value: object.__setattr__(self, name, value)                    # noqa: E731
        for name in ("camera_origin", "camera_target", "camera_up"):                        # lists → tuples
            value = locals()[name]
            try:
                set_(name, tuple(float(v) for v in value))
            except (TypeError, ValueError):
                raise ValueError(f"Invalid scene: {name} must be three numbers, got {value!r}.") from None
        for name, value in (("resolution", resolution), ("fov", fov), ("integrator", integrator),
                            ("units_mm", units_mm), ("plane", plane), ("target", target)):
            set_(name, value)
        objects = tuple(objects)
        flat = {k: v for k, v in dict(plane_scale=plane_scale, sphere_center=sphere_center,
                                      sphere_radius=sphere_radius, sphere_ior=sphere_ior).items() if v is not None}
        if flat:                      # the flat fields change the ball and the square print (one way to write them)
            if not (len(objects) == 1 and objects[0].shape == "sphere" and not objects[0].mirror):
                raise ValueError(f"Invalid scene: {', '.join(flat)} describe one glass ball; this world has "
                                 f"{len(objects)} object(s): change its objects instead.")
            ball = objects[0]
            objects = (dataclasses.replace(
                ball, center=tuple(float(v) for v in flat.get("sphere_center", ball.center)),
                radius=flat.get("sphere_radius", ball.radius), material=flat.get("sphere_ior", ball.material)),)
            if "plane_scale" in flat:
                s = flat["plane_scale"]
                set_("plane", dataclasses.replace(self.plane, size=(2 * s, 2 * s)) if _number(s) else s)
        set_("objects", objects)
        # A film equal to the texture is stored as None (None, None): it then follows `resolution`, and the
        # scene keeps the file and cache key it had before films were stated.
        if film_width in (None, self.texture_size[0]) and film_height in (None, self.texture_size[1]):
            film_width = film_height = None
        else:
            film_width = self.texture_size[0] if film_width is None else film_width
            film_height = self.texture_size[1] if film_height is None else film_height
        set_("film_width", film_width)
        set_("film_height", film_height)
        self.validate()

    # -- what the world is -----------------------------------------------------------------------------------
    @property
    def is_ball_world(self):
        """True for one glass sphere before a square print in z = 0 facing −z (row 0 at −y), no target: the
        tutorial's frame, which the flat fields write and the ball-only steps work in."""
        return (len(self.objects) == 1 and self.objects[0].shape == "sphere" and not self.objects[0].mirror
                and self.target is None and self.plane.center == (0.0, 0.0, 0.0)
                and self.plane.right == (1.0, 0.0, 0.0) and self.plane.up == (0.0, -1.0, 0.0)
                and self.plane.size[0] == self.plane.size[1])

    @property
    def has_mirror(self):
        return any(o.mirror for o in self.objects)

    def _ball(self, name):
        if not self.is_ball_world:
            raise ValueError(f"{name} describes the glass ball of the tutorial's frame; this setup is "
                             f"{self.describe_objects()}: this step works on a single glass ball for now.")
        return self.objects[0]

    @property
    def sphere_center(self):
        return self._ball("sphere_center").center

    @property
    def sphere_radius(self):
        return self._ball("sphere_radius").radius

    @property
    def sphere_ior(self):
        return self._ball("sphere_ior").material

    @property
    def plane_scale(self):
        self._ball("plane_scale")
        return self.plane.size[0] / 2

    def describe_objects(self):
        units = "mm" if self.units_mm == 1.0 else "units"
        return "; ".join(o.describe(units) for o in self.objects) or "no objects"

    # -- sizes -------------------------------------------------------------------------------------------------
    @property
    def texture_size(self):
        """``(width, height)`` of the print's texture: ``resolution`` on the print's long side, the print's
        aspect (a square for the tutorial's frame)."""
        w, h = self.plane.size
        if w == h:
            return (self.resolution, self.resolution)
        if not _number(self.resolution):
            return (self.resolution, self.resolution)
        short = max(MIN_RESOLUTION, round(self.resolution * min(w, h) / max(w, h)))
        return (self.resolution, short) if w > h else (short, self.resolution)

    @property
    def texture_shape(self):
        """``(rows, columns)`` of the texture."""
        return self.texture_size[::-1]

    @property
    def film_size(self):
        """``(width, height)`` of the camera's film, pixels (the texture's size unless stated)."""
        if self.film_width is None:
            return self.texture_size
        return (self.film_width, self.film_height)

    @property
    def film_pixels(self):
        """Pixels of the film (rows of the light transport)."""
        width, height = self.film_size
        return width * height

    # -- checks --------------------------------------------------------------------------------------------------
    def validate(self):
        """Raise ValueError with a plain message, naming the field, if this scene cannot be rendered as intended."""
        problems = []
        if not _whole(self.resolution, MIN_RESOLUTION, MAX_TEXTURE_RESOLUTION):
            problems.append(f"resolution must be a whole number of pixels from {MIN_RESOLUTION} to "
                            f"{MAX_TEXTURE_RESOLUTION}, got {self.resolution!r}")
        if self.film_width is not None:
            for name in ("film_width", "film_height"):
                if not _whole(getattr(self, name), MIN_RESOLUTION, MAX_RESOLUTION):
                    problems.append(f"{name} must be a whole number of pixels from {MIN_RESOLUTION} to "
                                    f"{MAX_RESOLUTION}, got {getattr(self, name)!r}")
        elif not problems and max(self.texture_size) > MAX_RESOLUTION:
            problems.append(f"film_width and film_height must be stated for a texture above {MAX_RESOLUTION} "
                            f"pixels (the film is at most {MAX_RESOLUTION} on a side), got resolution "
                            f"{self.resolution} and no film")
        for name in ("fov", "units_mm"):
            if not _number(getattr(self, name)):
                problems.append(f"{name} must be a finite number, got {getattr(self, name)!r}")
        if self.is_ball_world:
            for name in ("plane_scale", "sphere_radius", "sphere_ior"):
                if not _number(getattr(self, name)):
                    problems.append(f"{name} must be a finite number, got {getattr(self, name)!r}")
        if problems:
            raise ValueError("Invalid scene: " + "; ".join(problems) + ".")
        if not 1.0 < self.fov < 170.0:
            problems.append(f"fov must be between 1 and 170 degrees, got {self.fov}")
        if not self.units_mm > 0:
            problems.append(f"units_mm (millimetres per world unit) must be positive, got {self.units_mm}")
        if self.integrator not in ("prb", "direct_projective", "prb_projective"):
            problems.append(f"integrator must be a differentiable one (prb), got {self.integrator!r}")
        if not problems:
            problems += ball_problems(self) if self.is_ball_world else world_problems(self)
        if problems:
            raise ValueError("Invalid scene: " + "; ".join(problems) + ".")

    def replace(self, **changes):
        """A copy with some fields changed (validated); the flat fields (``sphere_ior=...``) work too."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """JSON-ready dict. A ball world is written flat (its fields as before worlds; ``units_mm`` at its
        default and the film when it is the texture's square are left out), so that every scene written
        before keeps its file, its probe cache key and its equality with saved models. Any other world is
        written in the world form (a mesh with its content's hash, so that a changed mesh is a new scene)."""
        if self.is_ball_world:
            out = {"resolution": self.resolution, "camera_origin": list(self.camera_origin),
                   "camera_target": list(self.camera_target), "camera_up": list(self.camera_up), "fov": self.fov,
                   "plane_scale": self.plane_scale, "sphere_center": list(self.sphere_center),
                   "sphere_radius": self.sphere_radius, "sphere_ior": self.sphere_ior,
                   "integrator": self.integrator}
            if self.units_mm != DEFAULT_UNITS_MM:
                out["units_mm"] = self.units_mm
            if self.film_width is not None:
                out["film_width"], out["film_height"] = self.film_width, self.film_height
            return out
        out = {"units": "mm"} if self.units_mm == 1.0 else {"units_mm": self.units_mm}
        out["print"] = self.plane.to_dict()
        out["objects"] = []
        for solid in self.objects:
            entry = solid.to_dict()
            if solid.shape == "mesh":
                entry["_sha256"] = mesh_digest(Path(solid.folder, solid.file))
            out["objects"].append(entry)
        out["camera"] = {"origin": list(self.camera_origin), "target": list(self.camera_target),
                         "up": list(self.camera_up), "fov": self.fov, "film": list(self.film_size)}
        if self.target is not None:
            out["target"] = self.target.to_dict()
        out["resolution"] = self.resolution
        if self.integrator != "prb":
            out["integrator"] = self.integrator
        return out

    @classmethod
    def from_dict(cls, data, folder=None):
        """Build from a dict (e.g. JSON); keys starting with '_' are comments; unknown keys are an error.
        `folder`: where the world's mesh files lie (the setup file's folder)."""
        if not isinstance(data, dict):
            raise ValueError("Invalid scene: a setup file holds one JSON object {...}.")
        data = {k: v for k, v in data.items() if not k.startswith("_")}
        if not any(k in data for k in ("print", "objects", "camera", "units", "target")):
            unknown = set(data) - set(FLAT_FIELDS)
            if unknown:
                raise ValueError(f"Invalid scene: unknown field(s) {', '.join(sorted(unknown))}.")
            return cls(**data)
        unknown = set(data) - {"units", "units_mm", "print", "objects", "camera", "target", "resolution", "integrator"}
        if unknown:
            raise ValueError(f"Invalid scene: unknown field(s) {', '.join(sorted(unknown))} (a world has units, "
                             f"print, objects, camera, target, resolution).")
        if "units" in data and data["units"] != "mm":
            raise ValueError(f'Invalid scene: units must be "mm" (write every length in millimetres), got '
                             f'{data["units"]!r}.')
        missing = [k for k in ("print", "objects", "camera") if k not in data]
        if missing:
            raise ValueError(f"Invalid scene: a world needs {', '.join(missing)}.")
        camera = data["camera"]
        if not isinstance(camera, dict) or set(camera) - {"origin", "target", "up", "fov", "film"} \
                or not {"origin", "target", "up", "fov"} <= set(camera):
            raise ValueError('Invalid scene: camera must be {"origin", "target", "up", "fov", "film"} (film '
                             'optional: [width, height] pixels).')
        if not isinstance(data["objects"], list):
            raise ValueError("Invalid scene: objects must be a list of objects.")
        try:
            objects = tuple(Solid.from_dict(o, folder, f"objects[{i}]") for i, o in enumerate(data["objects"]))
        except ObjectError as e:
            raise ValueError(f"Invalid scene: {e}.") from None
        film = camera.get("film") or (None, None)
        if not (isinstance(film, (list, tuple)) and len(film) == 2):
            raise ValueError(f"Invalid scene: camera.film must be [width, height] in pixels, got {film!r}.")
        return cls(resolution=data.get("resolution", WORLD_RESOLUTION), camera_origin=camera["origin"],
                   camera_target=camera["target"], camera_up=camera["up"], fov=camera["fov"],
                   film_width=film[0], film_height=film[1], integrator=data.get("integrator", "prb"),
                   units_mm=data.get("units_mm", 1.0), plane=Rect.from_dict(data["print"], "print"),
                   objects=objects, target=Rect.from_dict(data["target"], "target") if data.get("target") else None)

    @classmethod
    def load(cls, path=DEFAULT_SCENE):
        """Read a scene JSON file (default: the tutorial's scene in scenes/tutorial.json); a world's mesh
        files are read from the file's folder."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"Invalid scene: {path.name} is not a JSON setup file ({e}).") from None
        return cls.from_dict(data, folder=path.parent)

    def save(self, path):
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


World = SceneConfig          # the same type: a world is what every scene is


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value, low, high):
    """True for a whole number (not a bool) from `low` to `high`."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and low <= value <= high


def roles(config):
    """``{Mitsuba shape id: role}`` of the scene's objects (:func:`predistort.objects.part_roles`); the ball
    world's sphere keeps its old id ``glass_sphere``."""
    if config.is_ball_world:
        return {"glass_sphere": config.sphere_ior}
    out = {}
    for i, solid in enumerate(config.objects):
        out.update(part_roles(solid, f"object_{i}"))
    return out


def mitsuba_dict(config, texture=None):
    """The Mitsuba scene dict for `config`, with `texture` ([H,W,3] float array; default mid-grey) on the plane.

    Call after :func:`predistort.backend.init` (the transforms are built with the chosen variant's types).
    """
    import mitsuba as mi
    from mitsuba.scalar_rgb import Transform4f as T

    if texture is None:
        texture = np.full((*config.texture_shape, 3), 0.5, dtype=np.float32)
    scene = {
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
        # The print: Mitsuba's rectangle [-1,1]² mapped onto it (Rect.to_world: row 0 on its +up edge). Its
        # reflectance is the (pre-distorted) texture; two-sided so either face shows it.
        "textured_plane": {
            "type": "rectangle",
            "to_world": T().scale(config.plane_scale) if config.is_ball_world else config.plane.to_world(),
            "bsdf": {"type": "twosided", "nested": {
                "type": "diffuse",
                # float32 storage ('variant'), so that a float texture can be written into it at every render
                "reflectance": {"type": "bitmap", "bitmap": mi.Bitmap(np.asarray(texture, dtype=np.float32)),
                                "format": "variant"},
            }},
        },
        # Uniform white environment light: the print is lit evenly from every direction.
        "light": {"type": "constant"},
    }
    if config.is_ball_world:
        # The tutorial's glass sphere: a smooth dielectric, interior IOR `sphere_ior`, exterior air.
        scene["glass_sphere"] = {
            "type": "sphere",
            "to_world": T().translate(list(config.sphere_center)).scale(config.sphere_radius),
            "bsdf": {"type": "dielectric", "int_ior": config.sphere_ior},
        }
    else:
        for i, solid in enumerate(config.objects):
            scene.update(mitsuba_parts(solid, f"object_{i}"))
    return scene


DEFAULT = SceneConfig.load(DEFAULT_SCENE) if DEFAULT_SCENE.exists() else SceneConfig()
