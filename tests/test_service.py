"""predistort.service: what the app does for one visitor session, tested as plain Python (no server, no browser)."""
import copy
import dataclasses
import threading
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from common import picture_paths
from conftest import make_tiny_model
from predistort import methods, report, resources, weights
from predistort.images import ImageError
from predistort.methods import METHODS, Method
from predistort.scene import DEFAULT
from predistort.service import Session
from predistort.settings import ServiceError, Settings, examples


@pytest.fixture(scope="module")
def tiny_default(tmp_path_factory):
    """Settings whose default model is a small 16×16 tutorial model (fast everywhere)."""
    folder = make_tiny_model(tmp_path_factory.mktemp("default16") / "model", 16)
    return Settings(default_weights=str(folder), preview_spp=8)


@pytest.fixture
def session(tiny_default):
    return Session(tiny_default)


def pictures(n=2):
    return [str(p) for p in picture_paths()[:n]]


# -- settings --------------------------------------------------------------------------------------------------
def test_settings_come_from_environment_variables_with_documented_defaults():
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env({"PREDISTORT_MAX_TEXTURES": "3", "PREDISTORT_MAX_UPLOAD_MB": "1.5",
                           "PREDISTORT_WARMUP": "0", "PREDISTORT_DEFAULT_WEIGHTS": "user/model@v1"})
    assert (s.max_textures, s.max_upload_mb, s.warmup, s.default_weights) == (3, 1.5, False, "user/model@v1")
    with pytest.raises(ValueError, match="PREDISTORT_MAX_ITERATIONS"):
        Settings.from_env({"PREDISTORT_MAX_ITERATIONS": "many"})
    with pytest.raises(ValueError, match="at least 1"):
        Settings.from_env({"PREDISTORT_MAX_TEXTURES": "0"})
    with pytest.raises(ValueError, match="max_resolution"):
        Settings(max_resolution=4096)
    # Every setting's variable is PREDISTORT_ + its field name, and each is read.
    for f in dataclasses.fields(Settings):
        assert Settings.env_name(f.name) == "PREDISTORT_" + f.name.upper()
    assert Settings.from_env({"PREDISTORT_QUEUE_SIZE": "5", "PREDISTORT_EXAMPLES_DIR": "/x"}).queue_size == 5


def test_a_new_picture_gets_the_pages_resolution_within_what_is_offered():
    """512² by default (what answers in about 2 s here), never past max_apply_resolution; 0 is the model's own."""
    assert Settings().page_resolution() == 512
    assert Settings(max_apply_resolution=256).page_resolution() == 256
    assert Settings(picture_resolution=300).page_resolution() == 256
    assert Settings.from_env({"PREDISTORT_PICTURE_RESOLUTION": "0"}).page_resolution() == 0
    with pytest.raises(ValueError, match="PREDISTORT_PICTURE_RESOLUTION"):
        Settings(picture_resolution=4)


# -- no default model ----------------------------------------------------------------------------------------
def test_without_a_bundled_default_the_session_says_so_and_offers_training(monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "bundled_dir", lambda: tmp_path / "nothing-here")
    monkeypatch.setattr(resources, "_defaults", {})
    s = Session(Settings(default_weights="default"))
    assert s.model is None
    assert "No pretrained default is bundled" in s.status() and "Train" in s.status()
    with pytest.raises(ServiceError, match="No pretrained default is bundled.*train one"):
        s.predistort(pictures(1)[0])
    with pytest.raises(ServiceError, match="No pretrained default"):
        s.load_pretrained("default")


def test_a_broken_default_setting_is_reported_not_fatal(tmp_path):
    s = Session(Settings(default_weights=str(tmp_path / "missing-folder")))
    assert s.model is None and "could not be loaded" in s.status()


