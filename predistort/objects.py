"""The optical objects of a world: spheres, cylinders, cones and meshes, glass or mirror, in the world's units.

A world (:class:`predistort.scene.SceneConfig`) holds any number of these in front of its print. Each is a
*solid* (:class:`Solid`) with a material:

- ``"mirror"``: a perfect mirror on its side. A mirror cylinder's or cone's caps are matte black (a tube's
  ends, a cone's base: they send no light to the camera).
- ``{"ior": n}``: clear glass of index ``n`` in air (caps included: a glass rod or a glass of water is
  glass all round).

Shapes, as the world file writes them (lengths in the world's units, millimetres for ``"units": "mm"``):

    sphere     center, radius
    cylinder   base, axis, radius, height      the base's centre, the axis direction (any length)
    cone       base, axis, radius, height      base circle of `radius`; the apex `height` along the axis
    mesh       file                             OBJ, PLY or STL beside the world file, in world units

What Mitsuba gets (:func:`mitsuba_parts`): an analytic ``sphere``; an analytic ``cylinder`` (which has no
caps) plus two ``disk``s; a cone's side as a smooth triangle mesh (:data:`CONE_SEGMENTS` around, each
vertex with the exact normal of the cone) plus a disk; a mesh file's triangles with its vertex normals
(computed, angle-weighted, where the file has none). Every part carries a *role* that the probe reads:
``"mirror"``, ``"black"`` or the glass's index of refraction.

Meshes are read with trimesh from bytes, never from a path handed on: a world file names a mesh only by a
plain relative name beside it (:func:`mesh_path` refuses absolute paths, ``..`` and links), the file is
size-capped before it is parsed (:data:`MAX_MESH_BYTES`), an OBJ's ``mtllib`` is never followed (no
resolver is given), and the triangle count is capped (:data:`MAX_TRIANGLES`).
"""
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHAPES = ("sphere", "cylinder", "cone", "mesh")
MESH_FORMATS = (".obj", ".ply", ".stl")
MAX_MESH_BYTES = 64 << 20        # a mesh file larger than this is refused before it is parsed
MAX_TRIANGLES = 500_000          # ... and one with more triangles than this after
CONE_SEGMENTS = 1024             # facets around a cone's side (exact normals at their corners)
METRES_BELOW_MM = 5.0            # a mesh in a millimetre world whose largest side is under this looks like metres
FIELDS = {"sphere": ("center", "radius"), "cylinder": ("base", "axis", "radius", "height"),
          "cone": ("base", "axis", "radius", "height"), "mesh": ("file",)}
OPTIONAL = {"mesh": ("turn", "offset")}   # a mesh turned about an axis through its centre, then moved from its
                                          # file's coordinates: {"axis": [x, y, z], "degrees": d} and [x, y, z]


class ObjectError(ValueError):
    """A world's object cannot be used; the message names the field and what to change."""


def _vector(value, name):
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ObjectError(f"{name} must be three numbers [x, y, z], got {value!r}") from None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise ObjectError(f"{name} must be three finite numbers [x, y, z], got {value!r}")
    return out


def _turn(value, name):
    """``(ax, ay, az, degrees)`` of a ``{"axis": [x, y, z], "degrees": d}`` entry."""
    if not isinstance(value, dict) or set(value) != {"axis", "degrees"}:
        raise ObjectError(f'{name} must be {{"axis": [x, y, z], "degrees": d}}, got {value!r}')
    axis = _vector(value["axis"], f"{name}.axis")
    degrees = value["degrees"]
    if isinstance(degrees, bool) or not isinstance(degrees, (int, float)) or not math.isfinite(degrees):
        raise ObjectError(f"{name}.degrees must be a number, got {degrees!r}")
    if not np.linalg.norm(axis) > 0:
        raise ObjectError(f"{name}.axis must not be [0, 0, 0]")
    return (*axis, float(degrees))


