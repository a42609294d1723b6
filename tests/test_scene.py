"""The scene config: its defaults are the tutorial's scene, it validates, and the film follows the texture."""
import json

import numpy as np
import pytest
import torch

from common import REPO, picture_paths, picture_textures
from predistort.render import Renderer
from predistort.scene import DEFAULT, DEFAULT_SCENE, TEXTURE_KEY, SceneConfig


def test_defaults_are_the_tutorial_numbers():
    # Values copied from the tutorial's scene dict (reference text, "Scene construction").
    tutorial = dict(resolution=128, camera_origin=(0, 0, -2), camera_target=(0, 0, 0), camera_up=(0, -1, 0), fov=60,
                    plane_scale=1.2, sphere_center=(0, 0, -1), sphere_radius=0.45, sphere_ior=1.06, integrator="prb")
    for config in (DEFAULT, SceneConfig()):
        for key, value in tutorial.items():
            assert getattr(config, key) == (tuple(map(float, value)) if isinstance(value, tuple) else value), key
    assert DEFAULT_SCENE == REPO / "scenes" / "tutorial.json"
    assert SceneConfig.load() == SceneConfig()


def test_default_scene_renders_exactly_like_the_tutorials_own_scene():
    """Build the scene with the tutorial's literal code and compare renders of the same texture and seed."""
    import mitsuba as mi
    renderer = Renderer(DEFAULT)
    from mitsuba.scalar_rgb import Transform4f as T
    filenames = [str(p) for p in picture_paths()]
    scene = mi.load_dict({
        'type': 'scene', 'integrator': {'type': 'prb'},
        'sensor': {'type': 'perspective', 'to_world': T().look_at(origin=(0, 0, -2), target=(0, 0, 0), up=(0, -1, 0)),
                   'fov': 60, 'film': {'type': 'hdrfilm', 'width': 128, 'height': 128}},
        'textured_plane': {'type': 'rectangle', 'to_world': T().scale(1.2),
                           'bsdf': {'type': 'twosided', 'nested': {'type': 'diffuse', 'reflectance': {
                               'type': 'bitmap', 'filename': filenames[0],
                               # Mitsuba >= 3.6 stores an 8-bit PNG as uint8, which a float texture cannot be
                               # written into; 'variant' keeps the float storage the tutorial's code assumes.
                               'format': 'variant'}}}},
        'glass_sphere': {'type': 'sphere', 'to_world': T().translate([0, 0, -1]).scale(0.45),
                         'bsdf': {'type': 'dielectric', 'int_ior': 1.06}},
        'light': {'type': 'constant'}})
    params = mi.traverse(scene)
    texture = picture_textures()[1]
    params[TEXTURE_KEY] = mi.TensorXf(texture)
    params.update()
    reference = torch.from_numpy(np.array(mi.render(scene, params, spp=16, seed=7)))
    ours = renderer.render(texture, spp=16, seed=7)
    assert ours.shape == (128, 128, 3)
    # Equal up to float rounding (kernels compiled in another order round differently: <1e-6 measured);
    # any difference in geometry, camera, light or texture mapping moves pixels by ~0.01-0.5.
    assert torch.allclose(ours, reference, rtol=0, atol=1e-5), (ours - reference).abs().max()
    # ... and the sphere really distorts: the render is not the texture.
    assert (ours - texture).abs().mean() > 0.05


