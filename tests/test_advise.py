"""The advisor, the correctability map and their command line, at 32² (real probes, real solves)."""
import json

import pytest
import torch
from PIL import Image

from common import REPO, run_python
from predistort.advise import GRID_RADII, SEARCH_PROBE, TOLERANCE, advise, fixed_pictures, predict
from predistort.correctability import SHARING_LIMIT, correctability, sharing_map, texel_sharing
from predistort.physical import PhysicalSetup
from predistort.scene import SceneConfig
from predistort.solve import probe

RES = 32


@pytest.fixture(scope="module")
def no_glass():
    """A ball of IOR 1.0 (it bends nothing) and its search probe."""
    setup = PhysicalSetup(ior=1.0, resolution=RES)
    return setup, probe(setup.to_scene(), **SEARCH_PROBE)


@pytest.fixture(scope="module")
def glass_advice():
    return advise(PhysicalSetup(ior=1.5, resolution=RES), grid_points=4, refine_steps=1)


def test_a_ball_that_bends_nothing_keeps_the_print_where_it_is(no_glass, tmp_path):
    setup, transport = no_glass
    # Known answer 1: the camera sees the print as printed (not mirrored or flipped) through such a ball.
    pictures = fixed_pictures(RES)
    seen = transport.render(pictures)
    assert (seen - pictures).abs().mean() < 0.5 * (seen - pictures.flip(2)).abs().mean()
    assert (seen - pictures).abs().mean() < 0.5 * (seen - pictures.flip(1)).abs().mean()
    # Known answer 2: every distance predicts the same, so the advisor keeps the current one.
    advice = advise(setup, grid_points=3, refine_steps=2)
    ratios = [r for _, r in advice.curve]
    assert len(ratios) == 3 + 1 + 2 and max(ratios) - min(ratios) < TOLERANCE      # grid, current, refinement
    assert not advice.moved and advice.best == setup and "Keep the print where it is" in advice.markdown()
    # Its scene file loads, and is the setup's scene.
    path = advice.save_scene(tmp_path / "scene.json")
    assert SceneConfig.load(path) == setup.to_scene()
    assert "_comment" in json.loads(path.read_text())


def test_glass_moves_the_print_away_from_the_balls_focus(glass_advice):
    advice = glass_advice
    assert advice.moved and advice.best.print_distance_mm > advice.setup.print_distance_mm
    assert advice.best_ratio < advice.current_ratio - TOLERANCE
    assert advice.best_ratio <= min(r for _, r in advice.curve) + TOLERANCE
    assert dict(advice.curve)[advice.best.print_distance_mm] == advice.best_ratio
    assert advice.probes == len(advice.curve) <= 4 + 1 + 1
    assert advice.best.camera_distance_mm == advice.setup.camera_distance_mm      # the camera stays
    assert "Move the print from 100 mm" in advice.markdown()
    image = advice.plot()
    assert isinstance(image, Image.Image) and image.width > 200
    data = advice.to_dict()
    assert json.loads(json.dumps(data))["best"]["print_distance_mm"] == advice.best.print_distance_mm


def test_a_largest_print_bounds_the_search():
    """Unbounded, the search goes out to prints over 600 mm wide; bounded at 300 mm, the grid's two distances
    give prints of at most 300 mm (the farther at the bound, to the whole millimetre it is rounded to), and the
    advice is one of the distances probed."""
    setup = PhysicalSetup(ior=1.5, resolution=RES)
    farthest = setup.replace(print_distance_mm=GRID_RADII[1] * setup.ball_diameter_mm / 2)
    assert farthest.print_size_mm > 600.0                                  # the bound has something to bound
    advice = advise(setup, max_print_mm=300.0, grid_points=2, refine_steps=0)
    probed = dict(advice.curve)
    searched = sorted(d for d in probed if d != setup.print_distance_mm)
    assert len(searched) == 2 and len(probed) == 3                          # the grid, and the current distance
    sizes = [setup.replace(print_distance_mm=d).print_size_mm for d in searched]
    assert sizes[-1] <= 300.0 + 1.0 and sizes[-1] > 298.0, sizes
    assert advice.best.print_distance_mm in probed