def turned(vertices, normals, turn):
    """`vertices` and `normals` [V, 3] turned by ``turn`` = (ax, ay, az, degrees) about the axis through the
    vertices' bounding box's centre (Rodrigues' rotation)."""
    k = np.asarray(turn[:3], np.float64) / np.linalg.norm(turn[:3])
    a = math.radians(turn[3])
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    R = np.eye(3) + math.sin(a) * K + (1 - math.cos(a)) * K @ K
    centre = (vertices.min(0) + vertices.max(0)) / 2
    return (vertices - centre) @ R.T + centre, normals @ R.T


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ObjectError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _material(value, name):
    """``"mirror"`` or the glass's IOR (a float) from a world file's ``material``."""
    if value == "mirror":
        return "mirror"
    if isinstance(value, dict) and set(value) == {"ior"}:
        ior = value["ior"]
        if isinstance(ior, (int, float)) and not isinstance(ior, bool) and math.isfinite(ior) and 1.0 <= ior <= 3.0:
            return float(ior)
        raise ObjectError(f"{name}.ior must be a number from 1.0 to 3.0 (glass: 1.5, water: 1.33), got {ior!r}")
    raise ObjectError(f'{name} must be "mirror" or {{"ior": n}} (clear glass of index n), got {value!r}')


def frame(axis):
    """An orthonormal ``(u, v, a)`` of [3] arrays with ``a`` along `axis` (u, v: any pair across it)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    helper = np.array([1.0, 0, 0]) if abs(a[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(helper, a)
    u /= np.linalg.norm(u)
    return u, np.cross(a, u), a


def mesh_path(file, folder, name="objects[].file"):
    """The mesh file `file` (a world file's string) inside `folder`, or :class:`ObjectError`.

    Only a plain relative name that stays inside `folder` and is a regular file (not a link) is accepted:
    a world file, uploaded or not, must not read the server's other files as a "mesh"."""
    if not isinstance(file, str) or not file:
        raise ObjectError(f"{name} must name a mesh file (OBJ, PLY or STL) beside the setup file, got {file!r}")
    rel = Path(file)
    if rel.is_absolute() or file.startswith(("/", "\\", "~")) or ".." in rel.parts or ":" in file:
        raise ObjectError(f"{name} {file!r} must be a plain file name beside the setup file (no absolute path, "
                          f"no '..')")
    if rel.suffix.lower() not in MESH_FORMATS:
        raise ObjectError(f"{name} {file!r} must be an OBJ, PLY or STL file")
    if folder is None:
        raise ObjectError(f"{name} {file!r}: a mesh needs the setup file's folder (load the setup from its file)")
    folder = Path(folder).resolve()
    path = folder / rel
    for part in [path, *path.parents]:                          # no link anywhere between the folder and file
        if part == folder:
            break
        if part.is_symlink():
            raise ObjectError(f"{name} {file!r} is a link: put the mesh file itself beside the setup file")
    if not path.is_file():
        raise ObjectError(f"{name} {file!r} was not found beside the setup file")
    if path.resolve().parent != folder and folder not in path.resolve().parents:
        raise ObjectError(f"{name} {file!r} must stay inside the setup file's folder")
    return path


_MESHES = {}                # content hash -> the parsed mesh
_DIGESTS = {}               # (path, size, modification time) -> content hash


def mesh_digest(path):
    """The SHA-256 of a mesh file's bytes, read once while the file keeps its size and modification time (a
    world's cache key names its meshes by it, so a changed mesh is a new scene)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _DIGESTS[key]


def read_mesh(path, name="objects[].file"):
    """``(vertices [V, 3] float64, faces [F, 3] int64, normals [V, 3], watertight)`` of a mesh file, capped.

    Cached by the file's content hash. Raises :class:`ObjectError` for a file that is too large, unreadable,
    empty or over :data:`MAX_TRIANGLES`."""
    import trimesh
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_MESH_BYTES:
        raise ObjectError(f"{name} {path.name} is {size / 2**20:.0f} MB; the limit is {MAX_MESH_BYTES >> 20} MB: "
                          f"simplify the mesh")
    key = mesh_digest(path)
    if key not in _MESHES:
        data = path.read_bytes()
        try:   # from bytes, no resolver: an OBJ's mtllib and any other file it names are never opened
            mesh = trimesh.load(io.BytesIO(data), file_type=path.suffix.lower()[1:], force="mesh", process=False)
        except Exception as e:
            raise ObjectError(f"{name} {path.name} could not be read as a mesh ({type(e).__name__}): export it "
                              f"again as OBJ, PLY or STL") from None
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            raise ObjectError(f"{name} {path.name} holds no triangles")
        if len(mesh.faces) > MAX_TRIANGLES:
            raise ObjectError(f"{name} {path.name} has {len(mesh.faces):,} triangles; the limit is "
                              f"{MAX_TRIANGLES:,}: simplify the mesh")
        welded = mesh.copy()
        welded.merge_vertices(merge_tex=True, merge_norm=True)
        _MESHES[key] = (np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64),
                        np.asarray(mesh.vertex_normals, np.float64), bool(welded.is_watertight))
    return _MESHES[key]


@dataclass(frozen=True)
class Solid:
    """One object of a world. ``shape`` in :data:`SHAPES`; ``material`` ``"mirror"`` or an IOR; the shape's
    fields (:data:`FIELDS`); ``folder``: where a mesh's ``file`` lies (the world file's folder)."""
    shape: str
    material: object = 1.5
    center: tuple = None
    radius: float = None
    base: tuple = None
    axis: tuple = None
    height: float = None
    file: str = None
    folder: str = None
    offset: tuple = None
    turn: tuple = None

    @property
    def mirror(self):
        return self.material == "mirror"

    @classmethod
    def from_dict(cls, data, folder=None, name="objects[0]"):
        """Read one entry of a world file's ``objects`` (errors name the field: ``objects[1].radius``)."""
        if not isinstance(data, dict):
            raise ObjectError(f"{name} must be an object like {{\"shape\": \"sphere\", ...}}, got {data!r}")
        shape = data.get("shape")
        if shape not in SHAPES:
            raise ObjectError(f"{name}.shape must be one of {', '.join(SHAPES)}, got {shape!r}")
        optional = OPTIONAL.get(shape, ())
        unknown = set(data) - {"shape", "material", *FIELDS[shape], *optional} - {k for k in data if k.startswith("_")}
        if unknown:
            raise ObjectError(f"{name}: unknown field(s) {', '.join(sorted(unknown))} for a {shape} (it takes "
                              f"{', '.join(FIELDS[shape])}, material)")
        missing = [k for k in FIELDS[shape] if k not in data]
        if missing:
            raise ObjectError(f"{name}: a {shape} needs {', '.join(missing)}")
        if "material" not in data:
            raise ObjectError(f'{name}.material is missing: "mirror" or {{"ior": n}}')
        fields = {"shape": shape, "material": _material(data["material"], f"{name}.material")}
        for key in FIELDS[shape] + tuple(k for k in optional if k in data):
            value = data[key]
            if key in ("center", "base", "axis", "offset"):
                fields[key] = _vector(value, f"{name}.{key}")
            elif key == "turn":
                fields[key] = _turn(value, f"{name}.turn")
            elif key == "file":
                mesh_path(value, folder, f"{name}.file")
                fields["file"], fields["folder"] = value, str(Path(folder).resolve())
            else:
                fields[key] = _positive(value, f"{name}.{key}")
        if "axis" in fields and not np.linalg.norm(fields["axis"]) > 0:
            raise ObjectError(f"{name}.axis must not be [0, 0, 0]")
        solid = cls(**fields)
        solid.check(name)
        return solid

    def to_dict(self):
        out = {"shape": self.shape}
        for key in FIELDS[self.shape]:
            value = getattr(self, key)
            out[key] = list(value) if isinstance(value, tuple) else value
        if self.turn is not None:
            out["turn"] = {"axis": list(self.turn[:3]), "degrees": self.turn[3]}
        if self.offset is not None:
            out["offset"] = list(self.offset)
        out["material"] = "mirror" if self.mirror else {"ior": self.material}
        return out

    # -- geometry ------------------------------------------------------------------------------------------
    def mesh(self):
        """``(vertices, faces, normals, watertight)`` of a mesh solid (see :func:`read_mesh`), moved by its
        ``turn`` (about its axis through the file's bounding box's centre) and moved by its ``offset`` when it
        has them."""
        vertices, faces, normals, watertight = read_mesh(mesh_path(self.file, self.folder),
                                                         f"objects[].file {self.file!r}")
        if self.turn is not None:
            vertices, normals = turned(vertices, normals, self.turn)
        if self.offset is not None:
            vertices = vertices + np.asarray(self.offset, np.float64)
        return vertices, faces, normals, watertight

    def check(self, name="objects[0]", units_mm=1.0):
        """Raise :class:`ObjectError` for a mesh that cannot be used as this material (glass must be closed),
        or that looks drawn in metres in a millimetre world."""
        if self.shape != "mesh":
            return
        vertices, _, _, watertight = self.mesh()
        if not self.mirror and not watertight:
            raise ObjectError(f"{name}.file {self.file!r} is not watertight (it has holes or open edges), so it "
                              f"has no inside to refract through: close the mesh, or make it a mirror")
        extent = float(np.ptp(vertices, axis=0).max()) * units_mm
        if units_mm == 1.0 and extent < METRES_BELOW_MM:
            raise ObjectError(f"{name}.file {self.file!r} is only {extent:g} wide: it looks drawn in metres; the "
                              f"world is in millimetres, so scale it by 1000")

    def points(self, count=64):
        """Points [N, 3] on the solid's surface (its outline: enough for bounds, footprints and "through the
        print")."""
        if self.shape == "sphere":
            g = np.linspace(0, np.pi, count // 4)[:, None]
            t = np.linspace(0, 2 * np.pi, count, endpoint=False)[None, :]
            p = np.stack([np.sin(g) * np.cos(t), np.sin(g) * np.sin(t), np.cos(g) + 0 * t], -1).reshape(-1, 3)
            return np.asarray(self.center) + self.radius * p
        if self.shape == "mesh":
            return self.mesh()[0]
        u, v, a = frame(self.axis)
        t = np.linspace(0, 2 * np.pi, count, endpoint=False)[:, None]
        ring = self.radius * (np.cos(t) * u + np.sin(t) * v)
        levels = np.linspace(0, 1, 9)                               # rings up the side, base to top (or apex)
        shrink = np.ones_like(levels) if self.shape == "cylinder" else 1 - levels
        return np.concatenate([np.asarray(self.base) + k * ring + f * self.height * a
                               for f, k in zip(levels, shrink)])

    def contains(self, point):
        """Whether `point` [3] lies inside the solid (a mesh: inside its bounding box)."""
        p = np.asarray(point, dtype=np.float64)
        if self.shape == "sphere":
            return bool(np.linalg.norm(p - self.center) < self.radius)
        if self.shape == "mesh":
            vertices = self.mesh()[0]
            return bool(np.all(p > vertices.min(0)) and np.all(p < vertices.max(0)))
        _, _, a = frame(self.axis)
        along = float((p - self.base) @ a)
        across = float(np.linalg.norm((p - self.base) - along * a))
        if not 0 < along < self.height:
            return False
        reach = self.radius if self.shape == "cylinder" else self.radius * (1 - along / self.height)
        return across < reach

    def describe(self, units="mm"):
        what = "mirror" if self.mirror else f"glass (IOR {self.material:g})"
        if self.shape == "sphere":
            return f"{what} sphere, {2 * self.radius:g} {units} across"
        if self.shape == "mesh":
            return f"{what} mesh {self.file}"
        return f"{what} {self.shape}, {2 * self.radius:g} {units} across, {self.height:g} {units} tall"


# -------------------------------------------------------------------------------------------------------------
# Mitsuba
# -------------------------------------------------------------------------------------------------------------
def _matrix(u, v, a, origin, scale=(1.0, 1.0, 1.0)):
    from mitsuba.scalar_rgb import Transform4f as T
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = u * scale[0], v * scale[1], a * scale[2], origin
    return T(m.tolist())


def _bsdf(role):
    if role == "mirror":
        return {"type": "conductor", "material": "none"}                 # reflectance 1 at every angle
    if role == "black":
        return {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.0}}
    return {"type": "dielectric", "int_ior": float(role), "ext_ior": 1.0}  # the probe's Fresnel uses n / 1.0


