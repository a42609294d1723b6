"""bench/cycles.py's pure-Python parts, without Blender: the phone stage, the perturbed true setups, the
silhouette measurement. (Blender itself is not a test dependency: the renders are checked by
``python bench/cycles.py check``, bench/results/cycles.md.)"""
import dataclasses
import importlib.util
import io
import math

import numpy as np
import pytest
from PIL import Image

from common import REPO
from predistort.target import camera_frame

_spec = importlib.util.spec_from_file_location("bench_cycles", REPO / "bench" / "cycles.py")
cycles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cycles)


def decode(jpeg):
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float64)


def test_srgb_encoding_matches_the_standard():
    x = np.array([0.0, 0.0031308, 0.18, 0.5, 1.0, 2.0, -1.0])
    expected = [0.0, 0.0404500, 0.4613561, 0.7353570, 1.0, 1.0, 0.0]       # IEC 61966-2-1; clipped outside [0, 1]
    assert np.allclose(cycles.srgb_encode(x), expected, atol=1e-6)


def test_phone_makes_a_jpeg_of_the_film_with_exposure_and_noise():
    grey = np.full((48, 64, 3), 0.5, dtype=np.float32)
    jpeg = cycles.phone(grey, seed=3)
    assert jpeg[:2] == b"\xff\xd8" and Image.open(io.BytesIO(jpeg)).format == "JPEG"
    image = decode(jpeg)
    assert image.shape == (48, 64, 3)
    assert abs(image.mean() - 0.735357 * 255) < 2.0                     # linear 0.5 → sRGB 187.5
    assert 0.5 < image.std() < 10                                       # noisy, but only a little
    assert decode(cycles.phone(grey, exposure=0.7, seed=3)).mean() < image.mean() - 20
    assert cycles.phone(grey, seed=3) == jpeg and cycles.phone(grey, seed=4) != jpeg
    clean = decode(cycles.phone(grey, full_well=math.inf, read_noise=0.0))
    assert clean.std() < 0.6                                            # no noise: a flat grey
    bright = decode(cycles.phone(np.ones((16, 16, 3)), exposure=1.3, seed=0))
    assert bright.min() >= 250                                          # above 1.0 it clips to white


def test_exif_focal_length_of_the_lens():
    # A 4:3 picture 60° across: diagonal half-angle atan(tan 30° · 5/4), 43.27 mm / (2 · 0.7217) = 29.976 mm.
    assert cycles.focal_35mm(60.0, 960, 720) == pytest.approx(29.976, abs=1e-3)
    jpeg = cycles.phone(np.full((24, 32, 3), 0.5), focal_35mm_exif=29.976)
    assert Image.open(io.BytesIO(jpeg)).getexif().get_ifd(0x8769)[0xA405] == 30
    assert 0xA405 not in Image.open(io.BytesIO(cycles.phone(np.zeros((8, 8, 3))))).getexif().get_ifd(0x8769)


