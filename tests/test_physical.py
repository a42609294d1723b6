"""A real setup in millimetres maps onto the scene config and back; the tutorial's scene is its default."""
import json
import math

import pytest

from predistort.physical import MATERIALS, PLANE_MARGIN, PhysicalSetup, fov_from_lens
from predistort.scene import DEFAULT, SceneConfig


def test_the_default_setup_is_the_tutorials_scene():
    assert PhysicalSetup().to_scene() == DEFAULT
    assert PhysicalSetup.from_scene(DEFAULT) == PhysicalSetup()
    # The tutorial's scene states no units: its file and dict stay as they were (probe cache keys too).
    assert "units_mm" not in DEFAULT.to_dict() and DEFAULT.units_mm == 100.0
    setup = PhysicalSetup()
    assert (setup.ball_diameter_mm, setup.print_distance_mm, setup.camera_distance_mm) == (90.0, 100.0, 100.0)
    assert setup.print_size_mm == pytest.approx(240.0)               # the tutorial's 2.4-unit plane


def test_millimetres_round_trip_through_a_scene_file(tmp_path):
    setup = PhysicalSetup(ball_diameter_mm=80.0, ior=MATERIALS["crown glass (1.52)"], print_distance_mm=215.0,
                          camera_distance_mm=130.0, fov_deg=fov_from_lens(26.0), resolution=64)
    config = setup.to_scene()
    path = tmp_path / "scene.json"
    config.save(path)
    loaded = SceneConfig.load(path)
    assert json.loads(path.read_text())["units_mm"] == pytest.approx(80.0 / 0.9)
    assert loaded == config
    back = PhysicalSetup.from_scene(loaded)
    for key, value in setup.to_dict().items():
        assert getattr(back, key) == pytest.approx(value, rel=1e-9), key
    # The scene's geometry, in millimetres, is what was measured.
    u = loaded.units_mm
    assert 2 * loaded.sphere_radius * u == pytest.approx(80.0)
    assert -loaded.sphere_center[2] * u == pytest.approx(215.0)                         # print at z = 0
    assert (loaded.sphere_center[2] - loaded.camera_origin[2]) * u == pytest.approx(130.0)
    assert 2 * loaded.plane_scale * u == pytest.approx(setup.print_size_mm)
    # The print fills the camera's view at its distance, with the tutorial's margin.
    seen = -loaded.camera_origin[2] * math.tan(math.radians(loaded.fov) / 2)
    assert loaded.plane_scale == pytest.approx(PLANE_MARGIN * seen) and loaded.plane_scale > seen


def test_moving_the_print_keeps_the_camera_and_grows_the_print():
    near, far = PhysicalSetup(ior=1.5), PhysicalSetup(ior=1.5, print_distance_mm=200.0)
    a, b = near.to_scene(), far.to_scene()
    assert a.sphere_center[2] - a.camera_origin[2] == b.sphere_center[2] - b.camera_origin[2]   # ball as big
    assert far.print_size_mm / near.print_size_mm == pytest.approx(300 / 200)


def test_optics_and_lens_helpers():
    assert PhysicalSetup(ior=1.5).focal_distance_mm == pytest.approx(1.5 * 45 / (2 * 0.5))    # n r / 2(n-1)
    assert PhysicalSetup(ior=1.0).focal_distance_mm == math.inf
    assert fov_from_lens(12.0, 24.0) == pytest.approx(90.0)
    assert PhysicalSetup().print_dpi == pytest.approx(128 / (240 / 25.4))
    assert PhysicalSetup(ior=1.49).material() == "acrylic (1.49)" and PhysicalSetup(ior=1.7).material() == "IOR 1.7"
    assert "90 mm diameter" in PhysicalSetup().describe() and "240 × 240 mm" in PhysicalSetup().describe()


@pytest.mark.parametrize("changes, words", [
    ({"print_distance_mm": 40.0}, "print must be farther"),
    ({"camera_distance_mm": 45.0}, "camera must be farther"),
    ({"ior": 0.9}, "index of refraction"),
    ({"fov_deg": 0.5}, "field of view"),
    ({"ball_diameter_mm": float("nan")}, "finite number"),
])
def test_impossible_setups_are_refused(changes, words):
    with pytest.raises(ValueError, match=words):
        PhysicalSetup(**changes)


def test_an_off_axis_scene_has_no_setup():
    with pytest.raises(ValueError, match="not an on-axis setup"):
        PhysicalSetup.from_scene(DEFAULT.replace(camera_origin=(0.2, 0.0, -2.0)))
    with pytest.raises(ValueError, match="not an on-axis setup"):
        PhysicalSetup.from_scene(DEFAULT.replace(camera_up=(0.0, 1.0, 0.0)))
    with pytest.raises(ValueError, match="units_mm"):
        DEFAULT.replace(units_mm=0.0)
