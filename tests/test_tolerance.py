"""The tolerance (predistort.tolerance): its validation, its views' scenes and targets, the robust solve
against the single one over camera offsets, and the predicted ratio against real renders (32², real probes)."""
import math

import pytest
import torch

from common import picture_paths, picture_textures
from predistort import probe_cache, tolerance as tol
from predistort.standmap import stand_map
from predistort.physical import PhysicalSetup
from predistort.solve import solve

RES = 32


@pytest.fixture(scope="module")
def glass():
    """Glass IOR 1.5, print at 225 mm (the advisor's distance for the tutorial's ball and camera), 32²."""
    return PhysicalSetup(ior=1.5, print_distance_mm=225, resolution=RES).to_scene()


@pytest.fixture(scope="module")
def pictures():
    return torch.stack(picture_textures(RES))


@pytest.mark.parametrize("field, value", [("camera_mm", -1.0), ("ball_mm", math.nan), ("print_mm", math.inf),
                                          ("ior", -0.01), ("camera_mm", 500.0), ("camera_mm", "3")])
def test_bad_tolerance_is_one_line_naming_the_field(field, value):
    with pytest.raises(ValueError) as e:
        tol.Tolerance(**{field: value})
    message = str(e.value)
    assert "\n" not in message and field in message and tol.Tolerance.FLAGS[field][0] in message


def test_views_cover_the_box(glass):
    assert tol.views(0) == [tol.View(weight=tol.NOMINAL_WEIGHT)]
    vs = tol.views(tol.Tolerance(camera_mm=3, ball_mm=1, print_mm=5, ior=0.01))
    cameras = [v.camera for v in vs]
    for axis in range(3):                      # both ends of every axis of the camera's box
        for s in (-3.0, 3.0):
            assert tuple(s * (i == axis) for i in range(3)) in cameras
    assert {v.print_mm for v in vs} >= {-5.0, 5.0} and {v.ior for v in vs} >= {-0.01, 0.01}
    assert {v.ball for v in vs} >= {(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)}
    # The scenes: the camera translated (same direction), the ball moved, the print farther, the IOR changed.
    u = glass.units_mm
    moved = tol.view_scene(glass, tol.View(camera=(3.0, 0.0, 2.0)))
    assert moved.camera_origin == pytest.approx((0.03, 0.0, glass.camera_origin[2] + 0.02))
    assert moved.camera_target == pytest.approx((0.03, 0.0, 0.0))
    farther = tol.view_scene(glass, tol.View(print_mm=5.0, ior=0.01, ball=(0.0, 1.0)))
    assert farther.sphere_center == pytest.approx((0.0, 1 / u, glass.sphere_center[2] - 5 / u))
    assert farther.camera_origin[2] == pytest.approx(glass.camera_origin[2] - 5 / u)
    assert farther.sphere_ior == pytest.approx(1.51) and farther.plane_scale == glass.plane_scale


@pytest.mark.parametrize("camera", [(12.0, 0.0, 0.0), (0.0, -12.0, 0.0), (0.0, 0.0, -20.0)])
def test_view_target_is_what_the_moved_camera_sees_beside_the_ball(glass, pictures, camera):
    """Beside the ball the camera sees the print directly: the moved camera's predicted render there is the
    nominal render as the moved camera sees it (view_target), and not as a camera moved the other way would.
    (The camera moves away or sideways: closer, the ball would cover the pixels compared.)"""
    view, opposite = tol.View(camera=camera), tol.View(camera=tuple(-c for c in camera))
    nominal = probe_cache.transport_for(glass)
    seen_moved = probe_cache.transport_for(tol.view_scene(glass, view)).render(pictures)
    seen_nominal = nominal.render(pictures)
    # Pixels whose rays pass the ball's silhouette (its angular radius from the nominal camera) by more than
    # the move changes it; not at the film's border (beyond it the moved camera sees past the print's edge).
    u = (torch.arange(RES) + 0.5) * 2 / RES - 1
    tan = math.tan(math.radians(glass.fov) / 2) * torch.sqrt(u[:, None] ** 2 + u[None, :] ** 2)
    ball = glass.sphere_radius / math.sqrt((glass.sphere_center[2] - glass.camera_origin[2]) ** 2 -
                                           glass.sphere_radius ** 2)
    mask = tan > ball + 0.06
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = False, False, False, False
    assert mask.sum() > 40

    def error(v):
        return float((seen_moved - tol.view_target(seen_nominal, glass, v)).abs()[:, mask].mean())
    assert error(view) < 0.6 * error(tol.View()) and error(view) < 0.6 * error(opposite), \
        (error(view), error(tol.View()), error(opposite))


