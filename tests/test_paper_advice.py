"""Advice for the paper a person has: the best setup whose print fits one sheet, and what tiles would gain
(issue 33: ``advise --paper a4``)."""
import pytest

from predistort.advise import NEAREST_FOCUS_MM, advise_on_paper
from predistort.paper import layout, one_sheet_mm
from predistort.physical import PhysicalSetup


def test_one_sheet_holds_the_largest_print_of_its_aspect():
    assert one_sheet_mm("a4") == pytest.approx((190.0, 190.0))             # 210 − 2 × 10 margins
    w, h = one_sheet_mm("a4", aspect=297 / 210)             # a landscape print: the sheet turned, 277 × 174 usable
    assert h == pytest.approx(210 - 20 - 16) and w == pytest.approx(h * 297 / 210)
    assert layout(one_sheet_mm("letter"), "letter").pages == 1
    assert layout((one_sheet_mm("letter")[0] + 1,) * 2, "letter").pages > 1


def test_a_print_that_cannot_fit_one_sheet_names_the_lens_that_would():
    ball = PhysicalSetup(ior=1.517, ball_diameter_mm=80, print_distance_mm=100, camera_distance_mm=250, fov_deg=60)
    with pytest.raises(ValueError, match=r"at most \d+° across the square picture") as info:
        advise_on_paper(ball, "a4")
    assert "tiles" in str(info.value)


def test_the_sheet_advice_fits_the_sheet_and_the_tiles_advice_is_no_worse():
    # A 30° lens 250 mm from an 80 mm ball: the print must come nearer the ball than the free search puts it.
    ball = PhysicalSetup(ior=1.517, ball_diameter_mm=80, print_distance_mm=100, camera_distance_mm=250, fov_deg=30,
                         resolution=32)
    sheet, tiles = advise_on_paper(ball, "150x200", grid_points=3)
    assert sheet.best.print_size_mm <= one_sheet_mm("150x200")[0] + 0.5
    assert tiles.best_ratio <= sheet.best_ratio + 1e-9 or tiles.best.print_size_mm > sheet.best.print_size_mm
    assert sheet.best.camera_distance_mm >= min(250, 40 + NEAREST_FOCUS_MM) - 0.5
    assert 0 < sheet.best_ratio < 1
