"""The print at true size: the PDF's page and picture, and the PNG's DPI, measure what the setup says."""
import re
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from predistort.physical import PhysicalSetup
from predistort.printout import BAR_MM, MARGIN_MM, PT_PER_MM, margin_lines, print_image, write_pdf, write_print
from predistort.procedural import texture

SETUP = PhysicalSetup(ball_diameter_mm=80.0, ior=1.52, print_distance_mm=190.0, camera_distance_mm=90.0,
                      resolution=32)


def _pdf_page_and_picture(path):
    """(MediaBox width, height) and the picture's placement (x, y, width, height), all in points."""
    data = path.read_bytes()
    box = [float(v) for v in re.search(rb"/MediaBox \[ *([\d. ]+?) *\]", data).group(1).split()]
    for stream in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        try:
            content = zlib.decompress(stream.group(1))
        except zlib.error:
            continue
        # matplotlib places the image XObject with "q 1 0 0 1 x y cm w 0 0 -h 0 h cm /I1 Do" (y flipped)
        place = re.search(rb"1 0 0 1 ([\d.]+) ([\d.]+) cm ([\d.]+) 0 0\s+-([\d.]+) 0 [\d.]+ cm /I\d+ Do",
                          content[:20000])
        if place:
            return (box[2] - box[0], box[3] - box[1]), tuple(float(v) for v in place.groups())
    raise AssertionError("no placed picture in the PDF")


def test_the_pdf_page_and_picture_have_the_stated_size(tmp_path):
    side = SETUP.print_size_mm
    path = write_pdf(texture(1, 32), SETUP, tmp_path / "print.pdf")
    (width, height), (x, _, w, h) = _pdf_page_and_picture(path)
    assert w / PT_PER_MM == pytest.approx(side, abs=0.01) and h / PT_PER_MM == pytest.approx(side, abs=0.01)
    assert width / PT_PER_MM == pytest.approx(side + MARGIN_MM["left"] + MARGIN_MM["right"], abs=0.01)
    assert height / PT_PER_MM > side + MARGIN_MM["top"] + 10                # room for the text below
    assert x / PT_PER_MM == pytest.approx(MARGIN_MM["left"], abs=0.01)
    # The setup is written in the margin (matplotlib embeds text as glyph codes; the words are checked in
    # margin_lines, the sizes here).
    lines = " ".join(margin_lines(SETUP))
    for words in ("80 mm diameter", "190 mm in front of the print's centre", "90 mm from the ball's centre",
                  f"{side:.1f} × {side:.1f} mm", f"{BAR_MM:g} mm long"):
        assert words in lines


def test_the_png_prints_at_the_true_size_and_shows_the_texture(tmp_path):
    tex = texture(2, 32)
    pdf, png = write_print(tex, SETUP, tmp_path)
    assert pdf.exists()
    image = Image.open(png)
    dpi = image.info["dpi"]
    assert dpi[0] == pytest.approx(dpi[1])
    assert image.width / dpi[0] * 25.4 == pytest.approx(SETUP.print_size_mm, rel=1e-3)
    assert dpi[0] >= 300                                                    # upsampled by a whole factor
    assert image.width % 32 == 0
    # At its own resolution (no upsampling) the printed picture is the texture, 8-bit.
    exact, dpi1 = print_image(tex, SETUP, min_dpi=1)
    assert exact.size == (32, 32) and dpi1 == pytest.approx(32 / (SETUP.print_size_mm / 25.4))
    assert np.abs(np.asarray(exact) / 255.0 - tex.numpy()).max() <= 0.5 / 255 + 1e-6
    # Upsampled: each texel's centre keeps its colour on average (bilinear, as the renderer reads it).
    small = np.asarray(image.resize((32, 32), Image.BOX)) / 255.0
    assert np.abs(small - tex.numpy()).mean() < 0.05


def test_a_texture_that_is_not_square_is_refused():
    with pytest.raises(ValueError, match="square RGB"):
        print_image(torch.zeros(16, 32, 3), SETUP)


