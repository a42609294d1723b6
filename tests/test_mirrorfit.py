"""Calibrating a cylinder mirror from one photo of its chart: photos the project renders itself (Mitsuba) from a
setup the fit is not told (the camera moved and turned, another lens, the mirror moved), as a phone stores them
(noise, sRGB, JPEG, no EXIF). The bounds are about 1.3 × what is measured here; bench/calibrate_mirror.py
measures more photos against the issue's bounds."""
import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from common import REPO
from photos import focal_35mm, photograph, render
from predistort.calibrate import CalibrationError
from predistort.mirrorfit import calibrate_mirror, mirror_chart, mirror_layout
from predistort.mirrorrefine import _steps, line_residuals, marker_edges
from predistort.scene import SceneConfig

NOMINAL = SceneConfig.load(REPO / "scenes" / "cylinder_mirror.json").replace(resolution=1024, film_width=640,
                                                                             film_height=480, fov=24.0)


def _turned(view, degrees):
    a = math.radians(degrees)
    return np.array([view[0] * math.cos(a) - view[1] * math.sin(a), view[0] * math.sin(a) + view[1] * math.cos(a),
                     view[2]])


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    """The true setup (camera 14 mm off and turned 3°, a 27° lens, the mirror 3.9 mm off) and its photo."""
    origin = np.array(NOMINAL.camera_origin) + [12.0, -5.0, 5.0]
    view = _turned(np.subtract(NOMINAL.camera_target, NOMINAL.camera_origin), 3.0)
    solid = NOMINAL.objects[0]
    true = NOMINAL.replace(camera_origin=tuple(origin), camera_target=tuple(origin + view), fov=27.0,
                           objects=(dataclasses.replace(solid, base=(3.0, -2.5, 0.0)),))
    chart, _ = mirror_chart(NOMINAL)
    folder = tmp_path_factory.mktemp("mirror")
    image = render(true, chart, spp=32)
    path = folder / "photo.jpg"
    path.write_bytes(photograph(image, exposure=0.9, noise=0.01, quality=85))
    # The same with EXIF's 35 mm-equivalent focal length (72 mm, whole millimetres: 0.03° off the true lens).
    (folder / "exif.jpg").write_bytes(photograph(image, exposure=0.9, noise=0.01, quality=85,
                                                 focal=focal_35mm(true)))
    return true, path


def test_the_fit_finds_the_camera_and_the_mirror(shot):
    true, path = shot
    fit = calibrate_mirror(NOMINAL, path)
    camera = np.linalg.norm(np.subtract(fit.scene.camera_origin, true.camera_origin))
    base = np.linalg.norm(np.subtract(fit.scene.objects[0].base, true.objects[0].base))
    # Measured: camera 0.04 mm, base 0.003 mm, radius 0.002 mm, lens 0.002°, from 25 markers (the coarse fit,
    # fine=False: 0.72 mm, 0.16 mm, 0.34 mm, 0.04°); the bench's photos: camera up to 1.3 mm, base 0.06 mm.
    assert camera < 1.0 and base < 0.1 and abs(fit.radius_mm - 30) < 0.1 and abs(fit.fov - 27) < 0.05, fit
    assert fit.markers >= 8 and fit.scene.film_size == (1024, 768)
    assert fit.sigma_camera_mm < 1.0 and fit.sigma_base_mm < 0.1 and fit.rim_degrees > 120 and not fit.warnings
    assert SceneConfig.from_dict(json.loads(json.dumps(fit.scene.to_dict()))) == fit.scene
    # EXIF's rounded focal length holds the lens by a prior, not fixed (fixed, the camera moved to make up for it)
    fit = calibrate_mirror(NOMINAL, path.parent / "exif.jpg")
    camera = np.linalg.norm(np.subtract(fit.scene.camera_origin, true.camera_origin))
    assert camera < 1.0 and abs(fit.fov - 27) < 0.05, fit