# -- pictures ------------------------------------------------------------------------------------------------
def test_prepare_crops_any_picture_to_the_model_resolution_and_says_so(session, tmp_path):
    wide = tmp_path / "wide.jpg"
    Image.open(picture_paths()[0]).convert("RGB").resize((300, 100)).save(wide)
    ((name, texture, notes),) = session.prepare([str(wide)])
    assert name == "wide.jpg" and texture.shape == (16, 16, 3)
    assert any(n.startswith("cropped") and "centre" in n for n in notes), notes
    ((_, _, notes),) = session.prepare(str(wide), fit="resize")
    assert any("aspect ratio not kept" in n for n in notes)


def test_prepare_refuses_bad_uploads_with_clear_messages(tiny_default, tmp_path):
    s = Session(dataclasses.replace(tiny_default, max_textures=2, max_upload_mb=0.001))
    with pytest.raises(ServiceError, match="No picture given"):
        s.prepare([])
    with pytest.raises(ServiceError, match="at most 2"):
        s.prepare(pictures(3))
    with pytest.raises(ServiceError, match="MB"):
        s.prepare(pictures(1))                                  # 128×128 PNG > 1 kB
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ImageError, match="notes.txt: .*not an image"):
        Session(tiny_default).prepare([str(text)])
    with pytest.raises(ServiceError, match="fit must be"):
        Session(tiny_default).prepare(pictures(1), fit="stretch")


# -- pre-distortion --------------------------------------------------------------------------------------------
def test_predistort_gives_the_four_images_and_both_metrics(session):
    r = session.predistort(pictures(1)[0], spp=8)
    c = r.comparison
    for image in (c.initial, c.target, c.predistorted, c.final):
        assert image.shape == (16, 16, 3)
    m = r.metrics
    assert m["spp"] == 8 and m["resolution"] == 16 and m["texture"] == "image_001.png"
    assert m["l1_initial"] > 0 and m["l1_final"] > 0 and m["psnr_gain_db"] == pytest.approx(
        m["psnr_final"] - m["psnr_initial"])
    (kept,) = session.results                                  # kept on disk, read back at 8 bits
    assert kept.name == r.name and kept.metrics == m
    for a, b in zip((kept.comparison.initial, kept.comparison.predistorted), (c.initial, c.predistorted)):
        assert (a - b.clamp(0, 1)).abs().max() <= 0.5 / 255 + 1e-6
    figure = r.figure()
    assert figure.width > 4 * 16 * 2                            # four panels side by side, scale 2
    assert "PSNR" in report.metrics_markdown(m)


def test_predistort_defaults_to_the_preview_spp_and_checks_it(session):
    assert session.predistort(pictures(1)[0]).metrics["spp"] == 8
    for bad in (0, -1, 2.5, 10 ** 6, None):
        with pytest.raises(ServiceError, match="spp"):
            session.predistort(pictures(1)[0], spp=bad if bad is not None else float("nan"))


def test_compare_and_export(session, tmp_path):
    results = session.compare(pictures(2), spp=4)
    assert [r.name for r in results] == ["image_001.png", "image_002.png"]
    zip_path, figure = session.export()
    with zipfile.ZipFile(zip_path) as z:
        assert {"model.safetensors", "config.json"} <= set(z.namelist())
        z.extractall(tmp_path / "w")
    from predistort import load_model
    assert load_model(tmp_path / "w").resolution == 16
    im = Image.open(figure)
    assert im.height >= 2 * 16 * 2                              # one row per picture


# -- sessions ---------------------------------------------------------------------------------------------------
def test_a_deep_copy_is_a_new_independent_session_sharing_only_the_read_only_default(session):
    other = copy.deepcopy(session)
    assert other is not session and other.model is session.model           # the shared default, not copied
    assert not any(p.requires_grad for p in session.model.parameters())     # nobody trains it in place
    list(session.train(pictures(1), iterations=2, spp=1, resolution=16))
    assert session.model is not other.model and other.model_source != session.model_source
    assert other.results == [] and other.history == []