def test_exact_tolerance_is_the_single_solve(glass, pictures):
    single = solve(pictures, probe_cache.transport_for(glass))
    assert torch.equal(tol.robust_solve(pictures, glass, 0), single)
    assert torch.equal(tol.robust_solve(pictures, glass, tol.Tolerance()), single)


def test_robust_solve_holds_over_the_box_where_the_single_view_does_not(glass, pictures):
    """Predicted over the offsets the tolerance is judged on (3 mm along each axis, 2 mm diagonally):
    the robust texture's worst is lower than the single view's and lower than the equally weighted stack's."""
    single = solve(pictures, probe_cache.transport_for(glass))
    stack, _ = tol.stack_for(glass, 3.0)
    robust = tol.solve(pictures, stack)
    plain = tol.solve(pictures, stack, reweight=False)
    judged = [(v, probe_cache.transport_for(tol.view_scene(glass, v))) for v in tol.box_views(3.0, 2.0)]

    def ratios(texture):
        return [tol.predicted_ratio(t, glass, v, texture, pictures) for v, t in judged]
    r_single, r_robust, r_plain = ratios(single), ratios(robust), ratios(plain)
    assert max(r_robust) < max(r_single) - 0.05, (r_robust, r_single)
    assert max(r_robust) <= max(r_plain) + 1e-3, (r_robust, r_plain)
    assert r_single[0] < r_robust[0] < 1          # the price: the exact spot is a little worse


