"""photofit.Model's colours under the local exposure (Model.scaled): the Jacobian's analytic columns for the gains
against finite differences of the residuals, and the exposure's freedom (a gain common to the three colours, a
local gain such as a phone's tone curve) left out of the residuals; and the fit choosing its pixels again where
it converges. On tests/test_jpeg.py's model: a photo that is its own prediction at a known θ."""
import cv2
import numpy as np
import torch

from predistort import photofit, trace

from test_jpeg import model_and_photo  # noqa: F401  (the fixture)


def _off(theta):
    """θ with the gains off the photo's (so that their columns are not near 0)."""
    moved = theta.clone()
    moved[11:14] = moved[11:14] * torch.tensor([1.08, 1.0, 0.93], dtype=moved.dtype)
    return moved


def test_the_gains_columns_are_the_residuals_derivatives(model_and_photo):
    model, theta, _, _ = model_and_photo
    model.choose_pixels(theta)
    theta = _off(theta)
    r0 = model.residuals(theta)
    J = model.jacobian(theta, r0)
    for k in (11, 13):                                 # red and blue: analytic
        moved = theta.clone()
        moved[k] += 1e-6
        numeric = (model.residuals(moved) - r0) / 1e-6
        assert numeric.abs().max() > 1.0               # the gain moves the colours' residuals ...
        assert torch.allclose(J[:, k], numeric, rtol=0, atol=1e-3 * float(numeric.abs().max())), k   # ... as J says
    assert not J[:, 12].any()                          # green: held