def test_the_prediction_is_a_ratio_per_picture(no_glass):
    _, transport = no_glass
    prediction = predict(transport)
    assert len(prediction.ratios) == 8 and 0 < prediction.ratio < 1
    assert prediction.error_after.shape == (RES, RES) and prediction.error_before.shape == (RES, RES)
    assert prediction.error_after.mean() < prediction.error_before.mean()


def test_the_correctability_map_says_what_to_change(no_glass, glass_advice):
    _, transport = no_glass
    image, sentence = correctability(transport)
    assert isinstance(image, Image.Image) and image.width > 100
    assert "hardly bends light" in sentence
    # Without glass every pixel has a texel of its own.
    assert 0.7 < texel_sharing(transport) < 1.5
    # Glass near its focus: many pixels share a texel, and the sentence names the advised distance.
    glass = glass_advice.setup
    transport = probe(glass.to_scene(), **SEARCH_PROBE)
    assert texel_sharing(transport) >= SHARING_LIMIT
    assert sharing_map(transport).shape == (RES, RES)
    background = torch.rand(RES, RES, 3).numpy()
    image, sentence = correctability(transport, background=background, advice=glass_advice)
    assert "share each texel" in sentence and f"{glass_advice.best.print_distance_mm:g} mm" in sentence
    with pytest.raises(ValueError, match="another setup"):
        correctability(probe(glass.replace(print_distance_mm=150.0).to_scene(), **SEARCH_PROBE),
                       advice=glass_advice)


def test_cli_advise_then_apply_then_print(tmp_path):
    scene = tmp_path / "advised.json"
    proc = run_python(["-m", "predistort", "advise", "--ior", "1.0", "--diameter-mm", "60",
                       "--camera-distance-mm", "80", "--print-distance-mm", "90", "--resolution", str(RES),
                       "--grid", "2", "--out", str(scene), "--plot", str(tmp_path / "curve.png"),
                       "--map", str(tmp_path / "map.png"), "--json", str(tmp_path / "advice.json")],
                      env={"PREDISTORT_CACHE": str(tmp_path / "cache")}, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Keep the print where it is" in proc.stdout and "hardly bends light" in proc.stdout
    setup = PhysicalSetup.from_scene(SceneConfig.load(scene))
    assert (setup.ball_diameter_mm, setup.camera_distance_mm, setup.print_distance_mm) == (60.0, 80.0, 90.0)
    assert Image.open(tmp_path / "curve.png").width > 200 and Image.open(tmp_path / "map.png").width > 100
    assert json.loads((tmp_path / "advice.json").read_text())["moved"] is False

    out = tmp_path / "applied"
    proc = run_python(["-m", "predistort", "apply", "--method", "solve", "--scene", str(scene), "--texture",
                       str(REPO / "examples" / "checker.png"), "--fit", "crop", "--spp", "4", "--out-dir", str(out),
                       "--no-stand-map"],
                      env={"PREDISTORT_CACHE": str(tmp_path / "cache")}, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["l1_final"] > 0

    printed = tmp_path / "print"
    proc = run_python(["-m", "predistort", "print", "--scene", str(scene), "--texture",
                       str(out / "predistorted.png"), "--out-dir", str(printed)], timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    png = Image.open(printed / "print.png")
    size_mm = png.width / png.info["dpi"][0] * 25.4
    assert size_mm == pytest.approx(setup.print_size_mm, rel=1e-3)
    assert (printed / "print.pdf").read_bytes().startswith(b"%PDF")


def test_cli_advise_refuses_an_impossible_setup(tmp_path):
    proc = run_python(["-m", "predistort", "advise", "--print-distance-mm", "30", "--out", str(tmp_path / "x.json")])
    assert proc.returncode == 2 and "print must be farther" in proc.stderr
    assert not (tmp_path / "x.json").exists()