@pytest.mark.parametrize("changes, words", [
    (dict(resolution=4), "resolution must be a whole number of pixels from 8 to 4096"),
    (dict(resolution=2048), "film_width and film_height must be stated for a texture above 1024"),
    (dict(film_width=0, film_height=96), "film_width must be a whole number of pixels from 8 to 1024, got 0"),
    (dict(film_width=2048, film_height=96), "film_width must be a whole number of pixels from 8 to 1024, got 2048"),
    (dict(film_width=96, film_height=12.5), "film_height must be a whole number"),
    (dict(camera_origin=(0, 0, 2)), "camera_origin [0.0, 0.0, 2.0] is behind or on the print"),
    (dict(camera_origin=(0, 0, -1.2)), "would contain the camera"),
    (dict(camera_target=(3, 0, 0)), "the ball is outside the camera's field of view"),
    (dict(camera_target=(0, 0, -3)), "the camera looks away from the print"),
    (dict(camera_target=(0, 0, -2)), "camera_target must differ from camera_origin"),
    (dict(camera_up=(0, 0, 1)), "camera_up must not be parallel"),
    (dict(resolution=100000), "resolution"),
    (dict(sphere_radius=1.5), "would contain the camera"),
    (dict(sphere_radius=-0.1), "sphere_radius must be positive"),
    (dict(sphere_ior=0.5), "sphere_ior must be between 1.0"),
    (dict(sphere_ior=float("nan")), "sphere_ior must be a finite number"),
    (dict(fov=0), "fov must be between"),
    (dict(integrator="path"), "differentiable"),
])
def test_invalid_scenes_are_refused_with_a_reason(changes, words):
    with pytest.raises(ValueError, match="Invalid scene") as err:
        DEFAULT.replace(**changes)
    assert words in str(err.value)


def test_unknown_keys_in_a_scene_file_are_refused(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({**DEFAULT.to_dict(), "sphere_colour": "red"}))
    with pytest.raises(ValueError, match="unknown field"):
        SceneConfig.load(path)


def test_scene_round_trips_through_json(tmp_path):
    scene = DEFAULT.replace(resolution=32, sphere_ior=1.2, sphere_radius=0.3)
    scene.save(tmp_path / "s.json")
    assert SceneConfig.load(tmp_path / "s.json") == scene


def test_film_follows_the_texture_resolution():
    renderer = Renderer(DEFAULT.replace(resolution=24))
    image = renderer.render(torch.full((24, 24, 3), 0.5), spp=2)
    assert image.shape == (24, 24, 3)
    with pytest.raises(ValueError, match=r"expected a texture of shape \[24, 24, 3\]"):
        renderer.render(torch.rand(32, 32, 3))


def test_a_stated_film_is_rendered_at_its_size_and_old_scenes_keep_their_dict():
    assert "film_width" not in DEFAULT.to_dict() and DEFAULT.film_size == (128, 128)
    # A film equal to the texture is the old scene (same dict, same cache key); any other film is written out.
    assert DEFAULT.replace(film_width=128, film_height=128) == DEFAULT
    scene = DEFAULT.replace(resolution=32, film_width=40, film_height=30)
    assert scene.film_size == (40, 30) and scene.to_dict()["film_width"] == 40
    assert SceneConfig.from_dict(scene.to_dict()) == scene
    # The camera may stand off the axis, aimed at the ball, as long as it sees it.
    off = scene.replace(camera_origin=(0.3, 0.2, -2.0), camera_target=(0.0, 0.0, -1.0))
    renderer = Renderer(off)
    image = renderer.render(picture_textures(32)[0], spp=4)
    assert image.shape == (30, 40, 3)
    with pytest.raises(ValueError, match=r"film is 40×30: expected a target image of shape \[30, 40, 3\]"):
        renderer.loss_and_grad(picture_textures(32)[0], torch.zeros(32, 32, 3))
    loss, grad = renderer.loss_and_grad(picture_textures(32)[0], image, spp=2)
    assert grad.shape == (32, 32, 3) and grad.abs().sum() > 0


def test_scene_parameters_change_the_render():
    texture = picture_textures(32)[0]
    base = Renderer(DEFAULT.replace(resolution=32)).render(texture, spp=8, seed=1)
    stronger = Renderer(DEFAULT.replace(resolution=32, sphere_ior=1.3)).render(texture, spp=8, seed=1)
    assert (base - stronger).abs().mean() > 0.01