def test_the_print_resolution_follows_the_print_size():
    from predistort.printout import texture_resolution_for
    assert texture_resolution_for(340.0) == 4032 and 4032 / (340 / 25.4) >= 300     # ≥ 300 dpi up to 340 mm
    assert texture_resolution_for(240.0) == 2880
    assert texture_resolution_for(1000.0) == 4096                                   # at most 4096
    assert texture_resolution_for(20.0) == 256


def test_the_pdf_embeds_the_picture_at_its_full_resolution(tmp_path):
    tex = texture(2, 32)
    image, dpi = print_image(tex, SETUP)
    path = write_pdf(tex, SETUP, tmp_path / "print.pdf")
    widths = [int(w) for w in re.findall(rb"/Width (\d+)", path.read_bytes())]
    assert image.width in widths and dpi >= 300
    assert max(widths) / (SETUP.print_size_mm / 25.4) >= 300


TINY = PhysicalSetup(ball_diameter_mm=10.0, ior=1.5, print_distance_mm=12.0, camera_distance_mm=12.0, resolution=32)


def test_a_picture_is_pre_distorted_at_the_prints_resolution_on_the_cameras_film(tmp_path):
    """A 28.8 mm print needs 384 px for 300 dpi; the camera's picture stays 32×32: the transport is 32² × 384²,
    and the solve at 384² renders closer to the ball-free view than the plain picture does."""
    from common import picture_paths
    from predistort.printout import predistort_for_print
    from predistort.render import Renderer
    from predistort.target import target_for
    from predistort.images import l1, prepare_texture
    texture_, scene = predistort_for_print(str(picture_paths()[0]), TINY)
    assert scene.resolution == 384 and scene.film_size == (32, 32) and texture_.shape == (384, 384, 3)
    picture, _ = prepare_texture(str(picture_paths()[0]), 384, fit="crop")
    goal = target_for(picture, scene)
    renderer = Renderer(scene)
    plain = l1(renderer.render(picture, spp=64).cpu(), goal)
    fixed = l1(renderer.render(texture_, spp=64).cpu(), goal)
    assert fixed < 0.6 * plain, (fixed, plain)
    image, dpi = print_image(texture_, TINY)
    assert image.width == 384 and dpi >= 300                               # its own pixels: no upsampling


