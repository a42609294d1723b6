"""A world (:class:`predistort.scene.SceneConfig` with ``objects``) as triangle meshes for Blender Cycles: the
geometry that ``bench/cycles_blender.py`` builds, computed here with numpy (Blender's Python has none).

For benchmarks only (issue 35: photos of a mirror's chart by an independent renderer). What each part is,
matched to :func:`predistort.scene.mitsuba_dict` and :func:`predistort.objects.mitsuba_parts`:

- *the print* (:func:`print_quad`): the world's rectangle ``plane`` as one quad, two-sided Lambertian,
  reflectance = the texture as stored; texture row 0 on its ``+up`` edge, column 0 on its ``−right`` edge
  (:meth:`predistort.scene.Rect.uv`). Blender counts image rows from the bottom, so its v is 1 − the row
  fraction.
- *a cylinder* (:func:`cylinder_parts`): its side as :data:`CYLINDER_SEGMENTS` quads (two triangles each)
  whose vertices carry the exact radial normal. Interpolated and normalised across a facet, that normal is
  the exact one of the circle through the facet's point (the normalised lerp of two radii *is* the
  direction of the chord's point), so a mirror reflects as the analytic cylinder does; the only error is
  the facets' sagitta r·(1 − cos(π/segments)) (0.14 µm for r = 30 mm). Its two caps are flat discs.
- *a cone*: :func:`predistort.objects.cone_mesh` (the mesh Mitsuba itself renders) and a flat base disc.
- *a sphere*: a UV sphere with exact normals (Mitsuba's is analytic; the same sagitta argument holds).
- *a mesh file*: its triangles and vertex normals, as Mitsuba gets them.

Roles (:func:`predistort.objects.part_roles`): ``"mirror"`` (a perfect mirror, reflectance 1), ``"black"``
(a mirror's caps: matte black), or the glass's IOR (a float).

Limits: tens of thousands of vertices per part cross to Blender as raw float32 files; a mesh file's
normals are trimesh's (angle-weighted), as in Mitsuba.
"""
import numpy as np

from predistort.objects import cone_mesh, frame, part_roles

CYLINDER_SEGMENTS = 1024          # facets around a cylinder's side (sagitta 0.14 µm at r = 30 mm)
SPHERE_SEGMENTS = 384             # a sphere's segments around (half as many rings)
DISC_SEGMENTS = 256               # a flat cap's triangle fan (its outline sits inside the side's rim: black on black)


def print_quad(config):
    """The print of `config` as ``(corners [4, 3], uv [4, 2])``: the quad's corners (counter-clockwise seen from
    the side ``right × up`` faces) and Blender's texture coordinates at each (u from the −right edge, v from
    the −up edge: 1 − :meth:`Rect.uv`'s row fraction)."""
    plane = config.plane
    c, r, u = (np.asarray(x, np.float64) for x in (plane.center, plane.right, plane.up))
    w, h = plane.size
    corners = np.array([c - r * w / 2 - u * h / 2, c + r * w / 2 - u * h / 2, c + r * w / 2 + u * h / 2,
                        c - r * w / 2 + u * h / 2])
    uv = plane.uv(corners)
    return corners, np.stack([uv[:, 0], 1 - uv[:, 1]], -1)


def disc(center, normal_axis, radius, segments=DISC_SEGMENTS):
    """A flat disc (triangle fan) of `radius` about `center`, facing `normal_axis`: ``(vertices, faces)``."""
    u, v, a = frame(normal_axis)
    t = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.asarray(center, np.float64) + radius * (np.cos(t)[:, None] * u + np.sin(t)[:, None] * v)
    vertices = np.concatenate([np.asarray(center, np.float64)[None], ring])
    i = np.arange(segments)
    faces = np.stack([np.zeros_like(i), 1 + i, 1 + (i + 1) % segments], 1)
    return vertices, faces


def cylinder_side(solid, segments=CYLINDER_SEGMENTS):
    """``(vertices, faces, normals)`` of a cylinder's side: two rings of `segments` vertices (base, top), each
    with its exact radial normal."""
    u, v, a = frame(solid.axis)
    t = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    radial = np.cos(t)[:, None] * u + np.sin(t)[:, None] * v
    base = np.asarray(solid.base, np.float64)
    ring = base + solid.radius * radial
    vertices = np.concatenate([ring, ring + solid.height * a])
    i = np.arange(segments)
    j = (i + 1) % segments
    faces = np.concatenate([np.stack([i, j, segments + j], 1), np.stack([i, segments + j, segments + i], 1)])
    return vertices, faces, np.concatenate([radial, radial])


def uv_sphere(center, radius, segments=SPHERE_SEGMENTS):
    """``(vertices, faces, normals)`` of a UV sphere: `segments` around, `segments` // 2 rings, exact normals."""
    rings = segments // 2
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    normals = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], -1).reshape(-1, 3)
    normals = np.concatenate([[[0, 0, 1.0]], normals, [[0, 0, -1.0]]])
    n, last = segments, len(normals) - 1
    j = np.arange(segments)
    faces = [np.stack([np.zeros(n, int), 1 + j, 1 + (j + 1) % n], 1)]                     # the north cap
    for r in range(rings - 2):
        a, b = 1 + r * n + j, 1 + r * n + (j + 1) % n
        faces += [np.stack([a, a + n, b + n], 1), np.stack([a, b + n, b], 1)]
    a = 1 + (rings - 2) * n
    faces.append(np.stack([a + j, np.full(n, last), a + (j + 1) % n], 1))               # the south cap
    return np.asarray(center, np.float64) + radius * normals, np.concatenate(faces), normals


def solid_parts(solid, key="object_0"):
    """`solid` as a list of ``{"role", "vertices", "faces", "normals"}`` (normals None: flat-shaded), with the
    roles of :func:`predistort.objects.part_roles`."""
    roles = part_roles(solid, key)
    if solid.shape == "sphere":
        vertices, faces, normals = uv_sphere(solid.center, solid.radius)
        return [dict(role=roles[key], vertices=vertices, faces=faces, normals=normals)]
    if solid.shape == "mesh":
        vertices, faces, normals, _ = solid.mesh()
        return [dict(role=roles[key], vertices=vertices, faces=faces, normals=normals)]
    _, _, a = frame(solid.axis)
    base = np.asarray(solid.base, np.float64)
    side = cylinder_side(solid) if solid.shape == "cylinder" else cone_mesh(solid)
    parts = [dict(role=roles[key], vertices=side[0], faces=side[1], normals=side[2])]
    bottom = disc(base, -a, solid.radius)
    parts.append(dict(role=roles[f"{key}_base"], vertices=bottom[0], faces=bottom[1], normals=None))
    if solid.shape == "cylinder":
        top = disc(base + solid.height * a, a, solid.radius)
        parts.append(dict(role=roles[f"{key}_top"], vertices=top[0], faces=top[1], normals=None))
    return parts


def world_parts(config):
    """Every object of the world `config` as parts (:func:`solid_parts`)."""
    return [part for i, solid in enumerate(config.objects) for part in solid_parts(solid, f"object_{i}")]