def test_perturbed_setups_stay_within_the_limits():
    nominal = cycles.nominal_scene(film=(96, 72), resolution=32)
    unit = nominal.units_mm
    rng = np.random.default_rng(0)
    limits = cycles.LIMITS
    for _ in range(20):
        true, p = cycles.perturb(nominal, rng)
        assert true.film_size == cycles.FILM and true.plane_scale == nominal.plane_scale
        assert true.units_mm == nominal.units_mm and true.sphere_radius == nominal.sphere_radius
        assert limits["camera_mm"] / 2 <= np.linalg.norm(p["camera_offset_mm"]) <= limits["camera_mm"] + 1e-9
        assert limits["ball_mm"] / 2 <= np.linalg.norm(p["ball_offset_mm"][:2]) <= limits["ball_mm"] + 1e-9
        assert limits["print_mm"] / 2 <= abs(p["print_distance_change_mm"]) <= limits["print_mm"]
        assert limits["ior"] / 2 <= abs(true.sphere_ior - nominal.sphere_ior) <= limits["ior"] + 1e-12
        assert limits["fov_deg"] / 2 <= abs(true.fov - nominal.fov) <= limits["fov_deg"] + 1e-9
        assert abs(p["exposure"] - 1) <= limits["exposure"]
        # The stated offsets are the scene's: the ball's distance from the print (z = 0) is the print distance.
        assert p["print_distance_mm"] == pytest.approx(225.0 + p["print_distance_change_mm"], abs=1e-3)
        assert -true.sphere_center[2] * unit == pytest.approx(p["print_distance_mm"], abs=1e-3)
        for field, key in (("camera_origin", "camera_offset_mm"), ("sphere_center", "ball_offset_mm")):
            moved = (np.array(getattr(true, field)) - np.array(getattr(nominal, field))) * unit
            assert np.allclose(moved, p[key], atol=1e-3)
        # The camera's frame (aim and roll together) turned by the stated angle.
        frames = [np.stack(camera_frame(c)[1:]) for c in (nominal, true)]
        relative = frames[1].T @ frames[0]
        turn = math.degrees(math.acos(np.clip((np.trace(relative) - 1) / 2, -1, 1)))
        assert turn == pytest.approx(p["camera_rotation_deg"], abs=1e-3)
        assert limits["camera_deg"] / 2 <= turn <= limits["camera_deg"] + 1e-6


def test_silhouette_of_an_on_axis_ball_is_its_tangent_cone():
    config = cycles.nominal_scene(film=(96, 72), resolution=32)
    cx, cy, radius = cycles.silhouette(cycles.analytic_silhouette(config))
    distance = config.sphere_center[2] - config.camera_origin[2]
    focal = 48 / math.tan(math.radians(config.fov) / 2)                 # px: half width / tan(half fov)
    expected = focal * math.tan(math.asin(config.sphere_radius / distance))
    assert abs(cx - 48) < 0.05 and abs(cy - 36) < 0.05
    assert abs(radius - expected) < 0.3


