"""Runs INSIDE Blender (``blender -b --factory-startup -P bench/cycles_blender.py -- JOB.json``): builds the
project's scene in Cycles, renders it, and dumps the linear image. Driven by :mod:`bench.cycles`; not
imported by the project (only Blender has ``bpy``). Blender's Python here has no numpy: raw float32 files.

JOB.json: ``scene`` (a SceneConfig dict, already validated by the caller, with the camera's flat fields),
``world`` (a world only: ``print`` = {corners, uv} and ``parts`` = [{role, vertices, faces, normals}] as raw
files, from bench/cycles_world.py; the ball scene is built here as before), ``texture`` (raw float32 file,
``texture_size`` [W, H], rows top to bottom, RGB), ``spp``, ``seed``, ``threads``, ``sphere_segments``,
``exr`` (where Cycles writes its render), ``out`` (raw float32 RGB, rows top to bottom, film W×H).

Conventions, matched to :func:`predistort.scene.mitsuba_dict` (see the comments where each is built):
camera = Mitsuba's look_at + horizontal fov; plane = Mitsuba's rectangle [-1,1]² × plane_scale at z = 0
with uv = ((x/s+1)/2, (y/s+1)/2) and texture row = v (row 0 at y = −s); sphere = smooth dielectric; a world's
print = its rectangle (row 0 on the +up edge); a mirror = a sharp white Glossy BSDF, its caps matte black;
constant white environment of radiance 1; Gaussian pixel filter of σ = 0.5 px (Mitsuba's hdrfilm default).
"""
import array
import json
import math
import sys

import bpy
from mathutils import Matrix, Vector

job = json.loads(open(sys.argv[sys.argv.index("--") + 1]).read())
cfg = job["scene"]
width, height = cfg["film_width"], cfg["film_height"]

# -- an empty scene ------------------------------------------------------------------------------------
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene

# -- camera: Mitsuba's look_at ---------------------------------------------------------------------------
# Mitsuba's camera frame: x = left = up × forward, y = forward × left, z = forward; the film's s runs along
# −left (image right) and t along −y (image down). A Blender camera looks along its local −Z with local +X
# image right and +Y image up, so its axes are X = −left, Y = forward × left, Z = −forward.
origin, target, up = (Vector(cfg[k]) for k in ("camera_origin", "camera_target", "camera_up"))
forward = (target - origin).normalized()
left = up.cross(forward).normalized()
true_up = forward.cross(left)
rot = Matrix((-left, true_up, -forward)).transposed()          # columns are the camera's X, Y, Z
cam_data = bpy.data.cameras.new("camera")
cam_data.sensor_fit = "HORIZONTAL"                              # fov across the width (fov_axis 'x')
cam_data.sensor_width = 36.0
cam_data.lens = cam_data.sensor_width / (2 * math.tan(math.radians(cfg["fov"]) / 2))
cam_data.clip_start, cam_data.clip_end = 1e-4, 1e4
cam = bpy.data.objects.new("camera", cam_data)
cam.matrix_world = Matrix.Translation(origin) @ rot.to_4x4()
scene.collection.objects.link(cam)
scene.camera = cam

# -- the print's texture: reflectances as stored, rows top to bottom in the file -------------------------
tw, th = job["texture_size"]
pixels = array.array("f")
with open(job["texture"], "rb") as f:
    pixels.frombytes(f.read())
rgba = array.array("f", [1.0]) * (tw * th * 4)
for row in range(th):                                   # Blender's pixel rows run bottom to top
    src, dst = (th - 1 - row) * tw * 3, row * tw * 4
    for i in range(3):
        rgba[dst + i:dst + tw * 4:4] = pixels[src + i:src + tw * 3:3]
image = bpy.data.images.new("texture", tw, th, alpha=False, float_buffer=True)
image.colorspace_settings.name = "Non-Color"            # values are reflectances, used as stored (no gamma)
image.pixels.foreach_set(rgba)
image.pack()


