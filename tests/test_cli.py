"""The command line, run as a user runs it: train writes weights + history + curve; apply writes the five
outputs; user errors print one line and exit 2."""
import json

from PIL import Image

from common import REPO, run_python, picture_paths


def test_train_then_apply(tmp_path):
    out = tmp_path / "weights"
    paths = [str(p) for p in picture_paths()[:2]]
    result = run_python(["-m", "predistort", "train", "--textures", *paths, "--iterations", "3", "--resolution", "16",
                         "--fit", "resize", "--lr", "2e-3", "--out", str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "to 16×16" in result.stderr                          # the resize is said, not silent
    assert "3/3" in result.stderr and "loss=" in result.stderr  # tqdm progress bar: iteration and loss
    for name in ("model.safetensors", "config.json", "README.md", "history.json", "loss_curve.png"):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert [h["iteration"] for h in history] == [1, 2, 3] and all(h["seconds"] > 0 for h in history)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "tutorial" and config["resolution"] == 16
    assert config["scene"]["sphere_ior"] == 1.06 and config["recipe"]["iterations"] == 3
    assert Image.open(out / "loss_curve.png").size[0] > 100

    apply_dir = tmp_path / "applied"
    result = run_python(["-m", "predistort", "apply", "--weights", str(out), "--texture", paths[1], "--fit", "resize",
                         "--out-dir", str(apply_dir), "--spp", "16"])
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("predistorted.png", "render_initial.png", "render_final.png"):
        assert Image.open(apply_dir / name).size == (16, 16), name
    figure = Image.open(apply_dir / "comparison.png")
    assert figure.size[0] > 5 * 16 * 2                          # five panels side by side
    metrics = json.loads((apply_dir / "metrics.json").read_text())
    assert {"l1_initial", "psnr_initial", "l1_final", "psnr_final"} <= set(metrics)
    assert 0 < metrics["l1_initial"] < 1 and metrics["psnr_initial"] > 0


def test_train_the_generalising_layer_with_its_own_defaults_then_apply_it_to_an_unseen_picture(tmp_path):
    out, env = tmp_path / "unrolled", {"PREDISTORT_CACHE": str(tmp_path / "cache")}
    paths = [str(p) for p in picture_paths()[:2]]
    result = run_python(["-m", "predistort", "train", "--model", "unrolled", "--textures", *paths, "--iterations", "2",
                         "--resolution", "24", "--fit", "resize", "--out", str(out)], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "unrolled" and config["resolution"] == 24 and config["nnz"] > 24 * 24
    assert config["recipe"]["lr"] == 0.02 and config["recipe"]["iterations"] == 2       # the unrolled default lr
    assert list((tmp_path / "cache" / "probes").glob("*.safetensors"))                  # the scene was probed
    applied = tmp_path / "applied"
    result = run_python(["-m", "predistort", "apply", "--weights", str(out), "--texture",
                         str(REPO / "examples" / "landscape.png"), "--fit", "crop", "--out-dir", str(applied),
                         "--spp", "32"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((applied / "metrics.json").read_text())
    assert metrics["l1_final"] < 0.8 * metrics["l1_initial"]


def test_wrong_size_is_refused_unless_asked_to_fit(tmp_path):
    result = run_python(["-m", "predistort", "train", "--textures", str(picture_paths()[0]), "--iterations", "1",
                         "--resolution", "16", "--out", str(tmp_path / "w")])
    assert result.returncode == 2
    assert "--fit crop" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "w").exists()


def test_bad_inputs_give_one_clear_line(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    result = run_python(["-m", "predistort", "apply", "--weights", str(tmp_path), "--texture", str(junk),
                         "--out-dir", str(tmp_path / "o")])
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "model.safetensors" in result.stderr
    result = run_python(["-m", "predistort", "train", "--textures", str(junk), "--iterations", "1", "--out",
                         str(tmp_path / "w")])
    assert result.returncode == 2 and "error: " in result.stderr and "Traceback" not in result.stderr
    result = run_python(["-m", "predistort", "train", "--textures", str(junk), "--iterations", "0", "--out",
                         str(tmp_path / "w")])
    assert result.returncode == 2 and "--iterations must be at least 1" in result.stderr


def test_apply_at_another_resolution_writes_everything_at_that_size(tmp_path):
    """`apply --texture PATH --resolution R --out-dir DIR` with the bundled 128² model: any picture (cropped), the
    model rebuilt on R's light transport (probed the first time: probe_seconds > 0, then 0), every image R×R."""
    import numpy as np
    from PIL import Image
    env = {"PREDISTORT_CACHE": str(tmp_path / "cache")}
    for run, probed in (("first", True), ("again", False)):
        out = tmp_path / run
        result = run_python(["-m", "predistort", "apply", "--texture", str(REPO / "examples" / "landscape.png"),
                             "--resolution", "48", "--spp", "8", "--out-dir", str(out), "--no-stand-map"], env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["resolution"] == 48 and metrics["apply_seconds"] > 0
        assert (metrics["probe_seconds"] > 0) == probed
        assert "tolerance" not in metrics and not (out / "stand_map.png").exists()     # --no-stand-map
        assert metrics["l1_final"] < 0.8 * metrics["l1_initial"]
        for name in ("predistorted.png", "texture.png", "render_initial.png", "render_final.png"):
            assert Image.open(out / name).size == (48, 48), name
        texture = np.asarray(Image.open(out / "texture.png"))
        assert not np.array_equal(texture, np.asarray(Image.open(out / "predistorted.png")))


def test_apply_with_the_bundled_model_on_a_scene_it_was_not_made_for_says_what_it_used(tmp_path):
    """`apply --scene S.json` (what `advise --out` writes, or any camera): the bundled generalising layer was made
    for the tutorial's scene, so the instant solve on S's transport pre-distorts, and stdout and metrics.json say
    so. An off-axis camera with a 4:3 film is scored against the ball-free view and written at the film's size."""
    from PIL import Image
    from predistort.physical import PhysicalSetup
    env = {"PREDISTORT_CACHE": str(tmp_path / "cache")}
    on_axis = PhysicalSetup(ior=1.5, print_distance_mm=225.0, resolution=32)
    off_axis = on_axis.replace(camera_x_mm=30.0, camera_y_mm=20.0, aim_z_mm=225.0, film_width=40, film_height=30)
    for name, setup, goal in (("advised", on_axis, "picture"), ("off", off_axis, "ball-free view")):
        scene = tmp_path / f"{name}.json"
        setup.to_scene().save(scene)
        out = tmp_path / name
        result = run_python(["-m", "predistort", "apply", "--scene", str(scene), "--texture",
                             str(REPO / "examples" / "landscape.png"), "--spp", "16", "--out-dir", str(out),
                             "--no-stand-map"], env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["pre-distorted with"].startswith("the instant solve on this scene's light transport (the "
                                                        "unrolled model was made for another scene)")
        assert f"Pre-distorted with {metrics['pre-distorted with']}; scored against the {goal}." in result.stdout
        assert metrics["target"] == goal and metrics["l1_final"] < 0.8 * metrics["l1_initial"]
        width, height = setup.film_size
        assert Image.open(out / "render_final.png").size == (width, height)
        assert Image.open(out / "predistorted.png").size == (32, 32)
        assert (out / "target.png").exists() == (goal != "picture")
    # Weights named with --weights are still held to their own scene.
    result = run_python(["-m", "predistort", "apply", "--weights", str(REPO / "weights" / "default"), "--scene",
                         str(tmp_path / "off.json"), "--texture", str(REPO / "examples" / "landscape.png"),
                         "--out-dir", str(tmp_path / "refused")], env=env)
    assert result.returncode == 2 and "another scene" in result.stderr


def test_a_model_trained_on_an_off_axis_4_3_scene_carries_its_scene(tmp_path):
    """A model made for an off-axis camera with a 4:3 film (`train --scene`: the instant solve, then trained
    further with `--init` alone) records its scene in config.json, loads back and saves again bit for bit, and
    `apply --weights M` without --scene pre-distorts for that scene: scored against its ball-free view, renders
    at its film's size, and better than printing plain."""
    from PIL import Image
    from predistort import load_model, weights
    from predistort.physical import PhysicalSetup
    env = {"PREDISTORT_CACHE": str(tmp_path / "cache")}
    setup = PhysicalSetup(ior=1.5, print_distance_mm=225.0, camera_x_mm=30.0, camera_y_mm=20.0, aim_z_mm=225.0,
                          film_width=32, film_height=24, resolution=32)
    scene = setup.to_scene()
    scene.save(tmp_path / "off.json")
    picture, other = (str(REPO / "examples" / f"{name}.png") for name in ("landscape", "rings"))
    made = run_python(["-m", "predistort", "train", "--model", "solve", "--scene", str(tmp_path / "off.json"),
                       "--textures", picture, "--fit", "resize", "--out", str(tmp_path / "solve")], env=env)
    assert made.returncode == 0, made.stderr[-3000:]
    # Trained further with --init alone: on the scene the instant solve was made for.
    trained = run_python(["-m", "predistort", "train", "--init", str(tmp_path / "solve"), "--iterations", "1",
                          "--textures", picture, "--fit", "resize", "--out", str(tmp_path / "m")], env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["scene"] == scene.to_dict() and config["recipe"]["init"] == str(tmp_path / "solve")
    model = load_model(tmp_path / "m")
    assert weights.scene_of(model) == scene
    model.save_pretrained(tmp_path / "again")
    for name in ("model.safetensors", "config.json", "README.md"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "m" / name).read_bytes(), name

    out = tmp_path / "applied"
    result = run_python(["-m", "predistort", "apply", "--weights", str(tmp_path / "m"), "--texture", other, "--spp",
                         "16", "--out-dir", str(out), "--no-stand-map"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Scene: the one {tmp_path / 'm'} was made for" in result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pre-distorted with"] == f"the unrolled model of {tmp_path / 'm'}"
    assert metrics["target"] == "ball-free view" and metrics["film"] == [32, 24]
    assert Image.open(out / "render_final.png").size == (32, 24)
    assert metrics["l1_final"] < 0.8 * metrics["l1_initial"]
    assert not list((tmp_path / "cache" / "probes").glob("*.tmp"))
    assert len(list((tmp_path / "cache" / "probes").glob("*.safetensors"))) == 1     # one scene, probed once
