"""The real app (``python app.py``, as the Dockerfile starts it) called through gradio_client, endpoint by endpoint.

The app runs once for the module (``app_server`` in conftest.py) with its default model: the bundled one when
weights/default exists, else the instant solve at 32×32. Each ``Client`` is a session of its own.
Trainings here are short and small (16×16), so that the whole file takes well under a minute of training.
"""
import json
import re
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from common import picture_paths

from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

ENDPOINTS = {
    "/predistort": ["texture", "spp", "fit", "refine", "resolution"],
    "/compare": ["textures", "spp", "fit"],
    "/train": ["textures", "method", "iterations", "spp", "resolution", "seed", "sphere_ior", "sphere_radius", "fit"],
    "/stop": [],
    "/load_pretrained": ["name"],
    "/export": [],
    "/estimate": ["textures", "method", "iterations", "spp", "resolution"],
    "/check_scene": ["sphere_ior", "sphere_radius", "resolution"],
    "/status": [],
    "/push_to_hub": ["name", "private"],
    "/advise": ["ior", "ball_diameter_mm", "print_distance_mm", "camera_distance_mm", "fov_deg", "paper"],
    "/use_setup": ["ior", "ball_diameter_mm", "print_distance_mm", "camera_distance_mm", "fov_deg", "camera_x_mm",
                   "camera_y_mm", "aim_x_mm", "aim_y_mm", "film"],
    "/correctability": [],
    "/print_files": ["paper"],
    "/placement": ["preset"],
    "/stand_map": [],
    "/chart": [],
    "/calibrate": ["photo"],
    "/check": ["photo"],
    "/predistort_world": ["setup", "meshes", "picture", "resolution", "fit", "tolerance_mm"],
    "/world_setup": ["kind", "diameter_mm", "height_mm", "paper", "camera_height_mm", "camera_distance_mm", "fov_deg",
                     "meshes"],
    "/world_advise": ["setup", "meshes"],
    "/world_chart": ["setup", "meshes"],
    "/world_calibrate": ["setup", "meshes", "photo"],
    "/world_check": ["setup", "meshes", "picture", "printed", "photo"],
}
METRIC_KEYS = {"texture", "resolution", "spp", "l1_initial", "l1_final", "psnr_initial", "psnr_final", "l1_ratio",
               "psnr_gain_db", "notes"}


@pytest.fixture(scope="module")
def url(app_server):
    return app_server.url


def client(url):
    return Client(url, verbose=False, download_files=True)


def rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A non-square JPEG (200×120) made from a tutorial texture: the app must crop it and say so."""
    path = tmp_path_factory.mktemp("pictures") / "wide photo.jpg"
    Image.open(picture_paths()[0]).convert("RGB").resize((200, 120)).save(path, quality=92)
    return path


def train_args(paths, iterations=12, resolution=16, spp=4, seed=0):
    return ([handle_file(str(p)) for p in paths], "tutorial", iterations, spp, resolution, seed, 1.06, 0.45, "crop")


def test_app_starts_as_the_dockerfile_starts_it(app_server):
    """`python app.py` with GRADIO_SERVER_NAME / GRADIO_SERVER_PORT listens exactly there."""
    port = app_server.url.rstrip("/").rsplit(":", 1)[1]
    assert f"http://127.0.0.1:{port}" in app_server.log.read_text()


def test_every_action_has_a_stable_api_name_with_named_parameters(url):
    api = client(url).view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name, params in ENDPOINTS.items():
        assert name in api, f"{name} missing from {sorted(api)}"
        assert [p["parameter_name"] for p in api[name]["parameters"]] == params


def test_every_endpoint_is_an_mcp_tool_with_its_inputs_described(url):
    """The app serves its API as Model Context Protocol tools (launch(mcp_server=True)); each tool is named after
    its endpoint and says what it does and what each input means (the handlers' docstrings)."""
    import urllib.request
    with urllib.request.urlopen(url + "gradio_api/mcp/schema", timeout=30) as r:
        tools = {t["name"]: t for t in json.loads(r.read())}
    assert set(tools) == {name.lstrip("/") for name in ENDPOINTS}
    for name, params in ENDPOINTS.items():
        tool = tools[name.lstrip("/")]
        assert len(tool["description"]) > 40, name
        properties = tool["inputSchema"].get("properties", {})
        assert list(properties) == params, name
        for param, schema in properties.items():
            assert len(schema.get("description", "")) > 10, (name, param)
    assert tools["predistort"]["inputSchema"]["required"] == ["texture"]


def test_refinement_reports_its_progress(url):
    """/predistort with refinement streams progress updates (step, score, seconds of its budget) while it runs."""
    c = client(url)
    job = c.submit(handle_file(str(picture_paths()[0])), 4, "crop", 3, api_name="/predistort")
    seen = []
    while not job.done():
        status = job.status()
        seen += [p for p in (status.progress_data or []) if p.desc and p.desc.startswith("Refining")]
        time.sleep(0.05)
    metrics = job.result()[3]
    assert metrics["refine"]["steps"] >= 1
    assert seen and all(p.unit == "s" and p.length == 3 for p in seen), seen


def test_predistort_gives_four_images_and_metrics_with_the_default_model(url, app_server, photo):
    """The four images, and the pre-distortion helped: the render of the pre-distorted texture is closer to the
    picture as used (the tutorial's scene: the camera should see the picture itself) than the plain render,
    measured on the PNGs that come back, as the metrics say."""
    c = client(url)
    initial, predistorted, final, metrics, used, summary = c.predict(handle_file(str(photo)), api_name="/predistort")
    r = app_server.default_resolution
    for path in (initial, predistorted, final, used):
        assert rgb(path).shape == (r, r, 3)
    assert METRIC_KEYS <= set(metrics)
    assert metrics["resolution"] == r and metrics["texture"] == "wide photo.jpg"
    assert metrics["spp"] == 32                                     # the preview default
    wanted = rgb(used) / 255.0
    plain, corrected = (np.abs(rgb(path) / 255.0 - wanted).mean() for path in (initial, final))
    assert corrected < 0.8 * plain, (plain, corrected)
    assert metrics["l1_final"] < 0.8 * metrics["l1_initial"] and metrics["psnr_final"] > metrics["psnr_initial"]
    assert (plain, corrected) == pytest.approx((metrics["l1_initial"], metrics["l1_final"]), abs=0.01)
    assert any("cropped 200×120" in n for n in metrics["notes"]), metrics["notes"]
    assert "PSNR" in summary and "cropped" in summary
    # The input texture as used is the cropped picture, not the render.
    assert not np.array_equal(rgb(used), rgb(initial))


def test_predistort_spp_is_an_input(url):
    c = client(url)
    *_, metrics, _, _ = c.predict(handle_file(str(picture_paths()[1])), 4, "resize", api_name="/predistort")
    assert metrics["spp"] == 4


def test_bad_input_is_a_clear_error_and_the_server_keeps_running(url, tmp_path):
    c = client(url)
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    with pytest.raises(AppError, match="not an image"):
        c.predict(handle_file(str(text)), api_name="/predistort")
    with pytest.raises(AppError, match="spp must be a whole number"):
        c.predict(handle_file(str(picture_paths()[0])), 0, api_name="/predistort")
    with pytest.raises(AppError, match="No picture given"):
        c.predict(None, api_name="/predistort")
    with pytest.raises(AppError, match="not a Hugging Face model repo id"):
        c.predict("../../etc", api_name="/load_pretrained")
    # Limits: Gradio's own slider check or the service's, both say what the limit is.
    with pytest.raises(AppError, match="greater than maximum value 1000|iterations must be a whole number"):
        c.predict(*train_args(picture_paths()[:1], iterations=10 ** 6), api_name="/train")
    with pytest.raises(AppError, match="greater than maximum value 128|resolution must be a whole number"):
        c.predict(*train_args(picture_paths()[:1], resolution=4096), api_name="/train")
    with pytest.raises(AppError, match="resolution must be a whole number"):
        c.predict(*train_args(picture_paths()[:1], resolution=20.5), api_name="/train")
    # Still serving, in the same session.
    assert c.predict(handle_file(str(picture_paths()[0])), api_name="/predistort")[3]["l1_initial"] > 0


def test_short_training_at_small_resolution_lowers_the_loss(url, tmp_path):
    from predistort import load_model
    c = client(url)
    weights_zip, curve, metrics, figures, status, progress = c.predict(
        *train_args(picture_paths()[:2], iterations=20), api_name="/train")
    assert "Done: 20 iterations" in progress
    losses = [row[1] for row in curve["data"]]
    assert len(losses) == 20 == metrics["iterations_run"] and not metrics["stopped"]
    assert np.mean(losses[-4:]) < np.mean(losses[:4]), losses
    assert metrics["final_train_loss"] < metrics["first_train_loss"]
    assert len(metrics["textures"]) == 2 and len(figures) == 2
    assert "trained in this session" in status
    with zipfile.ZipFile(weights_zip) as z:
        assert {"model.safetensors", "config.json"} <= set(z.namelist())
        z.extractall(tmp_path / "weights")
    model = load_model(tmp_path / "weights")
    assert model.resolution == 16 and json.loads((tmp_path / "weights" / "config.json").read_text())["scene"]
    # The session now pre-distorts with its trained model.
    assert c.predict(handle_file(str(picture_paths()[2])), api_name="/predistort")[3]["resolution"] == 16


def test_sessions_are_isolated(url, app_server):
    a, b = client(url), client(url)
    a.predict(*train_args(picture_paths()[:1], iterations=3, resolution=24), api_name="/train")
    picture = handle_file(str(picture_paths()[3]))
    assert a.predict(picture, api_name="/predistort")[3]["resolution"] == 24
    assert b.predict(picture, api_name="/predistort")[3]["resolution"] == app_server.default_resolution
    assert "trained in this session" in a.predict(api_name="/status")
    assert "trained in this session" not in b.predict(api_name="/status")
    assert "trained in this session" not in client(url).predict(api_name="/status")


def test_stop_ends_training_and_keeps_what_was_learned(url):
    c = client(url)
    job = c.submit(*train_args(picture_paths()[:1], iterations=500), api_name="/train")
    deadline = time.monotonic() + 120
    while len(job.outputs()) < 3 and not job.done():           # a few iterations have run
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.2)
    assert c.predict(api_name="/stop").startswith("Stopping")
    weights_zip, curve, metrics, _, status, _ = job.result(timeout=120)
    assert metrics["stopped"] and 1 <= metrics["iterations_run"] < 500
    assert len(curve["data"]) == metrics["iterations_run"]
    assert zipfile.is_zipfile(weights_zip) and "trained in this session" in status
    assert c.predict(api_name="/stop") == "No training is running."