def _triangles(name, vertices, faces, normals, role):
    """A Mitsuba mesh from arrays, with `role`'s BSDF."""
    import mitsuba as mi
    props = mi.Properties()
    props["bsdf"] = mi.load_dict(_bsdf(role))
    mesh = mi.Mesh(name, len(vertices), len(faces), props, has_vertex_normals=True)
    params = mi.traverse(mesh)
    params["vertex_positions"] = mi.Float(np.asarray(vertices, np.float32).ravel())
    params["faces"] = mi.UInt32(np.asarray(faces, np.uint32).ravel())
    params["vertex_normals"] = mi.Float(np.asarray(normals, np.float32).ravel())
    params.update()
    return mesh


def cone_mesh(solid, segments=CONE_SEGMENTS):
    """``(vertices, faces, normals)`` of a cone's side: a quad (two triangles) per segment between the base ring
    and a ring a hair below the apex, and a tiny fan to the apex. Every vertex has the cone's exact normal at
    its angle, so the interpolated normal follows the exact one across each quad; a fan from one apex vertex
    would tilt the normals near the apex by half a segment (a mirror cone's reflections there are its most
    sensitive)."""
    u, v, a = frame(solid.axis)
    t = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    radial = np.cos(t)[:, None] * u + np.sin(t)[:, None] * v
    base = np.asarray(solid.base, np.float64)
    near = 1e-3                                              # the top ring: 0.1 % of the way from the apex
    ring = base + solid.radius * radial
    top = base + (1 - near) * solid.height * a + near * solid.radius * radial
    apex = np.repeat((base + solid.height * a)[None], segments, 0)
    normal = solid.height * radial + solid.radius * a
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    vertices = np.concatenate([ring, top, apex])
    normals = np.concatenate([normal, normal, normal])
    i = np.arange(segments)
    j = (i + 1) % segments
    faces = np.concatenate([np.stack([i, j, segments + j], 1), np.stack([i, segments + j, segments + i], 1),
                            np.stack([segments + i, segments + j, 2 * segments + i], 1)])
    return vertices, faces, normals