def test_renderers_are_shared_per_scene(session):
    scene = session.scene
    assert resources.renderer_for(scene) is resources.renderer_for(scene)
    assert resources.renderer_for(scene.replace(sphere_ior=1.2)) is not resources.renderer_for(scene)


# -- training -----------------------------------------------------------------------------------------------
def test_train_yields_progress_then_a_final_event_and_lowers_the_loss(session):
    events = list(session.train(pictures(2), method="tutorial", iterations=15, spp=4, resolution=16))
    assert events[0].stage == "starting" and events[-1].done
    progress = [e for e in events if e.stage == "training"]
    assert [e.iteration for e in progress] == list(range(1, 16))
    assert all(e.eta is not None and e.eta >= 0 for e in progress) and "Iteration 15/15" in progress[-1].description
    final = events[-1]
    losses = [h["loss"] for h in final.history]
    assert sum(losses[-3:]) < sum(losses[:3])
    m = final.metrics
    assert m["iterations_run"] == 15 and not m["stopped"] and len(m["textures"]) == 2
    assert {"l1_initial_mean", "l1_final_mean", "psnr_initial_mean", "psnr_final_mean"} <= set(m)
    assert zipfile.is_zipfile(final.weights_zip)
    assert session.model_source == "trained in this session" and session.model.resolution == 16
    assert session.model.info["scene"]["sphere_ior"] == 1.06 and session.model.info["recipe"]["iterations_run"] == 15


def test_train_uses_the_scene_options(session):
    final = list(session.train(pictures(1), iterations=2, spp=1, resolution=24, sphere_ior=1.3,
                               sphere_radius=0.3))[-1]
    assert (session.scene.sphere_ior, session.scene.sphere_radius, session.scene.resolution) == (1.3, 0.3, 24)
    assert final.metrics["scene"] == {"sphere_ior": 1.3, "sphere_radius": 0.3}
    assert session.predistort(pictures(1)[0]).metrics["resolution"] == 24


def test_train_rejects_bad_options_before_starting(session):
    for kwargs, message in (({"method": "magic"}, "Unknown method"), ({"iterations": 0}, "iterations"),
                            ({"iterations": 10 ** 6}, "iterations"), ({"spp": 0}, "spp"),
                            ({"resolution": 4096}, "resolution"), ({"resolution": 7.5}, "resolution"),
                            ({"sphere_radius": 1.5}, "sphere"), ({"sphere_ior": 9.0}, "sphere_ior"),
                            ({"seed": -1}, "seed")):
        with pytest.raises(ServiceError, match=message):
            next(session.train(pictures(1), **{"iterations": 2, "resolution": 16, **kwargs}))
    assert not session.training


def test_stop_ends_training_after_the_current_iteration_and_keeps_the_model(session):
    events = []
    for event in session.train(pictures(1), iterations=400, spp=1, resolution=16):
        events.append(event)
        if event.iteration == 3 and event.stage == "training":
            assert session.stop().startswith("Stopping")
    final = events[-1]
    assert final.done and final.metrics["stopped"] and 3 <= final.metrics["iterations_run"] <= 4
    assert session.model_source == "trained in this session" and not session.training
    assert session.stop() == "No training is running."


def test_a_visitor_leaving_mid_training_stops_it_and_the_session_keeps_the_model(session):
    gen = session.train(pictures(1), iterations=400, spp=1, resolution=16)
    for event in gen:
        if event.iteration == 2:
            break
    gen.close()                                   # what Gradio does when the browser goes away
    deadline = threading.Event()
    for _ in range(600):
        if not session.training:
            break
        deadline.wait(0.05)
    assert not session.training and session.model_source == "trained in this session"
    assert session.history and len(session.history) < 400


def test_one_session_trains_one_model_at_a_time(session):
    gen = session.train(pictures(1), iterations=400, spp=1, resolution=16)
    next(gen)
    with pytest.raises(ServiceError, match="already running"):
        next(session.train(pictures(1), iterations=2, resolution=16))
    with pytest.raises(ServiceError, match="training is running"):
        session.load_pretrained("default")
    session.stop()
    list(gen)


