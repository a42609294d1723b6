"""predistort.train against the tutorial's own code (bench/tutorial_reference.py): same initial weights from the
same seed, same weight gradient from the same weights and render seeds, same loss trajectory; the default
optimiser is the fused Adam. Speed and memory are measured by bench/tutorial.py, not asserted here."""
import sys

import pytest
import torch
from PIL import Image

from common import REPO, picture_textures
from predistort.layers import TutorialLayer
from predistort.render import Renderer
from predistort.scene import DEFAULT
from predistort.train import Recipe, adam, train

sys.path.insert(0, str(REPO / "bench"))
from tutorial_reference import run_tutorial  # noqa: E402

RES = 16


@pytest.fixture(scope="module")
def textures():
    return picture_textures(RES)


@pytest.fixture(scope="module")
def texture_files(textures, tmp_path_factory):
    """The same textures as PNG files, for the tutorial's code (which loads files); lossless (8-bit / 255)."""
    folder = tmp_path_factory.mktemp("textures")
    paths = []
    for k, t in enumerate(textures):
        paths.append(str(folder / f"image_{k + 1:03d}.png"))
        Image.fromarray((t * 255).round().to(torch.uint8).numpy()).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def renderer():
    return Renderer(DEFAULT.replace(resolution=RES))


def ours(seed=0):
    torch.manual_seed(seed)
    return TutorialLayer(RES)


def test_same_seed_gives_the_tutorials_initial_weights(texture_files):
    reference = run_tutorial(texture_files, iteration_count=0).model
    assert torch.equal(reference.layers[0].weight, ours().layers[0].weight)
    assert torch.equal(reference.layers[0].bias, ours().layers[0].bias)


def test_same_gradient_as_the_tutorials_code(texture_files, renderer, textures):
    """One iteration each. Both loops clear gradients at the start of an iteration, so after one iteration
    `.grad` still holds the gradient of iteration 1, taken at the shared initial weights."""
    reference = run_tutorial(texture_files, iteration_count=1).model
    model = ours()
    history = train(model, renderer, textures, Recipe(iterations=1))
    for name in ("weight", "bias"):
        theirs, mine = getattr(reference.layers[0], name).grad, getattr(model.layers[0], name).grad
        assert mine.abs().max() > 0
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-5 * theirs.abs().max().item()), name
    assert len(history) == 1


def test_same_loss_trajectory_and_weights_as_the_tutorials_code(texture_files, renderer, textures):
    reference = run_tutorial(texture_files, iteration_count=4)
    model = ours()
    history = train(model, renderer, textures, Recipe(iterations=4))
    assert [h["loss"] for h in history] == pytest.approx(reference.losses, rel=1e-5)
    assert torch.allclose(model.layers[0].weight, reference.model.layers[0].weight, atol=1e-6)
    assert torch.allclose(model.layers[0].bias, reference.model.layers[0].bias, atol=1e-6)
    # The tutorial's code records when each iteration ended (used by the benchmarks).
    assert len(reference.seconds) == 4 and reference.seconds == sorted(reference.seconds)


def test_default_optimizer_is_a_fused_adam():
    model = ours()
    optimizer = adam(model.parameters(), lr=2e-4)
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["fused"] and optimizer.defaults["lr"] == 2e-4
    # Parameters the fused kernel cannot take fall back to the default implementation.
    assert not adam([torch.zeros(3, dtype=torch.int64)], lr=1e-3).defaults["fused"]