def part_roles(solid, key):
    """``{Mitsuba shape id: role}`` of `solid`'s parts, ids starting with `key`: its side (or its whole
    surface) has the solid's role, ``"mirror"`` or the glass's IOR; a mirror's caps are ``"black"``."""
    role = "mirror" if solid.mirror else solid.material
    cap = "black" if solid.mirror else role
    if solid.shape in ("sphere", "mesh"):
        return {key: role}
    caps = ("base", "top") if solid.shape == "cylinder" else ("base",)
    return {key: role, **{f"{key}_{c}": cap for c in caps}}


def mitsuba_parts(solid, key):
    """``{id: Mitsuba shape}`` for `solid` (ids and roles: :func:`part_roles`)."""
    roles = part_roles(solid, key)
    role = roles[key]
    if solid.shape == "sphere":
        return {key: {"type": "sphere", "center": list(solid.center), "radius": solid.radius, "bsdf": _bsdf(role)}}
    if solid.shape == "mesh":
        vertices, faces, normals, _ = solid.mesh()
        return {key: _triangles(key, vertices, faces, normals, role)}
    u, v, a = frame(solid.axis)
    base = np.asarray(solid.base)
    top = base + solid.height * a
    parts = {f"{key}_base": {"type": "disk", "to_world": _matrix(u, -v, -a, base, (solid.radius,) * 3),
                             "bsdf": _bsdf(roles[f"{key}_base"])}}   # facing out of the solid: along −axis
    if solid.shape == "cylinder":
        parts[key] = {"type": "cylinder", "p0": base.tolist(), "p1": top.tolist(), "radius": solid.radius,
                      "bsdf": _bsdf(role)}
        parts[f"{key}_top"] = {"type": "disk", "to_world": _matrix(u, v, a, top, (solid.radius,) * 3),
                               "bsdf": _bsdf(roles[f"{key}_top"])}
    else:
        parts[key] = _triangles(key, *cone_mesh(solid), role)
    return parts