def test_the_chart_keeps_its_markers_off_the_mirror_and_the_commands_take_a_world(shot, tmp_path):
    true, path = shot
    layout = mirror_layout(NOMINAL)
    foot = NOMINAL.plane.uv(np.asarray(NOMINAL.objects[0].base)[None])[0] * NOMINAL.plane.size
    centres = layout.uv.mean(1) * NOMINAL.plane.size
    assert len(layout.ids) > 100 and np.linalg.norm(centres - foot, axis=1).min() > 1.25 * 30
    run = subprocess.run([sys.executable, "-m", "predistort", "chart", "--scene", str(REPO / "scenes" /
                          "cylinder_mirror.json"), "--out", str(tmp_path / "chart")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "chart" / "chart.pdf").read_bytes()[:5] == b"%PDF-"
    out = tmp_path / "fitted.json"
    run = subprocess.run([sys.executable, "-m", "predistort", "calibrate", "--scene", str(REPO / "scenes" /
                          "cylinder_mirror.json"), "--photo", str(path), "--out", str(out)], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    fitted = SceneConfig.load(out)
    assert np.linalg.norm(np.subtract(fitted.objects[0].base, true.objects[0].base)) < 0.1


def test_the_markers_edges_are_on_texel_edges_and_found_halfway_whatever_the_blur():
    """The chart's markers' corners sit on texel edges (else the printed squares' edges are up to half a texel
    from the model's: the camera came out 1–4 mm off); an edge blurred by any symmetric blur is found where
    the linear profile crosses halfway, and a step with a dark band beside it is left out."""
    for resolution in (1024, 2048):
        layout = mirror_layout(NOMINAL.replace(resolution=resolution))
        rows, cols = NOMINAL.replace(resolution=resolution).texture_shape
        texels = layout.uv * [cols, rows]
        assert np.abs(texels - np.round(texels)).max() < 1e-9
    steps = np.arange(-6, 6.01, 0.25)
    edge = np.array([0.37, -0.81, 1.3])[:, None]
    dark, light = np.full(3, 0.03), np.full(3, 0.83)
    for blur in (0.5, 1.0, 1.5):
        profile = 0.03 + 0.8 / (1 + np.exp(-(steps[None] - edge) / (0.6 * blur)))       # symmetric blur
        found, where = _steps(profile, steps, dark, light, 0.3, 3.0)
        assert found.all() and np.abs(where - edge[:, 0]).max() < 0.03, (blur, where)
    band = 0.03 + 0.8 * ((steps > 0.4) & ~((steps > 1.6) & (steps < 2.4)))[None]     # a dark band 1.6–2.4 px out
    assert not _steps(band.astype(float), steps, dark[:1], light[:1], 0.3, 3.0)[0].any()
    # A black square on white, blurred (σ 1 px) at 4× and averaged down: its edges within 0.05 px.
    import cv2
    big = np.ones((400, 400), np.float32)
    big[83:303, 121:341] = 0.02                                  # rows 20.75–75.75, columns 30.25–85.25 px
    small = cv2.resize(cv2.GaussianBlur(big, (0, 0), 4.0), (100, 100), interpolation=cv2.INTER_AREA)
    true = np.array([[30.25, 20.75], [85.25, 20.75], [85.25, 75.75], [30.25, 75.75]]) - 0.5
    points, first, second = marker_edges(small, (true + [[0.6, -0.4], [-0.3, 0.5], [0.4, 0.2], [-0.5, -0.6]])[None])
    assert len(points) > 100
    assert np.abs(line_residuals(points, true[first], true[second])).max() < 0.05


def test_a_photo_without_the_mirror_or_markers_gets_what_to_do(tmp_path):
    chart, _ = mirror_chart(NOMINAL)
    bare = tmp_path / "bare.jpg"                # the chart with the mirror somewhere else (a 5 mm stub far off)
    bare.write_bytes(photograph(render(NOMINAL.replace(objects=(dataclasses.replace(
        NOMINAL.objects[0], base=(60.0, -60.0, 0.0), height=5.0),)), chart, spp=8), quality=85))
    with pytest.raises(CalibrationError, match="mirror was not found where the setup puts it"):
        calibrate_mirror(NOMINAL, bare)
    cut = tmp_path / "cut.jpg"          # aimed low: the photo's top edge cuts off 70 % of the mirror's top's rim
    cut.write_bytes(photograph(render(NOMINAL.replace(camera_target=(0.0, 0.0, -10.0)), chart, spp=8), quality=85))
    with pytest.raises(CalibrationError, match=r"edge cuts off \d+% of it\): take the photo again with the whole "
                                               "black top in the picture"):
        calibrate_mirror(NOMINAL, cut)
    blank = tmp_path / "blank.jpg"
    blank.write_bytes(photograph(np.full((480, 640, 3), 0.6), quality=85))
    with pytest.raises(CalibrationError) as err:
        calibrate_mirror(NOMINAL, blank)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300


def test_the_api_makes_the_chart_and_calibrates_a_photo_of_a_mirror_setup(shot, app_server, tmp_path):
    """/world_chart and /world_calibrate on the real app: the setup file uploaded, the chart back as PDF, the
    photo calibrated; the fitted setup file (the same schema) within the fit's bounds of the true setup."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    true, path = shot
    setup = tmp_path / "my mirror.json"
    NOMINAL.save(setup)
    c = Client(app_server.url, verbose=False, download_files=str(tmp_path / "downloads"))
    png, pdf = c.predict(handle_file(str(setup)), [], api_name="/world_chart")
    assert open(pdf, "rb").read(5) == b"%PDF-" and open(png, "rb").read(4) == b"\x89PNG"
    fitted_file, report = c.predict(handle_file(str(setup)), [], handle_file(str(path)), api_name="/world_calibrate")
    fitted = SceneConfig.load(fitted_file)
    camera = np.linalg.norm(np.subtract(fitted.camera_origin, true.camera_origin))
    base = np.linalg.norm(np.subtract(fitted.objects[0].base, true.objects[0].base))
    assert camera < 2.5 and base < 0.6 and "markers" in report, (camera, base, report)
    with pytest.raises(AppError, match="Upload the photo"):
        c.predict(handle_file(str(setup)), [], None, api_name="/world_calibrate")


def test_a_cone_mirror_is_placed_by_rendering_its_chart(tmp_path):
    """A cone's outline against the chart put its base 3-4 mm off; rendered and compared (predistort.renderfit)
    it lands within a tenth of a millimetre on a photo from a setup the fit is not told."""
    cone = dataclasses.replace(NOMINAL.objects[0], shape="cone", height=80.0)
    nominal = NOMINAL.replace(objects=(cone,))
    origin = np.array(nominal.camera_origin) + [12.0, -5.0, 5.0]
    view = _turned(np.subtract(nominal.camera_target, nominal.camera_origin), 3.0)
    true = nominal.replace(camera_origin=tuple(origin), camera_target=tuple(origin + view), fov=27.0,
                           objects=(dataclasses.replace(cone, base=(3.0, -2.5, 0.0)),))
    chart, _ = mirror_chart(nominal)
    path = tmp_path / "cone.jpg"
    path.write_bytes(photograph(render(true, chart, spp=32), exposure=0.9, noise=0.01, quality=85))
    fit = calibrate_mirror(nominal, path)
    camera = np.linalg.norm(np.subtract(fit.scene.camera_origin, true.camera_origin))
    base = np.linalg.norm(np.subtract(fit.scene.objects[0].base, true.objects[0].base))
    # Measured: camera 0.02 mm, base 0.05 mm (the outline alone: 3.1 mm, radius 26.6 for 30).
    assert camera < 1.0 and base < 0.5 and fit.radius_mm == 30.0 and not fit.warnings, fit