# -- methods and estimates ----------------------------------------------------------------------------------
def test_every_method_explains_its_trade_off_in_one_sentence():
    assert methods.DEFAULT_METHOD in METHODS
    for name, m in METHODS.items():
        assert m.name == name and callable(m.run)
        assert m.summary.endswith(".") and m.summary.count(". ") == 0 and len(m.summary) > 40


def test_a_new_method_plugs_in_with_one_table_entry(session, monkeypatch):
    calls = []

    def run(job):
        calls.append(job)
        model = copy.deepcopy(job.base_model)
        job.callback(1, 0.5, 0.01)
        return model, [{"iteration": 1, "loss": 0.5, "seconds": 0.01}]

    monkeypatch.setitem(METHODS, "copy", Method("copy", "copy", "Copies the current model: instant, learns nothing.",
                                                run, iterative=False))
    events = list(session.train(pictures(1), method="copy", iterations=50, resolution=16))
    assert calls and calls[0].iterations == 1 and events[-1].metrics["method"] == "copy"
    assert methods.estimate("copy", 16, 1, 50, 4).total_seconds == pytest.approx(
        methods.estimate("copy", 16, 1, 1, 4).seconds_per_iteration)


def test_estimates_warn_before_long_trainings():
    long = methods.estimate("tutorial", 128, 4, 100, 4)
    short = methods.estimate("tutorial", 16, 1, 10, 4)
    assert long.long and "long training" in long.message and "GB of memory" in long.message
    assert not short.long and "long training" not in short.message
    assert long.seconds_per_iteration > 10 * short.seconds_per_iteration
    with pytest.raises(ServiceError, match="Unknown method"):
        methods.estimate("magic", 16, 1, 10, 4)


def test_a_training_refines_the_estimate_at_its_resolution(session, monkeypatch):
    monkeypatch.setattr(methods, "_observed", {})
    list(session.train(pictures(1), method="tutorial", iterations=5, spp=1, resolution=16))
    assert ("tutorial", 16) in methods._observed
    per_it = [b["seconds"] - a["seconds"] for a, b in zip(session.history, session.history[1:])]
    est = methods.estimate("tutorial", 16, 1, 5, 1).seconds_per_iteration
    assert min(per_it) * 0.5 <= est <= max(per_it) * 2


# -- the generalising layer, the instant solve, refinement, scene changes ------------------------------------
def example(name):
    """One of the app's own example pictures: never a training picture of any model here (unseen)."""
    return next(p for p in examples() if Path(p).stem == name)


def test_the_default_method_is_the_generalising_layer_and_it_corrects_a_picture_it_never_saw(session, monkeypatch,
                                                                                             tmp_path):
    monkeypatch.setenv("PREDISTORT_CACHE", str(tmp_path))            # a scene never probed: probed now
    assert methods.DEFAULT_METHOD == "unrolled"
    final = list(session.train(pictures(2), iterations=3, spp=2, resolution=24))[-1]
    assert final.metrics["method"] == "unrolled" and final.metrics["iterations_run"] == 3
    assert session.model.model_type == "unrolled" and session.model.resolution == 24
    assert session.model.info["recipe"]["lr"] == METHODS["unrolled"].lr               # the method's own default
    m = session.predistort(example("landscape"), spp=16).metrics                      # not a training picture
    assert m["l1_final"] < 0.8 * m["l1_initial"]


def test_the_instant_solve_needs_no_training_and_corrects_any_picture(session, monkeypatch, tmp_path):
    monkeypatch.setenv("PREDISTORT_CACHE", str(tmp_path))
    events = list(session.train(pictures(1), method="solve", iterations=500, resolution=24, sphere_ior=1.2))
    final = events[-1]
    assert final.metrics["iterations"] == 1 and len(final.history) == 1              # iterations do not apply
    assert [e.stage for e in events if e.stage == "training"] == ["training"]
    assert (session.scene.sphere_ior, session.model.resolution) == (1.2, 24)
    assert final.metrics["l1_final_mean"] < final.metrics["l1_initial_mean"]
    m = session.predistort(example("text"), spp=16).metrics
    assert m["l1_final"] < 0.8 * m["l1_initial"]
    assert "instant solve, for 1 picture(s)" in session.status()


