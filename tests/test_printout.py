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
    assert dpi[0] >= 150                                                    # upsampled by a whole factor
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
