"""A film that is not the texture's square grid: off-axis cameras, 4:3 films, textures finer than the film.
The light transport is then rectangular (film pixels × texels); the probe, the instant solve, the
generalising layer and the pipeline work on it, and score against the ball-free view."""
import pytest
import torch

from common import picture_textures
from predistort import probe, solve, target
from predistort.layers import instant_model
from predistort.physical import PhysicalSetup
from predistort.pipeline import predistort
from predistort.render import Renderer
from predistort.scene import DEFAULT

# Glass at the advised distance, the camera 30 mm sideways and 20 mm up, aimed at the ball, a 4:3 film.
OFF_AXIS = PhysicalSetup(ior=1.5, print_distance_mm=225.0, camera_x_mm=30.0, camera_y_mm=20.0, aim_z_mm=225.0,
                         film_width=48, film_height=36, resolution=48).to_scene()
FINE = DEFAULT.replace(resolution=64, film_width=32, film_height=32)     # 2×2 texels per pixel


@pytest.fixture(scope="module")
def transports():
    return {name: probe.probe(config) for name, config in (("off_axis", OFF_AXIS), ("fine", FINE))}


@pytest.mark.parametrize("name", ["off_axis", "fine"])
def test_the_rectangular_transport_predicts_the_render(transports, name):
    transport = transports[name]
    config = transport.config
    width, height = config.film_size
    assert transport.shape == (width * height, config.resolution ** 2) and transport.A.shape == transport.shape
    renderer = Renderer(config)
    picture = picture_textures(config.resolution)[0]
    predicted = transport.render(picture)
    rendered = renderer.render(picture, spp=256, seed=0).cpu()
    noise = (renderer.render(picture, spp=256, seed=1).cpu() - rendered).abs().mean().item()
    assert predicted.shape == (height, width, 3)
    # Within the renders' own noise (0.005 / 0.006 measured); a transposed or shifted film would be ~0.1 off.
    assert (predicted - rendered).abs().mean().item() < 1.5 * noise
    assert (predicted.flip(1) - rendered).abs().mean().item() > 5 * noise


def test_the_instant_solve_corrects_an_off_axis_4_3_camera_against_the_ball_free_view(transports):
    transport = transports["off_axis"]
    renderer = Renderer(OFF_AXIS)
    model = instant_model(transport)
    ratios = []
    for picture in picture_textures(48)[:2]:
        result = predistort(renderer, picture, model, spp=64)
        assert result.metrics["target"] == "ball-free view"
        assert result.goal.shape == (36, 48, 3) and result.predistorted.shape == (48, 48, 3)
        assert torch.equal(result.goal, target.ball_free_view(picture, OFF_AXIS))
        ratios.append(result.metrics["l1_ratio"])
        # The model is the instant solve, to float rounding.
        solved = solve.solve(result.goal, transport, start=picture)
        assert (solved - result.predistorted).abs().max() < 1e-4
    # 0.24 and 0.40 measured at 48² (the tutorial's scene: ~0.3); doing nothing is 1.
    assert max(ratios) < 0.5, ratios


def models_of(transport):
    """One model of each type made for `transport`'s scene, its weights off their initial values: the instant
    solve, a generalising layer whose scalars were trained (nudged here), a tutorial layer."""
    from predistort.layers import TutorialLayer, UnrolledInverse
    config = transport.config
    trained = UnrolledInverse.from_transport(transport, depth=4)
    tutorial = TutorialLayer(config.resolution)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in (trained.log_step, trained.log_delta, trained.momentum, *tutorial.parameters()):
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    trained.info["recipe"] = {"method": "unrolled", "iterations": 2}
    tutorial.info = {"scene": config.to_dict(), "recipe": {"method": "tutorial", "iterations": 2}}
    return {"solve": instant_model(transport), "unrolled": trained, "tutorial": tutorial}


@pytest.mark.parametrize("kind", ["solve", "unrolled", "tutorial"])
@pytest.mark.parametrize("name", ["off_axis", "fine"])
def test_a_model_of_an_off_axis_or_rectangular_scene_saves_and_loads_back_bit_identical(transports, tmp_path, name,
                                                                                          kind):
    """Every model type made for an off-axis 4:3 scene, or for a texture finer than its film, saves and loads
    back as it was: the same tensors bit for bit, the same scene (config.json carries it, and
    weights.scene_of rebuilds it), the same texture out; saved again, the same bytes. A's rows are the film's
    pixels (48×36 here, not 48²): config.json records them."""
    import json
    from predistort import weights
    from predistort.layers import PredistortModel
    transport = transports[name]
    config = transport.config
    model = models_of(transport)[kind]
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["scene"] == config.to_dict()
    if kind != "tutorial":
        assert saved["pixels"] == (48 * 36 if name == "off_axis" else 32 * 32)
    loaded = PredistortModel.from_pretrained(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.info == model.info
    assert weights.scene_of(loaded) == config
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype and torch.equal(ours[key], theirs[key]), key
    picture = picture_textures(config.resolution)[0]
    with torch.no_grad():
        assert torch.equal(loaded(picture[None]), model(picture[None]))
    loaded.save_pretrained(tmp_path / "again")
    for file in ("model.safetensors", "config.json", "README.md"):
        assert (tmp_path / "again" / file).read_bytes() == (tmp_path / "m" / file).read_bytes(), file


def test_a_model_of_the_texture_grid_records_no_rows(tmp_path):
    """The film on the texture's grid: no rows recorded (config.json files without the field load as before)."""
    import json
    instant_model(probe.probe(DEFAULT.replace(resolution=16))).save_pretrained(tmp_path / "square")
    assert json.loads((tmp_path / "square" / "config.json").read_text()).get("pixels") is None


def null_fraction(transport, change):
    """The share of D·change (D = AᵀA1, the solver's metric) that lies outside the range of Aᵀ: 0 for a
    change the camera sees, ~0.5 for noise."""
    A = transport.A.to_dense().double()
    D = A.T @ (A @ torch.ones(A.shape[1], 1, dtype=torch.float64))
    v = D * change.reshape(-1, 3).double()
    z = torch.linalg.lstsq(A.T, v).solution
    return ((v - A.T @ z).norm() / v.norm()).item()


def test_texels_no_pixel_resolves_keep_the_pictures_own_detail(transports):
    """With 2×2 texels per pixel, the solve starts from the picture and moves only along what A sees: away
    from the bounds [0, 1] (which clip a step), its change has no part the camera cannot see."""
    transport = transports["fine"]
    picture = picture_textures(64)[0] * 0.5 + 0.25
    goal = transport.render(picture) * 0.9 + 0.05               # reachable without touching 0 or 1
    x = solve.solve(goal, transport, start=picture)
    assert ((x > 0) & (x < 1)).all()
    assert (x - picture).abs().mean() > 0.004                   # it did move (0.0096) ...
    assert null_fraction(transport, x - picture) < 1e-3         # ... only along what the film sees
    assert null_fraction(transport, torch.rand_like(picture) - 0.5) > 0.3
    assert torch.equal(x[~transport.seen], picture[~transport.seen])
    with pytest.raises(ValueError, match="pass the picture as start="):
        solve.solve(goal, transport)