def test_refinement_is_never_worse_than_the_model_and_says_what_it_did(session):
    plain = session.predistort(example("checker"), spp=8).metrics
    assert "refine" not in plain
    m = session.predistort(example("checker"), spp=8, refine=2).metrics
    r = m["refine"]
    assert r["steps"] >= 1 and r["l1"] <= r["l1_start"] and r["seconds"] > 0    # its clock: refine_settings.py
    assert "refined for" in report.metrics_markdown(m)
    for bad in (-1, 10 ** 6, "soon", float("nan"), float("inf")):
        with pytest.raises(ServiceError, match="refine must be a number of seconds"):
            session.predistort(example("checker"), refine=bad)


def test_changing_the_scene_says_which_methods_still_apply(session, monkeypatch, tmp_path):
    monkeypatch.setenv("PREDISTORT_CACHE", str(tmp_path))
    same = session.scene_report(DEFAULT.sphere_ior, DEFAULT.sphere_radius)
    assert "✅ **Your current model**" in same and "made for this scene" in same
    other = session.scene_report(1.3, 0.45)
    assert "⚠️ **Your current model**" in other and "sphere_ior 1.06 → 1.3" in other
    assert "Retrain it for this scene" in other and "measured first" in other
    assert "**Refinement**: always applies" in other
    with pytest.raises(ServiceError, match="sphere_ior"):
        session.scene_report(9.0, 0.45)
    with pytest.raises(ServiceError, match="sphere_radius must be a number"):
        session.scene_report(1.3, "big")
    list(session.train(pictures(1), method="solve", resolution=16, sphere_ior=1.3))    # probes the new scene
    now = session.scene_report(1.3, 0.45, 16)
    assert "✅ **Your current model**" in now and "already measured" in now
    assert "Re-probe and retrain it" in session.scene_report(1.06, 0.45, 16)


# -- loading models -----------------------------------------------------------------------------------------
def test_load_pretrained_accepts_hub_repo_ids_only(session, tmp_path):
    folder = make_tiny_model(tmp_path / "local", 16)
    for name in (str(folder), "../etc", "a/b/c", "not a repo"):
        with pytest.raises(weights.WeightsError, match="not a Hugging Face model repo id"):
            session.load_pretrained(name)


def test_load_pretrained_from_the_hub_is_shared_read_only(session, fake_hub, tmp_path, tiny_default):
    folder = make_tiny_model(tmp_path / "hub-model", 24, seed=3)
    fake_hub.add_repo("someone/tiny24", {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()})
    status = session.load_pretrained("someone/tiny24")
    assert "someone/tiny24" in status and "24×24" in status
    other = Session(tiny_default)
    other.load_pretrained("someone/tiny24@main")
    assert session.predistort(pictures(1)[0]).metrics["resolution"] == 24
    assert "16×16" in session.load_pretrained("default")
    with pytest.raises(weights.WeightsError):
        session.load_pretrained("someone/missing")