def test_blender_missing_says_how_to_install_it(monkeypatch):
    monkeypatch.delenv("BLENDER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="apt-get install -y blender"):
        cycles.blender_path()


# -- a world as meshes for Cycles (bench/cycles_world.py) ---------------------------------------------------
_wspec = importlib.util.spec_from_file_location("bench_cycles_world", REPO / "bench" / "cycles_world.py")
cycles_world = importlib.util.module_from_spec(_wspec)
_wspec.loader.exec_module(cycles_world)


def _outward(part):
    """The fraction of a part's triangles whose winding (v1 − v0) × (v2 − v0) agrees with its vertex normals."""
    v, f, n = part["vertices"], part["faces"], part["normals"]
    face = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return float((np.einsum("ij,ij->i", face, n[f].sum(1)) > 0).mean())


def test_the_print_quad_has_mitsubas_texture_coordinates():
    # Mitsuba's rectangle: local (x, y) in [−1, 1]², uv = ((x + 1)/2, (y + 1)/2), bitmap row = v from the top.
    # Blender's image rows run from the bottom: its v at a corner must be 1 − Mitsuba's v there.
    from predistort.backend import init
    from predistort.scene import SceneConfig
    init()
    world = SceneConfig.load(REPO / "scenes" / "cylinder_mirror.json")
    world = world.replace(plane=dataclasses.replace(world.plane, right=(0.8, 0.6, 0.0), up=(-0.6, 0.8, 0.0)))
    corners, uv = cycles_world.print_quad(world)
    m = np.array(world.plane.to_world().matrix, dtype=np.float64)
    for corner, (bu, bv) in zip(corners, uv):
        local = np.linalg.solve(m, [*corner, 1.0])[:3]
        assert np.allclose(np.abs(local), [1, 1, 0], atol=1e-6)          # Mitsuba keeps float32
        assert (bu, bv) == pytest.approx(((local[0] + 1) / 2, 1 - (local[1] + 1) / 2), abs=1e-6)
    # Row 0 lies on the +up edge, column 0 on the −right edge: Blender (0, 1) is the −right, +up corner.
    top_left = corners[np.argmin(np.hypot(*(uv - [0, 1]).T))]
    rel = top_left - world.plane.center
    assert rel @ world.plane.right < 0 < rel @ world.plane.up


def test_a_mirror_cylinder_is_its_side_and_two_black_caps():
    from predistort.objects import Solid
    solid = Solid("cylinder", "mirror", base=(5.0, -3.0, 0.0), axis=(0.0, 0.3, 1.0), radius=30.0, height=100.0)
    side, bottom, top = cycles_world.solid_parts(solid)
    assert (side["role"], bottom["role"], top["role"]) == ("mirror", "black", "black")
    axis = np.array(solid.axis) / np.linalg.norm(solid.axis)
    rel = side["vertices"] - solid.base
    along = rel @ axis
    across = np.linalg.norm(rel - along[:, None] * axis, axis=1)
    assert np.allclose(across, 30.0) and set(np.round(along, 9)) == {0.0, 100.0}
    radial = (rel - along[:, None] * axis) / across[:, None]
    assert np.allclose(side["normals"], radial)                             # the exact normals, outward
    assert _outward(side) == 1.0
    sagitta = 30.0 * (1 - math.cos(math.pi / cycles_world.CYLINDER_SEGMENTS))
    assert sagitta < 2e-4                                                   # mm: far below a pixel
    for cap, sign, level in ((bottom, -1, 0.0), (top, 1, 100.0)):
        v, f = cap["vertices"], cap["faces"]
        assert cap["normals"] is None and np.allclose((v - solid.base) @ axis, level)
        face = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        assert np.all(face @ axis * sign > 0)                               # each cap faces out of the solid
        assert np.linalg.norm(v - v[0], axis=1).max() == pytest.approx(30.0)


def test_glass_is_glass_all_round_and_spheres_and_cones_face_out():
    from predistort.objects import Solid
    rod = cycles_world.solid_parts(Solid("cylinder", 1.33, base=(0, 0, 0), axis=(0, 0, 1), radius=10, height=50))
    assert [p["role"] for p in rod] == [1.33, 1.33, 1.33]
    (sphere,) = cycles_world.solid_parts(Solid("sphere", 1.5, center=(1.0, 2.0, 40.0), radius=30.0))
    assert sphere["role"] == 1.5 and _outward(sphere) == 1.0
    assert np.allclose(np.linalg.norm(sphere["vertices"] - (1.0, 2.0, 40.0), axis=1), 30.0)
    cone = cycles_world.solid_parts(Solid("cone", "mirror", base=(0, 0, 0), axis=(0, 0, 1), radius=30, height=80))
    assert [p["role"] for p in cone] == ["mirror", "black"] and _outward(cone[0]) == 1.0


def test_the_local_tone_curve_brightens_dark_surroundings_and_keeps_white():
    flat = np.full((60, 80, 3), 0.7, np.float32)
    assert np.allclose(cycles.local_tone_gain(flat), 1.0, atol=1e-5)      # one brightness: no change
    half = np.full((300, 1200, 3), 0.8, np.float32)
    half[:, :600] *= 0.25                                               # the left half 4× darker
    gain = cycles.local_tone_gain(half, strength=0.3, blur=0.02)
    assert gain.shape == (300, 1200)
    assert gain[:, 900:].mean() == pytest.approx(1.0, abs=0.01)         # the bright side kept
    assert gain[:, 100:300].mean() == pytest.approx(4 ** 0.3, rel=0.01)  # far from the edge: (1/4)^−0.3 = 1.52
    row = gain[150]
    assert np.all(np.diff(row[300:900]) <= 1e-6) and row[500] > row[700]   # a smooth ramp across the edge
    # Local, not global: the same radiance (0.2) gets another gain in dark and in bright surroundings.
    spot = half.copy()
    spot[140:160, 1000:1020] = 0.2
    assert cycles.local_tone_gain(spot)[150, 1010] < cycles.local_tone_gain(spot)[150, 200]