def test_an_off_axis_4_3_camera_gets_its_tolerance_and_its_map_too(pictures):
    """What a calibration gives: the camera 30 mm right and 20 mm up, aimed at the ball, a 4:3 film. Each
    view aims at the ball-free view of its own camera; the robust texture holds over the box (predicted),
    and the stand map is made at that film's shape."""
    from predistort.target import ball_free_view
    res = 24
    config = PhysicalSetup(ior=1.5, print_distance_mm=225, camera_x_mm=30.0, camera_y_mm=20.0, aim_z_mm=225.0,
                           film_width=res, film_height=res * 3 // 4, resolution=res).to_scene()
    pictures = torch.stack(picture_textures(res))
    moved = tol.View(camera=(3.0, 0.0, 0.0))
    targets = tol.view_target(pictures[:1], config, moved)
    assert targets.shape == (1, res * 3 // 4, res, 3)
    assert torch.equal(targets[0], ball_free_view(pictures[0], tol.view_scene(config, moved)))
    single = tol.robust_solve(pictures, config, 0)
    robust = tol.robust_solve(pictures, config, 3.0)
    judged = [(v, probe_cache.transport_for(tol.view_scene(config, v))) for v in tol.box_views(3.0, 2.0)]

    def worst(texture):
        return max(tol.predicted_ratio(t, config, v, texture, pictures) for v, t in judged)
    assert worst(robust) < worst(single) - 0.03, (worst(robust), worst(single))
    m = stand_map(config, robust, pictures, box_mm=3.0, points=2)
    assert m.ratios.shape == (2, 2) and 0 < m.mean <= m.worst < 1
    assert tol.at_resolution(config, 16).film_size == (16, 12) and tol.at_resolution(config, res) == config


def test_predicted_ratio_agrees_with_renders(glass, pictures):
    """The stand map's prediction at a moved camera against real renders of that camera's scene (within 10 %)."""
    from predistort.images import l1
    from predistort.render import Renderer
    view = tol.View(camera=(3.0, 0.0, 0.0))
    texture = tol.robust_solve(pictures, glass, 3.0)
    scene = tol.view_scene(glass, view)
    predicted = tol.predicted_ratio(probe_cache.transport_for(scene), glass, view, texture, pictures)
    renderer, targets = Renderer(scene), tol.view_target(pictures, glass, view)
    rendered = sum(l1(renderer.render(x, spp=256, seed=5).cpu(), target) /
                   l1(renderer.render(p, spp=256, seed=5).cpu(), target)
                   for x, p, target in zip(texture, pictures, targets)) / len(pictures)
    assert abs(predicted - rendered) <= 0.1 * rendered, (predicted, rendered)


def test_stand_map(glass, pictures):
    texture = tol.robust_solve(pictures, glass, 3.0)
    m = stand_map(glass, texture, pictures, box_mm=3.0, points=3)
    assert m.ratios.shape == (3, 3) and m.offsets_mm == [-3.0, 0.0, 3.0]
    assert m.ratios[1, 1] == pytest.approx(tol.predicted_ratio(probe_cache.transport_for(glass), glass, tol.View(),
                                                               texture, pictures))
    s = m.summary()
    assert s["worst_predicted_ratio"] >= s["mean_predicted_ratio"] > 0 and s["box_mm"] == 3.0
    assert "±3 mm" in m.line() and m.image().size[0] > 100
    with pytest.raises(ValueError, match="box_mm"):
        stand_map(glass, texture, pictures, box_mm=-1)


def test_cli_apply_and_advise_with_a_tolerance(tmp_path):
    """`apply --tolerance-mm 3`: the robust solve (said), metrics.json's `tolerance` (the box, worst and mean
    predicted ratio, the map), stand_map.png and one line; the exact spot's texture is judged on ±3 mm too.
    A negative tolerance: one line naming the flag, status 2, nothing probed or written."""
    import json
    from common import REPO, run_python
    env = {"PREDISTORT_CACHE": str(tmp_path / "cache")}
    base = ["-m", "predistort", "apply", "--method", "solve", "--resolution", "24", "--spp", "8",
            "--texture", str(REPO / "examples" / "landscape.png")]
    summaries = {}
    for mm in ("3", "0"):
        out = tmp_path / mm
        result = run_python([*base, "--out-dir", str(out), "--tolerance-mm", mm], env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        t = json.loads((out / "metrics.json").read_text())["tolerance"]
        assert t["asked"]["camera_mm"] == float(mm) and t["box_mm"] == 3.0
        assert 0 < t["mean_predicted_ratio"] <= t["worst_predicted_ratio"] == max(max(row) for row in
                                                                                   [*t["map"], t["z"].values()])
        assert "Within ±3 mm of the camera's place" in result.stdout and (out / "stand_map.png").is_file()
        assert ("falls back to the robust solve" in result.stderr) == (mm == "3")
        summaries[mm] = t
    assert summaries["3"]["worst_predicted_ratio"] < summaries["0"]["worst_predicted_ratio"]
    for command in (base + ["--out-dir", str(tmp_path / "bad"), "--tolerance-mm", "-1"],
                    ["-m", "predistort", "advise", "--ior", "1.5", "--out", str(tmp_path / "a.json"),
                     "--tolerance-mm", "-2"]):
        result = run_python(command, env=env)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "--tolerance-mm" in lines[0] and "camera_mm" in lines[0]
    assert not (tmp_path / "bad").exists() and not (tmp_path / "a.json").exists()


def test_session_placement_presets_and_stand_map(tmp_path):
    """The page's control: a preset makes the session's pre-distortions robust (the model falls back to the
    robust solve, which says so); "Where may I stand?" maps the last one; a bad preset is one clear line."""
    from conftest import make_tiny_model
    from predistort.service import Session
    from predistort.settings import ServiceError, Settings
    folder = make_tiny_model(tmp_path / "model", 16)
    session = Session(Settings(default_weights=str(folder), preview_spp=8))
    with pytest.raises(ServiceError, match="Pre-distort a picture first"):
        session.stand_map()
    assert "±3 mm" in session.set_placement("careful (3 mm)")
    source = str(picture_paths()[0])
    result = session.predistort(source, spp=8)
    model, _ = session.model_at(16)
    assert isinstance(model, tol.RobustModel) and "falls back to the robust solve" in model.info["note"]
    image, line = session.stand_map()
    assert image.size[0] > 100 and "±3 mm" in line and result.comparison.predistorted.shape == (16, 16, 3)
    assert "exact place" in session.set_placement("exact spot (0 mm)")
    assert session.model_at(16)[0] is session.model
    for bad in ("sideways", "-2"):
        with pytest.raises(ServiceError) as e:
            session.set_placement(bad)
        assert "Camera placement" in str(e.value) and "\n" not in str(e.value)


def test_advisor_ranks_by_the_robust_ratio():
    """advise(placement=T): every distance's ratio is the robust one (the worst over the camera's axis ends of
    the texture made for all), never better than the exact spot's at the same distance; the advice says so."""
    from predistort.advise import advise
    setup = PhysicalSetup(ior=1.5, resolution=16)
    exact = advise(setup, grid_points=2, refine_steps=0)
    robust = advise(setup, grid_points=2, refine_steps=0, placement=3.0)
    assert [d for d, _ in robust.curve] == [d for d, _ in exact.curve]
    assert all(r >= e - 1e-6 for (_, r), (_, e) in zip(robust.curve, exact.curve)), (robust.curve, exact.curve)
    assert robust.curve != exact.curve and robust.placement["camera_mm"] == 3.0
    assert "robust ratio" in robust.markdown() and "robust ratio" not in exact.markdown()


def test_bench_quick_runs_both_textures(tmp_path):
    """bench/tolerance.py --quick: the single-view and the robust texture rendered at moved setups, the times."""
    import json
    from common import run_python
    result = run_python(["bench/tolerance.py", "--quick", "--out", str(tmp_path)], timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "tolerance.json").read_text())
    (r,) = data["results"]
    assert r["resolution"] == 32 and r["views"] == len(tol.views(3.0))
    assert r["single_solve_seconds"] > 0 and r["robust_solve_seconds"] > 0
    rows = {e["row"]: e for e in r["rows"]}
    assert "none (the exact spot)" in rows and "box: camera (+3, +0, +0) mm" in rows
    assert r["box_worst_robust"] < r["box_worst_single"]
    assert "| setup error |" in (tmp_path / "tolerance.md").read_text()


def test_coarse_to_fine_holds_too():
    """Above 256² the robust model solves its views coarse (here: 32² views for a 64² scene, to stay small) and
    adds the detail with a few single-view iterations: still better than the single view over the box."""
    glass = PhysicalSetup(ior=1.5, print_distance_mm=225, resolution=64).to_scene()
    pictures = torch.stack(picture_textures(64))
    model, _ = tol.robust_model(glass, 3.0, coarse=32, coarse_above=32)
    assert model.transport is not None and model.stack.resolution == 32 and model.resolution == 64
    texture = model(pictures)
    assert texture.shape == pictures.shape and 0 <= texture.min() and texture.max() <= 1
    single = solve(pictures, probe_cache.transport_for(glass))
    judged = [(v, probe_cache.transport_for(tol.view_scene(glass, v))) for v in tol.box_views(3.0, 2.0)]

    def worst(x):
        return max(tol.predicted_ratio(t, glass, v, x, pictures) for v, t in judged)
    assert worst(texture) < worst(single) - 0.03, (worst(texture), worst(single))
    assert tol.robust_model(glass, 3.0)[0].transport is None              # 64² ≤ 256²: the full stacked solve