def test_load_pretrained_from_the_hub_and_back_to_default(url, app_server):
    c = client(url)
    status = c.predict("test/tiny16", api_name="/load_pretrained")
    assert "test/tiny16" in status and "16×16" in status
    assert c.predict(handle_file(str(picture_paths()[0])), api_name="/predistort")[3]["resolution"] == 16
    with pytest.raises(AppError, match="(?i)no model repo 'test/missing'"):
        c.predict("test/missing", api_name="/load_pretrained")
    status = c.predict("default", api_name="/load_pretrained")
    assert f"{app_server.default_resolution}×{app_server.default_resolution}" in status
    assert c.predict(handle_file(str(picture_paths()[0])), api_name="/predistort")[3]["resolution"] == \
        app_server.default_resolution


def test_compare_and_export_take_the_results_home(url, app_server, photo):
    c = client(url)
    figures, table, notes = c.predict([handle_file(str(p)) for p in (photo, picture_paths()[1])], 8,
                                      api_name="/compare")
    assert len(figures) == 2 and len(table["data"]) == 2
    assert "cropped 200×120" in notes
    weights_zip, figure, figure_image = c.predict(api_name="/export")
    with zipfile.ZipFile(weights_zip) as z:
        assert {"model.safetensors", "config.json"} <= set(z.namelist())
    r = app_server.default_resolution
    im = Image.open(figure)
    assert im.width > 4 * r and im.height > 2 * r                    # four panels, two rows