def test_a_common_or_a_slowly_varying_gain_leaves_the_residuals_as_they_were(model_and_photo):
    """The three gains × 1.3 change nothing (where nothing clips); and at the photo's own θ, the photo × a gain
    that varies over the photo far more slowly than the local exposure's reach (a tone curve's, a vignette's)
    leaves the colours' residuals near 0, where a gain that varies pixel by pixel does not."""
    model, theta, _, _ = model_and_photo
    model.choose_pixels(theta)
    theta = _off(theta)
    r0 = model.residuals(theta)
    common = theta.clone()
    common[11:14] *= 1.3
    w, h = model.work_size
    pixels = model.pixels.numpy()
    colours = slice(model.whiten.shape[0], model.whiten.shape[0] + 3 * len(pixels))
    # (where no ray clips at either exposure: the sensor's clip is not a gain; each pixel's own exposure, as the
    # first fit's, so that no clipped neighbour's enters)
    reach, model.gain_blur = model.gain_blur, 0.0
    r0 = model.residuals(theta)
    dark = ((model.predict(common, model.pixels) < 0.9).all(-1)[:, None] * torch.ones(1, 3, dtype=torch.bool)).reshape(-1)
    assert dark.float().mean() > 0.3
    assert torch.allclose(model.residuals(common)[colours][dark], r0[colours][dark], atol=1e-6)
    model.gain_blur = reach
    theta = model_and_photo[1]                         # the photo's own
    r0 = model.residuals(theta)
    x, y = (pixels % w) / w, (pixels // w) / h
    observed = model.observed.clone()
    model.observed = observed * torch.from_numpy(1.3 * (1 + 0.1 * x - 0.05 * y))[:, None]
    slow = model.residuals(theta)
    model.observed = observed * torch.from_numpy(1 + 0.3 * (pixels % 2))[:, None]
    fast = model.residuals(theta)
    model.observed = observed
    change = lambda r: float((r[colours] - r0[colours]).abs().mean())          # noqa: E731
    assert change(slow) < 0.1 * change(fast), (change(slow), change(fast))


def test_the_local_exposure_sums_as_opencvs_gaussian_blur(model_and_photo):
    """Model.local (two matrix products, photofit._gaussian) is cv2.GaussianBlur of the fitted pixels' values."""
    model, theta, _, _ = model_and_photo
    model.choose_pixels(theta)
    assert model.gain_blur > 5
    values = torch.rand(len(model.pixels), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w, h = model.work_size
    image = np.zeros(w * h)
    image[model.pixels.numpy()] = values.numpy()
    blurred = cv2.GaussianBlur(image.reshape(h, w), (0, 0), model.gain_blur, borderType=cv2.BORDER_REFLECT)
    np.testing.assert_allclose(model.local(values).numpy(), blurred.ravel()[model.pixels.numpy()], rtol=1e-12)


def test_a_pixels_colour_is_the_mean_of_its_four_rays_each_clipped(model_and_photo):
    """Model.predict traces a pixel's 2 × 2 rays together: each ray's colour, clipped at 1 as the sensor clips,
    averaged; here at gains bright enough that some rays clip and others beside them do not."""
    model, theta, _, _ = model_and_photo
    model.choose_pixels(theta)
    bright = theta.clone()
    bright[11:14] = bright[11:14] * 1.6
    pixels = model.pixels[::7]
    w, h = model.work_size
    col, row = (pixels % w).double(), (pixels // w).double()
    gain = bright[11:14] * model.vignette(bright, pixels)[:, None]
    spacing = 0.5 / model.radius_px(bright)
    mean, clipped = 0, 0
    for dx in (0.25, 0.75):
        for dy in (0.25, 0.75):
            traced = model.rays(bright, (col + dx) / w, (row + dy) / h)
            coverage = ((1 - traced["impact"]) / spacing + 0.5).clamp(0, 1)
            colour = trace.look(model.texture, traced, coverage) * gain
            clipped = clipped + (colour > 1).any(-1).double()
            mean = mean + colour.clamp(max=1.0) / 4
    assert ((clipped > 0) & (clipped < 4)).sum() > 10                 # pixels whose rays clip apart
    torch.testing.assert_close(model.predict(bright, pixels), mean, rtol=0, atol=1e-12)


def test_the_fit_chooses_its_pixels_again_where_it_converges(model_and_photo, monkeypatch):
    """With `follow`, the pixels (and the JPEG's bias) the fit ends on are chosen again where it converged or
    ran out of iterations, not only at a start several millimetres off, which they would favour
    (calibrate.FOLLOW's measure); without, only at the start."""
    model, theta, _, _ = model_and_photo
    monkeypatch.setattr(photofit, "FOLLOW_ITERATIONS", 1)
    start = theta.clone()
    start[7:10] += torch.tensor([0.03, -0.02, 0.04], dtype=theta.dtype)       # the ball ~5 mm off
    chosen, choose = [], model.choose_pixels
    monkeypatch.setattr(model, "choose_pixels", lambda at, jpeg=False: (chosen.append(at.clone()), choose(at, jpeg))[1])
    choose(start)                                                             # as calibrate.start_for leaves it
    once = photofit.fit(model, start, reselect=(0,), iterations=2, covariance=False)[0]
    assert len(chosen) == 1 and torch.equal(chosen[0][:11], start[:11])
    del chosen[:]
    choose(start)
    followed = photofit.fit(model, start, reselect=(0,), iterations=2, covariance=False, follow=1)[0]
    assert len(chosen) == 2
    assert torch.allclose(chosen[1][:11], once[:11], atol=1e-12)             # where the first two iterations ended
    assert float((once[7:10] - start[7:10]).norm()) > 0.01                   # (which is not the start)
    assert not torch.equal(followed, once)                                  # and one more iteration from there


def test_the_exif_focal_lengths_prior_is_flat_within_its_rounding():
    """A phone writes the 35 mm-equivalent focal length in whole millimetres: a true 29.49 mm is written 29. The
    prior leaves every focal length that rounds to the EXIF's free, and holds those beyond by FOCAL_PRIOR (a
    Gaussian about 29 pulled bench/chart_envelope.py's 100 mm photo 1 at 1920 × 1440 0.12° wide, the ball 0.59 mm
    off along the depth–focal valley)."""
    import math
    f = 29.0
    inside = [photofit.focal_prior(torch.tensor(math.log(v / f), dtype=torch.float64), f) for v in (28.6, 29.0, 29.49)]
    assert [float(r) for r in inside] == [0.0, 0.0, 0.0]
    for v, sign in ((30.0, 1), (28.0, -1)):
        r = float(photofit.focal_prior(torch.tensor(math.log(v / f), dtype=torch.float64), f))
        mm = abs(math.log(v / f)) * f - photofit.FOCAL_ROUNDING         # the millimetres beyond the rounding
        assert math.isclose(r, sign * mm / photofit.FOCAL_PRIOR, rel_tol=1e-12) and abs(r) > 1.0
