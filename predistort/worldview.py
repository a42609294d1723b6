"""A world in 3D (a GLB file for the page's ``gr.Model3D``), and a world built from a maker's few numbers.

:func:`world_glb` draws, with trimesh, what a world holds in its own millimetres:

- the print: a flat rectangle carrying its texture (the pre-distorted print when there is one, else white
  paper), row 0 on its +up edge as the renderer reads it;
- each object as its solid (a sphere, a capped cylinder, a cone, the mesh itself), silver for a mirror,
  pale blue for glass;
- the camera: a small pyramid from its lens along its view, as wide as its field of view, and a line to
  what it looks at.

glTF is y-up and in metres; the scene is written as it is (millimetres, the world's axes), and
``gr.Model3D`` frames whatever it is given.

:func:`maker_world` builds the world a maker describes with a picker: an object (a glass ball, a cylinder or
cone mirror, a glass rod, a glass of water) of a few millimetres standing on (or, a ball, before) a paper of
a given size, and a camera given as its height above the print, its distance from the object and its lens.
"""
import math

import numpy as np
import trimesh
from PIL import Image

from .objects import cone_mesh, frame

MIRROR_RGBA, GLASS_RGBA, CAMERA_RGBA = (200, 200, 210, 255), (150, 200, 255, 120), (230, 80, 40, 255)
PAPERS_MM = {"A4": (297.0, 210.0), "A3": (420.0, 297.0), "Letter": (279.4, 215.9), "Tabloid": (431.8, 279.4)}
OBJECTS = ("glass ball", "cylinder mirror", "cone mirror", "glass rod", "glass of water", "your own mesh (glass)",
           "your own mesh (mirror)")
MESH_KINDS = OBJECTS[-2:]           # their shape is a mesh file the maker uploads, in millimetres, z up


def _print_quad(config, texture=None):
    """The print as two triangles with uv (row 0 on +up) and its texture (white paper without one)."""
    p = config.plane
    c, r, u = np.asarray(p.center) * config.units_mm, np.asarray(p.right), np.asarray(p.up)
    w, h = (s * config.units_mm for s in p.size)
    corners = [c - r * w / 2 + u * h / 2, c + r * w / 2 + u * h / 2, c + r * w / 2 - u * h / 2,
               c - r * w / 2 - u * h / 2]
    quad = trimesh.Trimesh(vertices=corners, faces=[[0, 2, 1], [0, 3, 2], [0, 1, 2], [0, 2, 3]], process=False)
    image = Image.new("RGB", (8, 8), (250, 250, 245)) if texture is None else texture
    # glTF's uv has v = 0 at the image's top row, as the texture's row 0 on the +up edge.
    quad.visual = trimesh.visual.TextureVisuals(uv=np.array([[0, 1], [1, 1], [1, 0], [0, 0]], float), image=image)
    return quad


def _solid(solid, mm):
    """A trimesh of one object (in millimetres), coloured by its material."""
    if solid.shape == "sphere":
        mesh = trimesh.creation.icosphere(4, radius=solid.radius * mm)
        mesh.apply_translation(np.asarray(solid.center) * mm)
    elif solid.shape == "mesh":
        vertices, faces, _, _ = solid.mesh()
        mesh = trimesh.Trimesh(vertices * mm, faces, process=False)
    else:
        u, v, a = frame(solid.axis)
        if solid.shape == "cylinder":
            mesh = trimesh.creation.cylinder(radius=solid.radius * mm, height=solid.height * mm, sections=96)
            mesh.apply_translation([0, 0, solid.height * mm / 2])
        else:
            vertices, faces, _ = cone_mesh(solid.__class__("cone", solid.material, base=(0, 0, 0),
                                                           axis=(0, 0, 1), radius=solid.radius * mm,
                                                           height=solid.height * mm), segments=96)
            mesh = trimesh.Trimesh(vertices, faces, process=False)
        rotation = np.eye(4)
        rotation[:3, :3] = np.stack([u, v, a], 1)
        rotation[:3, 3] = np.asarray(solid.base) * mm
        mesh.apply_transform(rotation)
    mesh.visual.face_colors = MIRROR_RGBA if solid.mirror else GLASS_RGBA
    return mesh


