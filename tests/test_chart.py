"""The calibration chart: markers only where the camera sees the print directly, at the corners the layout
says (OpenCV finds them there), enough of them in view of a camera anywhere in the calibration's envelope, a
smooth colour field behind the ball, chart.png and chart.pdf at true size."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from common import REPO
from predistort import calibrate, chart, trace
from predistort.physical import PhysicalSetup
from predistort.target import camera_frame

# Glass (IOR 1.5) at the advised print distance, the camera 200 mm from the ball, 45°, a 4:3 film.
SCENE = PhysicalSetup(ior=1.5, print_distance_mm=225.0, camera_distance_mm=200.0, fov_deg=45.0, resolution=256,
                      film_width=160, film_height=120).to_scene()
# The advised glass ball with the camera 100 mm from it (the tutorial's distance) and a 70° lens: the ball fills
# most of a 4:3 photo, and only strips beside it show the print (issue 34).
TIGHT = PhysicalSetup(ior=1.5, print_distance_mm=225.0, camera_distance_mm=100.0, fov_deg=70.0, resolution=256,
                      film_width=160, film_height=120).to_scene()


def test_markers_avoid_the_ball_and_what_it_shows():
    layout = chart.layout(SCENE)
    assert len(layout.ids) == len(set(layout.ids.tolist())) >= chart.MIN_VISIBLE
    assert chart._in_view(SCENE, layout.corners).sum() >= chart.MIN_VISIBLE
    # No marker corner is hidden by the ball from the nominal camera ...
    origin, centre = np.array(SCENE.camera_origin), np.array(SCENE.sphere_center)
    for xy in layout.corners.reshape(-1, 2):
        seg = np.array([*xy, 0.0]) - origin
        along = np.clip((centre - origin) @ seg / (seg @ seg), 0, 1)
        assert np.linalg.norm(origin + along * seg - centre) > SCENE.sphere_radius
    # ... and no ray through the ball's middle (up to IMPACT_SHOWN of its radius) lands on a marker's slot.
    o, left, up, forward = camera_frame(SCENE)
    t, s = np.meshgrid(np.linspace(0.01, 0.99, 120), np.linspace(0.01, 0.99, 160), indexing="ij")
    d = trace.film_directions(torch.from_numpy(np.stack([left, up, forward], 1)), SCENE.fov, (160, 120),
                              torch.from_numpy(s.ravel()), torch.from_numpy(t.ravel()))
    hit = trace.trace(torch.from_numpy(o), d, torch.tensor(centre), SCENE.sphere_radius, SCENE.sphere_ior,
                      SCENE.plane_scale)
    shown = (hit["hit"] & (hit["impact"] < chart.IMPACT_SHOWN)).numpy()
    assert shown.sum() > 1000
    x, y = ((hit[k].numpy()[shown] * 2 - 1) * SCENE.plane_scale for k in ("u", "v"))
    assert not layout.covers(x, y).any()


def test_opencv_finds_every_marker_at_the_corners_the_layout_gives():
    texture = chart.make_chart(SCENE)
    assert texture.shape == (256, 256, 3) and texture.dtype == np.float32
    assert texture.min() >= 0 and texture.max() <= 1
    scale = 4                                                    # the print seen square-on, 4 px per texel
    big = cv2.resize((texture * 255).astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    pad = 4 * scale                                              # the print lies on a white table
    big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    detector = calibrate._detector()                            # the calibration's: subpixel corners
    corners, ids, _ = detector.detectMarkers(cv2.cvtColor(big, cv2.COLOR_RGB2GRAY))
    layout = chart.layout(SCENE)
    assert sorted(ids.ravel().tolist()) == sorted(layout.ids.tolist())
    texel = 2 * SCENE.plane_scale / SCENE.resolution
    errors = []
    for quad, marker_id in zip(corners, ids.ravel()):
        pixels = quad.reshape(4, 2) - pad
        world = ((pixels + 0.5) / scale) * texel - SCENE.plane_scale      # pixel centres at integers
        expected = layout.corners[list(layout.ids).index(marker_id)]
        errors.append(np.abs(world - expected).max() / texel)
    # ArUco's corners of a blurred marker: 0.2 texel off on average, 0.8 at worst (measured); a layout off by
    # a cell (3.6 texels) or mirrored would be far off.
    assert np.mean(errors) < 0.35 and max(errors) < 1.0, errors


def test_markers_stay_in_view_of_a_camera_anywhere_in_the_envelope():
    """Of the envelope's cameras (moved 20 mm, turned 5°, the ball 5 mm off, a lens 5° narrower), 95 % see at
    least MIN_VISIBLE whole markers clear of the ball, tightly framed too. The layout before issue 34 (the coarsest
    grid that left 4 in the nominal view: 11 slots a side at 100 mm) left too few in 39 % of them there."""
    for scene in (SCENE, TIGHT):
        layout = chart.layout(scene)
        share, nominal = chart.robustness(scene, layout)
        assert share >= chart.ROBUST and nominal >= chart.MIN_VISIBLE, (share, nominal)
        assert layout.slots in chart.GRIDS and layout.cell / (2 * scene.plane_scale / scene.resolution) >= \
            chart.MIN_CELL_TEXELS
    quads, cell = chart._grid(TIGHT, chart._occupied(TIGHT), 11)
    before = chart.Layout(ids=np.arange(len(quads)), corners=quads, cell=cell, slots=11)
    assert chart._in_view(TIGHT, before.corners).sum() >= 4                      # what the old rule asked
    assert chart.robustness(TIGHT, before)[0] < 0.7
    # A chart that cannot be robust says what to do (the chart command prints it); these need no note.
    assert chart.framing_note(SCENE) is None and chart.framing_note(TIGHT) is None
    narrower = TIGHT.replace(fov=60.0)
    assert "move the camera farther from the ball or widen its field of view" in chart.framing_note(narrower)
    # Computed from the scene alone: the same layout again, without the cache.
    again = chart.layout.__wrapped__(TIGHT)
    assert np.array_equal(again.corners, chart.layout(TIGHT).corners) and again.slots == chart.layout(TIGHT).slots


def test_the_field_behind_the_ball_is_smooth_and_one_to_one():
    x, y = np.meshgrid(np.linspace(-1, 1, 201), np.linspace(-1, 1, 201))
    colour = chart.field_colour(x * SCENE.plane_scale, y * SCENE.plane_scale, SCENE)
    assert colour.min() >= 0.1 and colour.max() <= 0.9
    # One to one: distinct points have distinct colours (the nearest other colour is far from equal).
    flat = colour.reshape(-1, 3)[::37]
    gaps = np.linalg.norm(flat[:, None] - flat[None], axis=-1) + np.eye(len(flat)) * 9
    assert gaps.min() > 1e-3
    # Steepest in the middle, which a ball far from its focus shows shrunk: red over 1 % of the print's side.
    step = 0.01 * SCENE.plane_scale
    middle = chart.field_colour(np.array(step), np.array(0.0), SCENE)[0] - 0.5
    edge = chart.field_colour(np.array(0.9 * SCENE.plane_scale), 0.0, SCENE)[0] - \
        chart.field_colour(np.array(0.9 * SCENE.plane_scale - step), 0.0, SCENE)[0]
    assert middle > 10 * abs(edge)


def test_a_ball_that_fills_the_view_leaves_no_room_for_markers():
    close = PhysicalSetup(ior=1.5, print_distance_mm=225.0, camera_distance_mm=60.0, fov_deg=45.0,
                          resolution=128).to_scene()
    with pytest.raises(ValueError, match="Move the camera farther"):
        chart.layout(close)


def test_the_chart_command_writes_the_png_and_the_pdf_at_true_size(tmp_path):
    scene = tmp_path / "S.json"
    SCENE.save(scene)
    run = subprocess.run([sys.executable, "-m", "predistort", "chart", "--scene", str(scene), "--out",
                          str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    png = Image.open(tmp_path / "out" / "chart.png")
    assert png.size == (256, 256)
    assert np.array_equal(np.asarray(png), (chart.make_chart(SCENE) * 255 + 0.5).astype(np.uint8))
    import re
    from predistort.printout import MARGIN_MM, PT_PER_MM
    data = (tmp_path / "out" / "chart.pdf").read_bytes()
    box = [float(v) for v in re.search(rb"/MediaBox \[ *([\d. ]+?) *\]", data).group(1).split()]
    side = 2 * SCENE.plane_scale * SCENE.units_mm                 # the print's true side, mm
    assert (box[2] - box[0]) / PT_PER_MM == pytest.approx(side + MARGIN_MM["left"] + MARGIN_MM["right"], abs=0.05)