def print_material():
    """Lambertian (Mitsuba's diffuse; Cycles' is two-sided, as the project's twosided print), reflectance =
    the texture, bilinear and wrapping (Mitsuba's bitmap)."""
    mat = bpy.data.materials.new("print")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    tex = nodes.new("ShaderNodeTexImage")
    tex.image, tex.interpolation, tex.extension = image, "Linear", "REPEAT"
    diffuse = nodes.new("ShaderNodeBsdfDiffuse")
    diffuse.inputs["Roughness"].default_value = 0.0
    out = nodes.new("ShaderNodeOutputMaterial")
    links.new(tex.outputs["Color"], diffuse.inputs["Color"])
    links.new(diffuse.outputs["BSDF"], out.inputs["Surface"])
    return mat


def role_material(role):
    """A part's material by its role: "mirror" = a perfect mirror (Glossy, sharp, white: reflectance 1 at every
    angle, Mitsuba's conductor of material none); "black" = matte black (a mirror's caps); a number = clear
    glass of that IOR in air (Mitsuba's smooth dielectric)."""
    mat = bpy.data.materials.new(str(role))
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    if role == "mirror":
        bsdf = nodes.new("ShaderNodeBsdfGlossy")
        bsdf.distribution = "SHARP"
        bsdf.inputs["Color"].default_value = (1, 1, 1, 1)
    elif role == "black":
        bsdf = nodes.new("ShaderNodeBsdfDiffuse")
        bsdf.inputs["Color"].default_value = (0, 0, 0, 1)
    else:
        bsdf = nodes.new("ShaderNodeBsdfGlass")
        bsdf.distribution = "SHARP"
        bsdf.inputs["Color"].default_value = (1, 1, 1, 1)
        bsdf.inputs["IOR"].default_value = float(role)
    out = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    return mat


def raw(path, code):
    values = array.array(code)
    with open(path, "rb") as f:
        values.frombytes(f.read())
    return values


def triangles(name, part):
    """A mesh object from a part written by bench/cycles.py (bench/cycles_world.py's geometry): raw float32
    vertices, int32 triangles, and float32 vertex normals (smooth, set as custom normals) or none (flat)."""
    vertices, faces = raw(part["vertices"], "f"), raw(part["faces"], "i")
    nv, nf = len(vertices) // 3, len(faces) // 3
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(nv)
    mesh.vertices.foreach_set("co", vertices)
    mesh.loops.add(nf * 3)
    mesh.loops.foreach_set("vertex_index", faces)
    mesh.polygons.add(nf)
    mesh.polygons.foreach_set("loop_start", array.array("i", range(0, 3 * nf, 3)))
    mesh.polygons.foreach_set("loop_total", array.array("i", [3]) * nf)
    mesh.update()
    mesh.validate()
    if part.get("normals"):
        normals = raw(part["normals"], "f")
        mesh.polygons.foreach_set("use_smooth", array.array("b", [1]) * nf)
        mesh.use_auto_smooth = True                 # custom normals need it (Blender 3.x)
        mesh.normals_split_custom_set_from_vertices([normals[3 * i:3 * i + 3] for i in range(nv)])
    mesh.materials.append(role_material(part["role"]))
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


if "world" in job:
    # -- a world: the print as one quad (corners and Blender uv from bench/cycles_world.print_quad) ---------
    quad = job["world"]["print"]
    mesh = bpy.data.meshes.new("plane")
    mesh.from_pydata([tuple(c) for c in quad["corners"]], [], [(0, 1, 2, 3)])
    uv = mesh.uv_layers.new(name="uv")
    for loop in mesh.loops:
        uv.data[loop.index].uv = tuple(quad["uv"][loop.vertex_index])
    mesh.materials.append(print_material())
    scene.collection.objects.link(bpy.data.objects.new("plane", mesh))
    for k, part in enumerate(job["world"]["parts"]):
        triangles(f"part_{k}", part)
