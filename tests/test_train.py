"""The tutorial's layer and training loop: shared channel weights, exact tutorial gradients, lower loss,
stop keeps the weights, same seed gives the same history."""
import threading

import pytest
import torch
import torch.nn as nn

from common import picture_textures
from predistort import backend
from predistort.layers import TutorialLayer
from predistort.render import Renderer
from predistort.scene import DEFAULT
from predistort.train import Recipe, train

RES = 16


@pytest.fixture(scope="module")
def renderer():
    return Renderer(DEFAULT.replace(resolution=RES))


@pytest.fixture(scope="module")
def textures():
    return picture_textures(RES)


def new_layer(seed=0):
    torch.manual_seed(seed)
    return TutorialLayer(RES)


class Model1(nn.Module):
    """The tutorial's model, verbatim (but for taking a torch tensor instead of a Dr.Jit one)."""
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(RES**2, RES**2), nn.Sigmoid())

    def forward(self, texture):
        rgb = [self.layers(texture[:, :, i].reshape(-1)) for i in range(3)]
        return torch.stack([c.view(RES, RES) for c in rgb], dim=2)


def test_layer_is_the_tutorials_model_with_weights_shared_by_channels(textures):
    layer = new_layer()
    reference = Model1()
    reference.load_state_dict(layer.state_dict())           # same parameter names as the tutorial's Model1
    t = textures[0]
    assert torch.allclose(layer(t), reference(t), atol=1e-6)
    # Same weights for every channel: permuting the input's channels permutes the output's.
    assert torch.allclose(layer(t[..., [2, 0, 1]]), layer(t)[..., [2, 0, 1]], atol=1e-6)
    grey = t.mean(-1, keepdim=True).expand(RES, RES, 3)
    out = layer(grey)
    assert torch.equal(out[..., 0], out[..., 1]) and torch.equal(out[..., 1], out[..., 2])
    # A batch is mapped texture by texture.
    batch = torch.stack(textures)
    assert torch.allclose(layer(batch)[3], layer(textures[3]), atol=1e-6)


def test_batched_training_gradient_equals_the_tutorials_loop(renderer, textures):
    """One iteration of predistort.train and of the tutorial's loop (render, loss.backward per texture) give
    the same weight gradient from the same weights and seeds."""
    ours, theirs = new_layer(), Model1()
    theirs.load_state_dict(ours.state_dict())
    captured = {}

    class Capture(torch.optim.SGD):                          # records the gradient, changes nothing
        def step(self, closure=None):
            captured["w"] = ours.layers[0].weight.grad.clone()
    train(ours, renderer, textures, Recipe(iterations=1), optimizer=Capture(ours.parameters(), lr=0.0))

    theirs.zero_grad()
    for j, texture in enumerate(textures):                   # the tutorial's inner loop, i = 0
        with backend.RENDER_LOCK:
            rendered = renderer.render(theirs(texture), spp=4, seed=0 * len(textures) + j)
            nn.L1Loss()(rendered, texture).backward()
    assert torch.allclose(captured["w"], theirs.layers[0].weight.grad, rtol=1e-4, atol=1e-9)
    assert captured["w"].abs().sum() > 0


def test_training_lowers_the_loss_and_is_reproducible(renderer, textures):
    recipe = Recipe(iterations=12, lr=2e-3)
    first = train(new_layer(), renderer, textures, recipe)
    again = train(new_layer(), renderer, textures, recipe)
    losses = [h["loss"] for h in first]
    assert len(first) == 12 and [h["iteration"] for h in first] == list(range(1, 13))
    assert losses[-1] < 0.8 * losses[0], losses
    assert [h["loss"] for h in again] == pytest.approx(losses, rel=1e-5)
    other_seed = train(new_layer(seed=1), renderer, textures, Recipe(iterations=2, lr=2e-3))
    assert other_seed[0]["loss"] != pytest.approx(losses[0], rel=1e-4)


def test_stop_ends_after_the_current_iteration_and_keeps_the_weights(renderer, textures):
    layer = new_layer()
    start = layer.layers[0].weight.detach().clone()
    stop, seen = threading.Event(), []

    def callback(iteration, loss, elapsed):
        seen.append((iteration, loss, elapsed))
        if iteration == 3:
            stop.set()
    history = train(layer, renderer, textures, Recipe(iterations=50, lr=2e-3), callback=callback, stop=stop)
    assert len(history) == 3 and [s[0] for s in seen] == [1, 2, 3]
    assert all(b[2] >= a[2] for a, b in zip(seen, seen[1:]))            # elapsed seconds increase
    assert not torch.equal(layer.layers[0].weight, start)                 # what it learned is kept ...
    three = new_layer()
    train(three, renderer, textures, Recipe(iterations=3, lr=2e-3))
    assert torch.allclose(layer.layers[0].weight, three.layers[0].weight, atol=1e-6)   # ... all 3 steps of it
    assert not layer.training


def test_training_refuses_nonsense(renderer):
    with pytest.raises(ValueError, match="at least one texture"):
        train(new_layer(), renderer, [], Recipe(iterations=1))