def _camera(config):
    """The camera as a pyramid (its lens at the apex, its film's shape at the base) and its line of sight."""
    mm = config.units_mm
    origin, target, up = (np.asarray(v, float) for v in (config.camera_origin, config.camera_target,
                                                           config.camera_up))
    forward = (target - origin) / np.linalg.norm(target - origin)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    top = np.cross(right, forward)
    size = 0.15 * np.linalg.norm(target - origin) * mm
    half_w = size * math.tan(math.radians(config.fov) / 2)
    half_h = half_w * config.film_size[1] / config.film_size[0]
    apex = origin * mm
    base = [apex + forward * size + sx * half_w * right + sy * half_h * top for sx, sy in
            ((-1, 1), (1, 1), (1, -1), (-1, -1))]
    pyramid = trimesh.Trimesh([apex, *base], [[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1], [1, 3, 2], [1, 4, 3]],
                              process=False)
    pyramid.visual.face_colors = CAMERA_RGBA
    sight = trimesh.creation.cylinder(radius=max(0.3, size / 60), segment=[apex, target * mm], sections=8)
    sight.visual.face_colors = CAMERA_RGBA
    return [pyramid, sight]


def world_glb(config, path, texture=None):
    """Write the world `config` (print, objects, camera) as a GLB file at `path`; `texture`: a PIL image to show
    on the print (the pre-distorted texture), else white paper. Returns the path."""
    scene = trimesh.Scene([_print_quad(config, texture), *(_solid(s, config.units_mm) for s in config.objects),
                           *_camera(config)])
    with open(path, "wb") as f:
        f.write(scene.export(file_type="glb"))
    return path


def maker_world(kind, diameter_mm, height_mm, paper="A3", camera_height_mm=300.0, camera_distance_mm=300.0,
                fov_deg=20.0, film=(300, 400), ior=1.5, resolution=1024, mesh_file=None):
    """A world (dict, the setup file's form) from a maker's numbers: `kind` in :data:`OBJECTS`, its diameter
    and height (mm; a ball: the diameter only), the `paper` (a name of :data:`PAPERS_MM`, landscape), and the
    camera `camera_height_mm` above the print and `camera_distance_mm` from the object's axis, looking at
    its middle, with `fov_deg` across its `film` [width, height]. Glass: `ior` (a glass of water: 1.33).

    The object stands at the print's centre line, a third of the way from its near edge; the camera looks at
    it from the near side. A glass ball sits its own radius above the print (on a ring stand). Your own mesh
    (:data:`MESH_KINDS`): `mesh_file` (a path, read capped by :func:`predistort.objects.read_mesh`), its size
    its own (millimetres, z up), stood there by an ``offset`` (its lowest point on the print); the diameter
    and height are not used."""
    if kind not in OBJECTS:
        raise ValueError(f"the object must be one of {', '.join(OBJECTS)}, got {kind!r}")
    if paper not in PAPERS_MM:
        raise ValueError(f"the paper must be one of {', '.join(PAPERS_MM)}, got {paper!r}")
    for name, value in (("diameter", diameter_mm), ("height", height_mm), ("camera height", camera_height_mm),
                        ("camera distance", camera_distance_mm)):
        if not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"the {name} must be a positive number of millimetres, got {value!r}")
    w, h = PAPERS_MM[paper]
    radius = diameter_mm / 2
    base_y = -h / 2 + h / 3                                   # a third of the way up from the near edge
    if kind in MESH_KINDS:
        from pathlib import Path
        from .objects import read_mesh
        if mesh_file is None:
            raise ValueError("Upload your mesh (OBJ, PLY or STL, in millimetres) under 'Its mesh files'.")
        vertices = read_mesh(mesh_file, "the mesh")[0]
        low, high = vertices.min(0), vertices.max(0)
        offset = [-(low[0] + high[0]) / 2, base_y - (low[1] + high[1]) / 2, -low[2]]
        obj = {"shape": "mesh", "file": Path(mesh_file).name, "offset": [round(float(v), 6) for v in offset],
               "material": "mirror" if "mirror" in kind else {"ior": ior}}
        middle = float(high[2] - low[2]) / 2
    elif kind == "glass ball":
        obj = {"shape": "sphere", "center": [0, base_y, radius * 1.05], "radius": radius, "material": {"ior": ior}}
        middle = radius * 1.05
    else:
        material = "mirror" if "mirror" in kind else {"ior": 1.33 if kind == "glass of water" else ior}
        obj = {"shape": "cone" if kind == "cone mirror" else "cylinder", "base": [0, base_y, 0], "axis": [0, 0, 1],
               "radius": radius, "height": height_mm, "material": material}
        middle = height_mm / 2
    return {"units": "mm", "print": {"center": [0, 0, 0], "right": [1, 0, 0], "up": [0, 1, 0], "size": [w, h]},
            "objects": [obj],
            "camera": {"origin": [0, base_y - camera_distance_mm, camera_height_mm], "target": [0, base_y, middle],
                       "up": [0, 0, 1], "fov": fov_deg, "film": list(film)},
            "resolution": resolution}