else:
    s = cfg["plane_scale"]
    corners = [(-s, -s, 0.0), (s, -s, 0.0), (s, s, 0.0), (-s, s, 0.0)]
    mesh = bpy.data.meshes.new("plane")
    mesh.from_pydata(corners, [], [(0, 1, 2, 3)])
    uv = mesh.uv_layers.new(name="uv")
    for loop in mesh.loops:
        x, y, _ = corners[loop.vertex_index]
        # Mitsuba: u = (x/s+1)/2 across the columns, texture row = v = (y/s+1)/2 from the top row. Blender's v
        # counts rows from the bottom of the image, so Blender v = 1 − (y/s+1)/2.
        uv.data[loop.index].uv = ((x / s + 1) / 2, 1 - (y / s + 1) / 2)
    plane = bpy.data.objects.new("plane", mesh)
    scene.collection.objects.link(plane)

    mesh.materials.append(print_material())

    # -- the glass sphere: a smooth dielectric, interior IOR, exterior air ---------------------------------
    # Cycles has no analytic sphere for meshes: a fine UV sphere, smooth-shaded (its facets' sagitta is
    # r·(1 − cos(π/segments)), far below a pixel).
    segments = job.get("sphere_segments", 384)
    bpy.ops.mesh.primitive_uv_sphere_add(segments=segments, ring_count=segments // 2,
                                         radius=cfg["sphere_radius"], location=cfg["sphere_center"])
    sphere = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    glass_mat = bpy.data.materials.new("glass")
    glass_mat.use_nodes = True
    gnodes = glass_mat.node_tree.nodes
    gnodes.clear()
    glass = gnodes.new("ShaderNodeBsdfGlass")
    glass.distribution = "SHARP"
    glass.inputs["Color"].default_value = (1, 1, 1, 1)
    glass.inputs["IOR"].default_value = cfg["sphere_ior"]
    gout = gnodes.new("ShaderNodeOutputMaterial")
    glass_mat.node_tree.links.new(glass.outputs["BSDF"], gout.inputs["Surface"])
    sphere.data.materials.append(glass_mat)

# -- the world: Mitsuba's constant emitter, radiance 1 in every direction -------------------------------
world = bpy.data.worlds.new("world")
world.use_nodes = True
bg = world.node_tree.nodes["Background"]
bg.inputs["Color"].default_value = (1, 1, 1, 1)
bg.inputs["Strength"].default_value = 1.0
scene.world = world

# -- Cycles: unbiased path tracing like Mitsuba's prb (max_depth 6 = 5 bounces), no clamping/blur -------
scene.render.engine = "CYCLES"
cy = scene.cycles
cy.device = "CPU"
cy.samples = job["spp"]
cy.seed = job["seed"]
cy.use_adaptive_sampling = False
cy.use_denoising = False
cy.max_bounces = cy.diffuse_bounces = cy.glossy_bounces = cy.transmission_bounces = 5
cy.transparent_max_bounces = 5
cy.caustics_reflective = cy.caustics_refractive = True
cy.blur_glossy = 0.0
cy.sample_clamp_direct = cy.sample_clamp_indirect = 0.0
cy.pixel_filter_type = "GAUSSIAN"
cy.filter_width = job.get("filter_width", 2.0)   # 2 px: the blur of Mitsuba's hdrfilm Gaussian (σ 0.5 px), fitted on edges
scene.render.threads_mode = "FIXED"
scene.render.threads = job.get("threads", 2)
scene.render.resolution_x, scene.render.resolution_y = width, height
scene.render.resolution_percentage = 100
scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
scene.render.film_transparent = False
scene.view_settings.view_transform = "Standard"
scene.view_settings.look = "None"
scene.view_settings.exposure, scene.view_settings.gamma = 0.0, 1.0
scene.render.image_settings.file_format = "OPEN_EXR"
scene.render.image_settings.color_depth = "32"
scene.render.image_settings.exr_codec = "NONE"
scene.render.filepath = job["exr"]
bpy.ops.render.render(write_still=True)

# -- the linear image out: RGB float32, rows top to bottom ---------------------------------------------
result = bpy.data.images.load(job["exr"])
flat = array.array("f", [0.0]) * (width * height * 4)
result.pixels.foreach_get(flat)
rgb = array.array("f", [0.0]) * (width * height * 3)
for row in range(height):
    src, dst = (height - 1 - row) * width * 4, row * width * 3
    for i in range(3):
        rgb[dst + i:dst + width * 3:3] = flat[src + i:src + width * 4:4]
with open(job["out"], "wb") as f:
    rgb.tofile(f)
print("CYCLES_DONE", width, height)
