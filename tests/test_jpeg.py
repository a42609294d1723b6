"""The photo's JPEG modelled: its encoding read from the file, a round trip through it that reproduces the file's
own pixels (stored turned, too), and the fit's bias δ near clipped colours equal to what the JPEG did to a photo
made by the fit's own optics."""
import io
import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from predistort import chart, photofit, trace
from predistort.calibrate import read_photo
from predistort.encoding import jpeg_encoding, jpeg_round_trip, linear_to_srgb, srgb_to_linear
from predistort.images import load_image
from predistort.physical import PhysicalSetup
from predistort.target import camera_frame

# 352 × 264: not whole 16-pixel blocks down the side, so a round trip on blocks that fall elsewhere than the
# file's differs; the work size (256 × 192) has the photo's aspect exactly, so the model's rays are the photo's.
SCENE = PhysicalSetup(ior=1.5, print_distance_mm=225.0, camera_distance_mm=200.0, fov_deg=45.0, resolution=128,
                      film_width=352, film_height=264).to_scene()
GAINS = (1.15, 1.05, 1.1)                        # over-exposed: the chart's whites clip


def _saved(rgb, orientation=None, quality=80, subsampling=2):
    """JPEG bytes of upright `rgb`, stored turned with EXIF `orientation` 6 when asked (as photos.photograph)."""
    picture, exif = Image.fromarray(rgb), Image.Exif()
    if orientation:
        picture = picture.transpose(Image.Transpose.ROTATE_90)
        exif[0x0112] = orientation
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality, subsampling=subsampling, exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize("orientation", [None, 6])
def test_a_round_trip_with_the_files_encoding_gives_the_files_own_pixels(orientation):
    rgb = (np.random.default_rng(0).random((264, 352, 3)) * 255).astype(np.uint8)
    rgb = cv2.GaussianBlur(rgb, (5, 5), 0)
    data = _saved(rgb, orientation)
    encoding = jpeg_encoding(data)
    assert encoding["subsampling"] == 2 and encoding["orientation"] == (orientation or 1)
    decoded = np.asarray(load_image(data))
    assert decoded.shape == rgb.shape and np.abs(decoded.astype(int) - rgb).max() > 10     # the JPEG's loss ...
    assert np.array_equal(jpeg_round_trip(rgb, encoding), decoded)                       # ... reproduced exactly
    # Blocks that fall elsewhere (the round trip told the file is not turned) do not reproduce it.
    if orientation:
        assert not np.array_equal(jpeg_round_trip(rgb, {**encoding, "orientation": 1}), decoded)


def test_only_a_jpeg_has_an_encoding(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert jpeg_encoding(tmp_path / "a.png") is None
    assert jpeg_encoding(b"not a picture") is None
    assert jpeg_encoding(_saved(rgb, quality=95))["qtables"] != jpeg_encoding(_saved(rgb, quality=80))["qtables"]


@pytest.fixture(scope="module")
def model_and_photo():
    """A :class:`photofit.Model` at the true θ of a photo that is exactly its prediction at full size (2 × 2
    rays a pixel, θ's gains, clipped), sRGB-encoded, stored turned as a JPEG at quality 80; and that photo
    without the JPEG."""
    origin, left, up, forward = camera_frame(SCENE)
    texture = chart.make_chart(SCENE)
    theta = torch.tensor([*origin, 0, 0, 0, 0, *SCENE.sphere_center, SCENE.sphere_ior, *GAINS, 0, 0],
                         dtype=torch.float64)          # no lens distortion, no vignette
    width, height = SCENE.film_size
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    light = 0
    for dx in (0.25, 0.75):                       # 2 × 2 rays a photo pixel, each pixel clipped
        for dy in (0.25, 0.75):
            d = trace.film_directions(torch.from_numpy(np.stack([left, up, forward], 1)), SCENE.fov, (width, height),
                                      torch.from_numpy((cols.ravel() + dx) / width),
                                      torch.from_numpy((rows.ravel() + dy) / height))
            traced = trace.trace(torch.from_numpy(origin), d, torch.tensor(SCENE.sphere_center), SCENE.sphere_radius,
                                 SCENE.sphere_ior, SCENE.plane_scale)
            light = light + trace.look(torch.from_numpy(np.asarray(texture, np.float64)), traced) / 4
    light = (light * torch.tensor(GAINS)).clamp(0, 1)
    codes = np.round(linear_to_srgb(light.numpy().reshape(height, width, 3)) * 255).astype(np.uint8)
    photo = read_photo(_saved(codes, orientation=6))
    model = photofit.Model(SCENE, chart.layout(SCENE), texture, photo, np.zeros((4, 3)), np.zeros((4, 2)),
                           np.stack([left, up, forward], 1), math.tan(math.radians(SCENE.fov) / 2))
    without = cv2.resize(srgb_to_linear(codes / 255).astype(np.float32), model.work_size, interpolation=cv2.INTER_AREA)
    return model, theta, photo, without


def test_the_jpeg_bias_near_clipped_colours_is_what_the_jpeg_did_to_the_photo(model_and_photo):
    """δ is the photo's JPEG error exactly where it is modelled (near a colour predicted clipped), zero elsewhere;
    the fit's choice with `jpeg` takes it off the photo's colours."""
    model, theta, photo, without = model_and_photo
    w, h = model.work_size
    model.choose_pixels(theta)
    plain = model.observed.clone()
    model.choose_pixels(theta, jpeg=True)
    corrected = model.observed
    s, t = [torch.from_numpy((g.ravel() + 0.5) / n) for g, n in zip(np.meshgrid(np.arange(w), np.arange(h)), (w, h))]
    light = (trace.look(model.texture, model.rays(theta, s, t)) * theta[11:14]).numpy()
    bright = (light >= photofit.CLIPPED).any(-1).reshape(h, w)
    assert 0.05 < bright.mean() < 0.9                                     # over-exposed: much, not all, clips
    delta = model.jpeg_bias(theta, bright).numpy().reshape(h, w, 3)
    error = photo.linear - without                                        # what the JPEG did, work size, linear
    block = math.ceil(photofit.JPEG_BLOCK_PX * w / photo.size[0])         # work pixels within a JPEG block
    near = cv2.dilate(bright.astype(np.uint8), np.ones((2 * block + 1,) * 2, np.uint8)) > 0
    assert 0.2 < near.mean() < 0.95 and not delta[~near].any()
    assert np.abs(error[near]).max() > 0.01                               # a bias worth modelling ...
    assert np.abs(delta[near] - error[near]).max() < 1e-5                 # ... and δ is it
    changed = (corrected - plain).numpy()
    assert np.allclose(changed, -delta.reshape(-1, 3)[model.pixels.numpy()])
    assert np.abs(changed).max() > 0.01