def test_refinement_the_instant_solve_and_scene_checks_through_the_api(url):
    c = client(url)
    picture = handle_file(str(picture_paths()[2]))
    *_, metrics, _, summary = c.predict(picture, 8, "crop", 2, api_name="/predistort")
    r = metrics["refine"]
    assert r["steps"] >= 1 and r["l1"] <= r["l1_start"] and "refined for" in summary
    with pytest.raises(AppError, match="refine must be a number of seconds"):
        c.predict(picture, 8, "crop", -3, api_name="/predistort")
    report = c.predict(1.3, 0.45, 16, api_name="/check_scene")
    assert "IOR 1.3" in report and "Instant solve" in report and "always applies" in report
    # The instant solve: a model for a new scene in seconds, whatever the iteration count says.
    _, curve, metrics, figures, status, _ = c.predict(
        [picture], "solve", 300, 4, 16, 0, 1.3, 0.45, "crop", api_name="/train")
    assert metrics["method"] == "solve" and metrics["iterations_run"] == 1 and len(curve["data"]) == 1
    assert metrics["l1_final_mean"] < metrics["l1_initial_mean"] and "instant solve" in status
    assert "✅ **Your current model**" in c.predict(1.3, 0.45, 16, api_name="/check_scene")


def test_estimate_warns_before_a_long_training(url):
    c = client(url)
    long = c.predict([handle_file(str(p)) for p in picture_paths()], "tutorial", 100, 4, 128, api_name="/estimate")
    short = c.predict([handle_file(str(picture_paths()[0]))], "tutorial", 10, 4, 16, api_name="/estimate")
    assert "long training" in long and "s per iteration" in long
    assert "long training" not in short


def test_app_without_a_default_model_starts_and_says_so(tmp_path):
    from predistort.appserver import launch_app
    with launch_app(tmp_path, PREDISTORT_DEFAULT_WEIGHTS="none", PREDISTORT_WARMUP="0") as app:
        url = app.url
        c = client(url)
        assert "No model yet" in c.predict(api_name="/status")
        with pytest.raises(AppError, match="no model to pre-distort with"):
            c.predict(handle_file(str(picture_paths()[0])), api_name="/predistort")


def test_trainings_run_one_at_a_time_but_predistort_does_not_wait(url):
    from gradio_client.utils import Status
    a, b, c = client(url), client(url), client(url)
    # The longest training the page allows, stopped below: it is still running whatever the machine's speed.
    first = a.submit(*train_args(picture_paths()[:1], iterations=1000), api_name="/train")
    deadline = time.monotonic() + 120
    while len(first.outputs()) < 3:
        assert time.monotonic() < deadline and not first.done(), "training made no progress"
        time.sleep(0.2)
    second = b.submit(*train_args(picture_paths()[:1], iterations=2), api_name="/train")
    deadline = time.monotonic() + 120
    while second.status().code in (Status.STARTING, Status.JOINING_QUEUE):     # until the server has placed it
        assert time.monotonic() < deadline, "the second training was never queued"
        time.sleep(0.1)
    assert second.status().code == Status.IN_QUEUE            # waits for the running training
    # A pre-distortion is served meanwhile, by another queue; the second training still waits.
    assert c.predict(handle_file(str(picture_paths()[0])), api_name="/predistort")[3]["l1_initial"] > 0
    assert not first.done() and second.status().code == Status.IN_QUEUE and not second.outputs()
    a.predict(api_name="/stop")
    assert first.result(timeout=120)[2]["stopped"]
    assert second.result(timeout=120)[2]["iterations_run"] == 2