def test_the_print_command_pre_distorts_a_picture_at_the_prints_resolution(tmp_path):
    from common import REPO, run_python
    scene = tmp_path / "tiny.json"
    TINY.to_scene().save(scene)
    result = run_python(["-m", "predistort", "print", "--scene", str(scene), "--picture",
                         str(REPO / "examples" / "landscape.png"), "--out-dir", str(tmp_path / "out")],
                        env={"PREDISTORT_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "at 384×384 (the print's resolution) for a 32×32 camera picture" in result.stdout
    png = Image.open(tmp_path / "out" / "print.png")
    assert png.width == 384 and png.info["dpi"][0] >= 300


def test_a_print_on_home_paper_is_one_sheet_or_tiles_each_with_a_ruler(tmp_path):
    """An A3 print (420 × 297 mm) on A4 is 2 × 2 landscape tiles (portrait would need 3 × 2) and an assembly
    sheet, every page A4; a print that fits is one A4 sheet; a bad paper name gets a sentence."""
    import re
    from PIL import Image
    from predistort.paper import layout, paper_size, write_paper_pdf
    image = Image.new("RGB", (840, 594), (200, 30, 30))
    plan = layout((420, 297), "a4")
    assert (plan.rows, plan.cols, plan.pages, plan.paper_mm) == (2, 2, 5, (297.0, 210.0))
    path, _ = write_paper_pdf(image, (420, 297), "a4", tmp_path / "tiles.pdf", "test")
    data = path.read_bytes()
    boxes = [tuple(round(float(v) / 72 * 25.4) for v in m)
             for m in re.findall(rb"/MediaBox \[ *0 0 ([\d.]+) ([\d.]+)", data)]
    assert len(boxes) == 5 and set(boxes) <= {(210, 297), (297, 210)}
    # Each tile's part is at most the usable area, and the tiles cover the print with the overlap.
    assert plan.x0s[0] == 0 and plan.y0s[0] == 0
    assert plan.x0s[-1] + plan.tile_mm[0] >= 420 - 1e-9 and plan.y0s[-1] + plan.tile_mm[1] >= 297 - 1e-9
    assert all(b - a == plan.tile_mm[0] - 10 for a, b in zip(plan.x0s, plan.x0s[1:]))     # 10 mm shared
    one, single = write_paper_pdf(image, (150, 100), "a4", tmp_path / "one.pdf", "test")
    assert single.pages == 1 and len(re.findall(rb"/MediaBox", one.read_bytes())) == 1
    assert paper_size("300x450") == (300.0, 450.0) and paper_size("Letter") == (215.9, 279.4)
    with pytest.raises(ValueError, match="--paper must be one of a4, letter"):
        paper_size("a5-ish")


def test_the_tiles_put_together_reproduce_the_print_at_true_size(tmp_path):
    """A 420 × 297 mm print on A4: each tile page rasterised (pdfium), its picture part cut where the layout says
    and put at its place in the print; together they are the print, at true size (the page is A4 at the
    raster's scale, the tiles' parts match the picture, and a 3 mm misplacement would be seen)."""
    import pypdfium2 as pdfium
    from PIL import Image
    from predistort.paper import MARGIN_MM, write_paper_pdf
    rng = np.random.default_rng(7)                      # a picture with detail everywhere: smooth random colours
    small = rng.uniform(0, 255, (12, 17, 3)).astype(np.uint8)
    image = Image.fromarray(small).resize((840, 594), Image.BICUBIC)
    W, H = 420.0, 297.0
    path, plan = write_paper_pdf(image, (W, H), "a4", tmp_path / "tiles.pdf", "test")
    pw, ph = plan.paper_mm
    s = 60 / 25.4                                       # pixels per mm of the raster (60 dpi)
    canvas = np.zeros((round(H * s), round(W * s), 3))
    pdf = pdfium.PdfDocument(str(path))
    assert len(pdf) == plan.pages == plan.rows * plan.cols + 1
    k = 0
    for y0 in plan.y0s:
        for x0 in plan.x0s:
            page = np.asarray(pdf[k].render(scale=60 / 72).to_pil().convert("RGB"), float) / 255
            k += 1
            assert abs(page.shape[1] / s - pw) < 1 and abs(page.shape[0] / s - ph) < 1      # A4, not scaled
            w, h = min(plan.tile_mm[0], W - x0), min(plan.tile_mm[1], H - y0)
            left, top = MARGIN_MM, ph - MARGIN_MM                               # the layout's tile corner (mm)
            part = page[round((ph - top) * s) + 2:round((ph - top + h) * s) - 2, round(left * s) + 2:
                        round((left + w) * s) - 2]
            rows, cols = part.shape[:2]
            canvas[round(y0 * s) + 2:round(y0 * s) + 2 + rows, round(x0 * s) + 2:round(x0 * s) + 2 + cols] = part
    want = np.asarray(image.resize((canvas.shape[1], canvas.shape[0]), Image.BILINEAR), float) / 255
    inside = canvas.sum(2) > 0                          # every place a tile covered (all but 2 px seams)
    assert inside.mean() > 0.95
    error = np.abs(canvas - want)[inside].mean()
    shift = round(3 * s)                                # the same, 3 mm off
    shifted = np.abs(canvas[:, shift:] - want[:, :-shift])[inside[:, shift:]].mean()
    assert error < 0.03 and shifted > 3 * error, (error, shifted)
    print(f'tiles against the print: {error:.4f}, 3 mm off: {shifted:.4f}')