def test_load_a_model_of_an_off_axis_4_3_scene_and_it_pre_distorts_for_that_scene(session, fake_hub, tmp_path,
                                                                                   monkeypatch):
    """*Load a model* takes the scene with the weights (config.json): a model made for an off-axis camera with a
    4:3 film pre-distorts for that camera, scored against its ball-free view on its film, not the tutorial's."""
    from predistort.layers import instant_model
    from predistort.physical import PhysicalSetup
    from predistort.solve import transport_for
    monkeypatch.setenv("PREDISTORT_CACHE", str(tmp_path / "cache"))
    scene = PhysicalSetup(ior=1.5, print_distance_mm=225.0, camera_x_mm=30.0, camera_y_mm=20.0, aim_z_mm=225.0,
                          film_width=24, film_height=18, resolution=24).to_scene()
    instant_model(transport_for(scene)).save_pretrained(tmp_path / "off-axis")
    fake_hub.add_repo("someone/off-axis", {p.name: p.read_bytes() for p in (tmp_path / "off-axis").iterdir()})
    assert "24×24" in session.load_pretrained("someone/off-axis")
    assert session.scene == scene
    result = session.predistort(pictures(1)[0], spp=16)
    assert result.comparison.goal.shape == (18, 24, 3) and result.comparison.final.shape == (18, 24, 3)
    assert result.metrics["l1_final"] < 0.8 * result.metrics["l1_initial"]


def test_parse_model_name():
    assert resources.parse_model_name(" user/name@v2 ") == ("user/name", "v2")
    assert resources.parse_model_name("user/name") == ("user/name", None)
    assert resources.parse_model_name("default") == ("default", None)


def test_warm_up_loads_the_default_and_compiles_in_the_background(tiny_default):
    thread = resources.warm_up(tiny_default)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert resources.default_model(tiny_default)[0] is not None
    assert resources.warm_up(tiny_default, render=False) is None


def test_history_table_and_notes():
    table = report.history_table([{"iteration": 1, "loss": 0.5, "seconds": 0.1}])
    assert list(table.columns) == ["iteration", "loss"] and len(table) == 1
    assert report.format_duration(59) == "59 s" and report.format_duration(61) == "1 min 01 s"
    assert report.format_duration(3700) == "1 h 01 min"


# -- resolution ------------------------------------------------------------------------------------------------
def test_predistort_at_another_resolution_rebuilds_the_model_on_that_resolutions_transport(session, monkeypatch,
                                                                                          tmp_path):
    """The instant solve made at 24² pre-distorts at 40² on the 40² transport (probed now, with progress); the
    tutorial layer maps only its own size and says so; a bad resolution is refused with the setting's name."""
    monkeypatch.setenv("PREDISTORT_CACHE", str(tmp_path))
    list(session.train(pictures(1), method="solve", resolution=24))
    assert "40×40" in session.predistort_estimate(40) and "measure" in session.predistort_estimate(40)
    heard = []
    m = session.predistort(example("text"), spp=16, resolution=40,
                           probe_progress=lambda fraction, message: heard.append(fraction)).metrics
    assert m["resolution"] == 40 and m["l1_final"] < 0.8 * m["l1_initial"]
    assert heard and heard[-1] == pytest.approx(1.0) and m["probe_seconds"] > 0 and m["apply_seconds"] > 0
    again = session.predistort(example("text"), spp=16, resolution=40).metrics
    assert again["probe_seconds"] == 0 and "measure" not in session.predistort_estimate(40)
    assert session.model.resolution == 24                      # the session's own model is unchanged
    assert session.predistort(example("text"), spp=16).metrics["resolution"] == 24     # None: the model's own
    with pytest.raises(ServiceError, match="resolution must be a whole number from 8 to 1024.*MAX_APPLY"):
        session.predistort(example("text"), resolution=2048)
    tutorial = Session(session.settings)                       # its default: a 16×16 tutorial layer
    with pytest.raises(ServiceError, match="maps 16×16 textures only"):
        tutorial.predistort(example("text"), resolution=32)
    assert "16×16 only" in tutorial.predistort_estimate(32)


def test_renders_above_the_full_spp_resolution_keep_its_samples():
    s = Settings(full_spp_resolution=256)
    assert [s.render_spp(32, r) for r in (128, 256, 512, 1024)] == [32, 32, 8, 2]
    assert s.render_spp(2, 1024) == 1 and s.resolutions() == [128, 256, 512, 1024]
    assert Settings(max_apply_resolution=512).resolutions() == [128, 256, 512]