def test_real_glass_advise_use_the_setup_see_where_it_works_and_print(url, tmp_path):
    """A crown-glass ball: the advisor moves the print away from the ball's focus, the session pre-distorts for the
    advised setup, the correctability map says where it cannot work, and the print comes at its true size. At 16²
    (a 16×16 model loaded first, so the advisor searches at 16²) to keep the probes cheap."""
    c = client(url)
    c.predict("test/tiny16", api_name="/load_pretrained")
    advice, plot = c.predict(1.52, 90, 100, 100, 60, api_name="/advise")
    assert "predicted error ratio" in advice and rgb(plot).shape[2] == 3
    assert "Move the print from 100 mm to" in advice                  # near the focus: it must move
    moved = float(advice.split("Move the print from 100 mm to ")[1].split(" mm")[0])
    assert moved > 100
    status, setup = c.predict(1.52, 90, moved, 100, 60, api_name="/use_setup")
    assert "instant solve for your setup" in status and "16×16" in status and f"{moved:.0f} mm in front" in setup
    metrics = c.predict(handle_file(str(picture_paths()[0])), 8, api_name="/predistort")[3]
    assert metrics["resolution"] == 16 and metrics["l1_final"] < metrics["l1_initial"]
    image, sentence = c.predict(api_name="/correctability")
    assert rgb(image).ndim == 3 and sentence.endswith(".")
    pdf, png = c.predict(api_name="/print_files")
    assert open(pdf, "rb").read(5) == b"%PDF-"
    from predistort.physical import PhysicalSetup
    side_mm = PhysicalSetup(ball_diameter_mm=90, ior=1.52, print_distance_mm=moved).print_size_mm
    with Image.open(png) as im:
        dpi = im.info["dpi"][0]
        assert im.width / dpi * 25.4 == pytest.approx(side_mm, rel=1e-3)   # prints at the setup's true size
    # On home paper: A4 pages (595 × 842 pt, either way round), tiles and an assembly sheet for this large print.
    pdf = open(c.predict("a4", api_name="/print_files")[0], "rb").read()
    boxes = {tuple(round(float(v)) for v in m.split()[2:]) for m in re.findall(rb"/MediaBox \[([^\]]*)\]", pdf)}
    assert boxes and boxes <= {(595, 842), (842, 595)}, boxes
    assert len(re.findall(rb"/Type /Page\b", pdf)) > 2                # tiles + the assembly sheet
    with pytest.raises(AppError, match="paper must be one of"):
        c.predict("b7", api_name="/print_files")
    with pytest.raises(AppError, match="Invalid setup: the print must be farther"):
        c.predict(1.52, 90, 30, 100, 60, api_name="/use_setup")
    # The camera 15 mm right of the axis, aimed 10 mm up, a phone held level: renders come 4:3 (16 × 12 here).
    status, setup = c.predict(1.52, 90, moved, 100, 60, 15, 0, 0, 10, "4:3 (a phone held level)",
                              api_name="/use_setup")
    assert "instant solve for your setup" in status, status
    initial, _, final, metrics = c.predict(handle_file(str(picture_paths()[0])), 8, api_name="/predistort")[:4]
    assert Image.open(final).size == (16, 12) and metrics["l1_final"] < metrics["l1_initial"]


def test_predistort_at_a_larger_resolution_gives_full_resolution_images(url, app_server):
    """/predistort's last input, resolution: the default model pre-distorts at 256² (its light transport at 256² is
    measured on the first request); every image comes back at 256×256, lossless PNG. Callers that leave it out
    get the model's own resolution, as before."""
    c = client(url)
    picture = handle_file(str(picture_paths()[1]))
    initial, predistorted, final, metrics, used, summary = c.predict(picture, 8, "crop", 0, 256,
                                                                     api_name="/predistort")
    for path in (initial, predistorted, final, used):
        assert rgb(path).shape == (256, 256, 3) and open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert metrics["resolution"] == 256 and metrics["l1_final"] < metrics["l1_initial"]
    assert metrics["apply_seconds"] > 0 and metrics["probe_seconds"] >= 0
    assert c.predict(picture, 8, api_name="/predistort")[3]["resolution"] == app_server.default_resolution
    with pytest.raises(AppError, match="resolution must be a whole number"):
        c.predict(picture, 8, "crop", 0, 4096, api_name="/predistort")


