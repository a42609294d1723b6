"""The scene's checks: what keeps a world from being rendered as intended, each sentence naming the field.

:func:`ball_problems` checks the tutorial's frame (one glass ball before the print in z = 0; its sentences name
the flat fields, ``sphere_radius``, ``camera_origin``, ...); :func:`world_problems` any other world (its
sentences name the world file's fields, ``camera.origin``, ``objects[0]``, ...). Both return a list of
sentences, empty when the scene is fine; :meth:`predistort.scene.SceneConfig.validate` raises them.
"""
import math

import numpy as np

from .objects import ObjectError


def ball_problems(config):
    """The tutorial frame's checks (their sentences name the flat fields)."""
    problems = []
    if not 1.0 <= config.plane_scale * config.units_mm <= 10_000.0:     # 0.01 to 100 at the default 100 mm a unit
        problems.append(f"plane_scale must be between {1 / config.units_mm:g} and {10_000 / config.units_mm:g} "
                        f"(1 mm to 10 m at {config.units_mm:g} mm a unit), got {config.plane_scale}")
    if not 1.0 <= config.sphere_ior <= 3.0:
        problems.append(f"sphere_ior must be between 1.0 (no refraction) and 3.0, got {config.sphere_ior}")
    centre, origin = np.array(config.sphere_center), np.array(config.camera_origin)
    if not config.sphere_radius > 0:
        problems.append(f"sphere_radius must be positive, got {config.sphere_radius}")
    elif np.linalg.norm(centre - origin) <= config.sphere_radius:
        problems.append(f"a sphere of radius {config.sphere_radius} would contain the camera")
    elif abs(centre[2]) <= config.sphere_radius:
        problems.append(f"a sphere of radius {config.sphere_radius} would cut through the textured plane")
    if not problems:
        problems += camera_problems(config)
    return problems


def camera_problems(config):
    """What keeps the camera from seeing the ball in front of the print (a list of sentences)."""
    origin, target, up = (np.array(v) for v in (config.camera_origin, config.camera_target, config.camera_up))
    centre = np.array(config.sphere_center)
    view = target - origin
    if not np.linalg.norm(view) > 1e-9:
        return ["camera_target must differ from camera_origin"]
    forward = view / np.linalg.norm(view)
    left = np.cross(up, forward)
    if not np.linalg.norm(left) > 1e-6 * max(np.linalg.norm(up), 1e-300):
        return ["camera_up must not be parallel to the viewing direction (camera_target - camera_origin)"]
    left /= np.linalg.norm(left)
    if origin[2] == 0 or np.sign(origin[2]) != np.sign(centre[2]):
        return [f"camera_origin {list(config.camera_origin)} is behind or on the print (z = 0): put it on the "
                f"ball's side (z of the same sign as sphere_center's, {centre[2]:g})"]
    if not forward[2] * -np.sign(origin[2]) > 0:
        return ["the camera looks away from the print: aim camera_target towards the plane z = 0"]
    # The ball's centre in the camera's tangent plane, and its apparent radius there.
    rel = centre - origin
    depth = rel @ forward
    if not depth > config.sphere_radius:
        return ["the ball is not in front of the camera: aim camera_target at the ball"]
    reach = config.sphere_radius / math.sqrt(max(rel @ rel - config.sphere_radius ** 2, 1e-300)) * \
        np.linalg.norm(rel) / depth                      # tan of the ball's angular radius, off-axis widened
    width, height = config.film_size
    tan_x = math.tan(math.radians(config.fov) / 2)
    x, y = abs(rel @ left) / depth, abs(rel @ np.cross(forward, left)) / depth
    if x - reach >= tan_x or y - reach >= tan_x * height / width:
        return ["the ball is outside the camera's field of view: aim camera_target at the ball, or widen fov"]
    return []


def in_view(config, points):
    """[N] bool: which world `points` [N, 3] the camera sees (in front of it, inside the film)."""
    origin, target, up = (np.array(v) for v in (config.camera_origin, config.camera_target, config.camera_up))
    forward = (target - origin) / np.linalg.norm(target - origin)
    left = np.cross(up, forward)
    left /= np.linalg.norm(left)
    rel = np.asarray(points, np.float64) - origin
    depth = rel @ forward
    tan_x = math.tan(math.radians(config.fov) / 2)
    width, height = config.film_size
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = np.abs(rel @ left) / depth, np.abs(rel @ np.cross(forward, left)) / depth
    return (depth > 0) & (x <= tan_x) & (y <= tan_x * height / width)


def world_problems(config):
    """A world's checks: every sentence names the field to change."""
    origin, target, up = (np.array(v) for v in (config.camera_origin, config.camera_target, config.camera_up))
    if not np.linalg.norm(target - origin) > 1e-9:
        return ["camera.target must differ from camera.origin"]
    if not np.linalg.norm(np.cross(up, target - origin)) > 1e-6 * np.linalg.norm(up):
        return ["camera.up must not be parallel to the viewing direction (camera.target - camera.origin)"]
    if not config.objects:
        return ["objects is empty: add the mirror or glass object the picture is seen through"]
    normal, centre = np.array(config.plane.normal), np.array(config.plane.center)
    side = (origin - centre) @ normal
    if not side > 0:
        return [f"camera.origin is behind the print: the print faces right × up = {np.round(normal, 3).tolist()}; "
                f"put the camera on that side, or swap print.up's sign"]
    scale = max(config.plane.size)
    for i, solid in enumerate(config.objects):
        name = f"objects[{i}] ({solid.shape})"
        try:
            solid.check(f"objects[{i}]", config.units_mm)
        except ObjectError as e:
            return [str(e)]
        if solid.contains(origin):
            return [f"camera.origin is inside {name}: move the camera out of the object"]
        points = solid.points()
        if np.any((points - centre) @ normal < -1e-4 * scale):
            return [f"{name} reaches through the print: move it to the camera's side of the print"]
    if not any(in_view(config, solid.points()).any() for solid in config.objects):
        return ["the camera sees none of the objects: aim camera.target at them, or widen camera.fov"]
    if config.target is not None:
        t = config.target
        corners = np.array(t.center) + np.array([[sx * t.size[0] / 2, sy * t.size[1] / 2] for sx in (-1, 1)
                                                 for sy in (-1, 1)]) @ np.array([t.right, t.up])
        if not in_view(config, np.concatenate([corners, [t.center]])).any():
            return ["the camera cannot see the target: move target.center into the camera's view, or aim "
                    "camera.target at it"]
    return []

# -- files -------------------------------------------------------------------------------------------------