def test_a_cylinder_mirror_world_through_the_api_and_a_setup_that_names_another_file(url, tmp_path):
    """/predistort_world: a mirror world's renders, print PDF and metrics; a setup whose mesh names a file
    outside its uploads (the server's token, another visitor's folder) is refused with a sentence."""
    world = {"units": "mm", "print": {"center": [0, -40, 0], "right": [1, 0, 0], "up": [0, 1, 0], "size": [297, 210]},
             "objects": [{"shape": "cylinder", "base": [0, 0, 0], "axis": [0, 0, 1], "radius": 30, "height": 100,
                          "material": "mirror"}],
             "camera": {"origin": [0, -280, 300], "target": [0, 0, 50], "up": [0, 0, 1], "fov": 14, "film": [60, 80]}}
    setup = tmp_path / "mirror.json"
    setup.write_text(json.dumps(world))
    c = client(url)
    plain, final, target, texture, pdf, metrics, summary, glb = c.predict(
        handle_file(str(setup)), [], handle_file(str(picture_paths()[0])), 256, "crop", api_name="/predistort_world")
    assert Image.open(texture).size == (256, 181) and Image.open(final).size == (60, 80)
    assert open(glb, "rb").read(4) == b"glTF"
    assert open(pdf, "rb").read(5) == b"%PDF-" and "mirror cylinder" in summary
    assert metrics["mirror_error"] < 0.3 * metrics["mirror_error_plain"]
    # /world_advise: the camera's angle for this mirror, the advised setup in the same schema, the map.
    advised, advice, error_map = c.predict(handle_file(str(setup)), [], api_name="/world_advise")
    advised = json.loads(open(advised).read())
    assert advised["objects"] == world["objects"] and "predicted error in the mirror" in advice, advice
    assert "Where it can work:" in advice and rgb(error_map).shape == (80, 60, 3)
    for escape in ("/etc/hostname.obj", "../../token.obj", "../world-1/setup.obj"):
        bad = {**world, "objects": [{"shape": "mesh", "file": escape, "material": "mirror"}]}
        setup.write_text(json.dumps(bad))
        with pytest.raises(AppError, match="must be a plain file name") as err:
            c.predict(handle_file(str(setup)), [], handle_file(str(picture_paths()[0])), 256, "crop",
                      api_name="/predistort_world")
        assert "Traceback" not in str(err.value)
    assert c.predict(api_name="/status")                      # the server keeps serving


def test_a_mirror_print_with_a_tolerance_and_its_photo_checked_through_the_api(url, tmp_path):
    """/predistort_world with a camera tolerance says where one may stand; /world_check judges a photo of that
    print (rendered by the project where the setup is) and says nothing is to be done."""
    from photos import photograph, render
    from predistort.scene import SceneConfig
    from predistort.worldsolve import load_printed
    world = {"units": "mm", "print": {"center": [0, -40, 0], "right": [1, 0, 0], "up": [0, 1, 0], "size": [297, 210]},
             "objects": [{"shape": "cylinder", "base": [0, 0, 0], "axis": [0, 0, 1], "radius": 30, "height": 100,
                          "material": "mirror"}],
             "camera": {"origin": [0, -280, 300], "target": [0, 0, 50], "up": [0, 0, 1], "fov": 14, "film": [48, 64]},
             "resolution": 128}
    setup = tmp_path / "mirror.json"
    setup.write_text(json.dumps(world))
    c = client(url)
    out = c.predict(handle_file(str(setup)), [], handle_file(str(picture_paths()[0])), 128, "crop", 2,
                    api_name="/predistort_world")
    texture, metrics, summary = out[3], out[5], out[6]
    assert "Where you may stand" in summary and "| y +2 |" in summary and metrics["tolerance"]["camera_mm"] == 2
    scene = SceneConfig.from_dict(world)
    photo = tmp_path / "print.jpg"
    photo.write_bytes(photograph(render(scene, load_printed(texture, scene), spp=64), exposure=0.9))
    error_map, verdict, corrected = c.predict(handle_file(str(setup)), [], handle_file(str(picture_paths()[0])),
                                              handle_file(texture), handle_file(str(photo)), api_name="/world_check")
    ratio = float(re.search(r"printed as it is\) \| ([0-9.]+)", verdict).group(1))
    assert ratio < 0.4 and "calibrate again" not in verdict, verdict
    assert rgb(error_map).shape == (64, 48, 3)
    with pytest.raises(AppError, match="Upload the photo of the print"):
        c.predict(handle_file(str(setup)), [], handle_file(str(picture_paths()[0])), handle_file(texture), None,
                  api_name="/world_check")


def test_a_glass_mesh_gets_its_chart_and_a_photo_without_it_a_sentence(url, tmp_path):
    """/world_chart for a glass mesh (markers clear of the object, predistort.glassfit); /world_calibrate refuses
    a photo that shows no chart with a sentence about the markers."""
    from photos import photograph
    from test_world import glass_world
    setup = tmp_path / "glass.json"
    setup.write_text(json.dumps(glass_world(tmp_path)))
    c = client(url)
    png, pdf = c.predict(handle_file(str(setup)), [handle_file(str(tmp_path / "ellipsoid.obj"))],
                         api_name="/world_chart")
    assert open(pdf, "rb").read(5) == b"%PDF-" and rgb(png).shape[1] >= 1024
    blank = tmp_path / "blank.jpg"
    blank.write_bytes(photograph(np.full((48, 64, 3), 0.5, np.float32)))
    with pytest.raises(AppError, match="marker") as err:
        c.predict(handle_file(str(setup)), [handle_file(str(tmp_path / "ellipsoid.obj"))], handle_file(str(blank)),
                  api_name="/world_calibrate")
    assert "Traceback" not in str(err.value)


def test_a_picked_object_gives_its_setup_file_and_3d_view_and_bad_numbers_a_sentence(url, tmp_path):
    c = client(url)
    setup, glb, described = c.predict("cone mirror", 50, 80, "A4", 250, 260, 45, api_name="/world_setup")
    world = json.loads(open(setup).read())
    assert world["objects"][0]["shape"] == "cone" and world["print"]["size"] == [297.0, 210.0]
    assert open(glb, "rb").read(4) == b"glTF" and "mirror cone, 50 mm across" in described
    with pytest.raises(AppError, match="camera.origin is inside objects"):
        c.predict("cylinder mirror", 60, 400, "A3", 300, 10, 40, api_name="/world_setup")
    # Your own mesh: uploaded beside the numbers, stood on the print where the picker puts objects.
    from test_world import ellipsoid
    mesh = ellipsoid(tmp_path / "vase.obj", centre=(500.0, -300.0, 1000.0))
    setup, glb, described = c.predict("your own mesh (glass)", 1, 1, "A4", 250, 260, 45, [handle_file(str(mesh))],
                                      api_name="/world_setup")
    world = json.loads(open(setup).read())
    assert world["objects"][0]["file"] == "vase.obj" and "glass (IOR 1.5) mesh vase.obj" in described
    low = np.array([500.0 - 30, -300.0 - 22, 1000.0 - 30]) + world["objects"][0]["offset"]
    assert abs(low[2]) < 0.5 and abs(low[0] + 30) < 0.5                 # its lowest point on the print, centred
    assert open(glb, "rb").read(4) == b"glTF"
    with pytest.raises(AppError, match="upload one mesh file"):
        c.predict("your own mesh (mirror)", 1, 1, "A4", 250, 260, 45, [], api_name="/world_setup")
