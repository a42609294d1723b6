"""The wrapped renderer: exact gradients through dr.wrap, no graph without gradients, safe under threads."""
import gc
import resource
import threading
import weakref

import pytest
import torch

from common import picture_textures
from predistort import backend
from predistort.render import Renderer
from predistort.scene import DEFAULT

RES = 32


@pytest.fixture(scope="module")
def renderer():
    return Renderer(DEFAULT.replace(resolution=RES))


def test_gradient_matches_central_difference(renderer):
    """<d loss/d texture, d> from dr.wrap agrees with (L(T + h d) - L(T - h d)) / 2h at the same seed.

    The loss weights every pixel positively and the direction is positive, so both sides measure signal
    (not Monte Carlo noise). Stated tolerance: 1% relative (measured here: ~0.03%).
    """
    g = torch.Generator().manual_seed(0)
    texture = 0.2 + 0.6 * torch.rand(RES, RES, 3, generator=g)
    weights = 0.5 + torch.rand(RES, RES, 3, generator=g)
    direction = torch.rand(RES, RES, 3, generator=g)
    loss_fn = lambda image, target: (weights * image).sum()                    # noqa: E731
    _, grad = renderer.loss_and_grad(texture, texture, spp=16, seed=3, loss_fn=loss_fn)
    analytic = (grad * direction).sum().item()
    h = 1e-2
    plus = loss_fn(renderer.render(texture + h * direction, spp=16, seed=3), None).item()
    minus = loss_fn(renderer.render(texture - h * direction, spp=16, seed=3), None).item()
    numeric = (plus - minus) / (2 * h)
    assert analytic > 0
    assert abs(analytic - numeric) / abs(numeric) < 0.01, (analytic, numeric)


def test_gradient_flows_into_torch_through_dr_wrap(renderer):
    texture = torch.full((RES, RES, 3), 0.5, requires_grad=True)
    with backend.RENDER_LOCK:
        image = renderer.render(texture, spp=4, seed=0)
        assert image.requires_grad and image.grad_fn is not None
        image.mean().backward()
    assert texture.grad is not None and texture.grad.abs().sum() > 0


def test_render_without_gradients_builds_no_graph_and_matches(renderer):
    texture = picture_textures(RES)[2]
    plain = renderer.render(texture, spp=8, seed=5)
    assert not plain.requires_grad and plain.grad_fn is None
    with backend.RENDER_LOCK:
        tracked = renderer.render(texture.clone().requires_grad_(True), spp=8, seed=5)
    # Same samples, same image: equal up to kernel rounding (the AD kernel is compiled differently; <1e-6).
    assert torch.allclose(plain, tracked.detach(), rtol=0, atol=1e-5)
    with torch.no_grad():
        again = renderer.render(texture.clone().requires_grad_(True), spp=8, seed=5)
        assert again.grad_fn is None and torch.allclose(again, plain, rtol=0, atol=1e-5)


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def test_many_renders_do_not_grow_memory(renderer):
    """600 renders (400 without gradients, 200 with a backward pass) keep the RSS within 40 MB."""
    texture = picture_textures(RES)[0]
    for i in range(30):                                   # warm up kernels and allocator caches
        renderer.render(texture, spp=2, seed=i)
        renderer.loss_and_grad(texture, texture, spp=2, seed=i)
    before = _rss_mb()
    for i in range(400):
        renderer.render(texture, spp=2, seed=i)
    for i in range(200):
        renderer.loss_and_grad(texture, texture, spp=2, seed=i)
    grown = _rss_mb() - before
    assert grown < 40, f"RSS grew by {grown:.1f} MB over 600 renders"


def test_each_render_gets_its_own_gradient(renderer):
    """loss_and_grad back-propagates before the scene changes: A's gradient is A's, whatever is rendered next."""
    a, b = picture_textures(RES)[:2]
    _, grad_a_alone = renderer.loss_and_grad(a, a.flip(0), spp=4, seed=11)
    renderer.loss_and_grad(b, b.flip(1), spp=4, seed=12)
    _, grad_a_again = renderer.loss_and_grad(a, a.flip(0), spp=4, seed=11)
    assert torch.allclose(grad_a_alone, grad_a_again, atol=1e-7)


def test_two_threads_get_their_own_images_and_gradients():
    """Three threads on two scenes (two threads share one), rendering and back-propagating at once, get what
    the same calls give one after the other. Not bit for bit: Dr.Jit's kernels round differently from another
    thread (measured: up to 7e-7 even with no concurrency), so the tolerance is 1e-5, where a render or gradient
    of the wrong texture or scene differs by ~0.1."""
    shared = Renderer(DEFAULT.replace(resolution=RES))
    other = Renderer(DEFAULT.replace(resolution=RES, sphere_ior=1.2))
    textures = picture_textures(RES)
    jobs = {  # name -> (renderer, texture, target, seed)
        "A": (shared, textures[0], textures[0], 1), "B": (shared, textures[1], textures[3], 2),
        "C": (other, textures[2], textures[2], 3)}

    def work(name):
        r, tex, target, seed = jobs[name]
        return [(r.render(tex, spp=4, seed=seed + k), *r.loss_and_grad(tex, target, spp=4, seed=seed + k))
                for k in range(6)]

    alone = {name: work(name) for name in jobs}
    together, errors = {}, []

    def run(name):
        try:
            together[name] = work(name)
        except Exception as e:  # a crash in a thread must fail the test, not vanish
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name in jobs:
        for (img1, loss1, g1), (img2, loss2, g2) in zip(alone[name], together[name]):
            assert torch.allclose(img1, img2, rtol=0, atol=1e-5)
            assert abs(loss1 - loss2) < 1e-6
            assert torch.allclose(g1, g2, rtol=1e-4, atol=1e-8)


def _left_to_the_cyclic_collector(work):
    """Names of Dr.Jit / Mitsuba objects (and Renderers) that `work()` leaves in reference cycles."""
    def ours(o):
        return not isinstance(o, type) and (type(o).__module__.split(".")[0] in ("mitsuba", "drjit")
                                            or isinstance(o, Renderer))
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        work()
        gc.collect()
        return sorted({type(r).__qualname__ for o in gc.garbage for r in [o, *gc.get_referents(o)] if ours(r)})
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()


def test_renders_and_probes_leave_no_scene_to_the_cyclic_collector():
    """Python's cyclic collector runs on whichever thread allocates next (a Gradio worker, the fake Hub's
    server), and a scene freed there while another thread renders breaks that render (CI, once: a probe's
    "Shape::compute_surface_interaction(): not implemented!"). A renderer used to hold its own bound method,
    and the probe's tracer its own closure, both cycles with the scene in them."""
    from predistort import probe
    from predistort.scene import SceneConfig, roles
    config = DEFAULT.replace(resolution=16)
    texture = picture_textures(16)[0]

    def render_and_grad():
        r = Renderer(config)
        r.render(texture, spp=2)
        r.loss_and_grad(texture, texture, spp=2)

    world = SceneConfig.from_dict({
        "units": "mm", "print": {"center": [0, -40, 0], "right": [1, 0, 0], "up": [0, 1, 0], "size": [297, 210]},
        "objects": [{"shape": "cylinder", "base": [0, 0, 0], "axis": [0, 0, 1], "radius": 30, "height": 100,
                     "material": "mirror"}],
        "camera": {"origin": [0, -280, 300], "target": [0, 0, 50], "up": [0, 0, 1], "fov": 14, "film": [24, 32]},
        "resolution": 16})
    assert sorted(roles(world).values()) == ["black", "black", "mirror"]    # a mirror and its caps
    for work in (render_and_grad, lambda: probe.probe(config), lambda: probe.probe(world)):
        assert _left_to_the_cyclic_collector(work) == []


def test_a_renderer_dropped_anywhere_is_freed_by_the_render_locks_next_holder():
    """The last reference to a renderer may go on any thread: its scene waits for the render lock."""
    gc.disable()
    try:
        with backend.RENDER_LOCK:
            pass                                       # nothing left from before
        r = Renderer(DEFAULT.replace(resolution=8))
        alive = weakref.ref(r)
        held = threading.Event()
        release = threading.Event()

        def holder():                                  # another thread renders meanwhile
            with backend.RENDER_LOCK:
                held.set()
                release.wait(10)
        other = threading.Thread(target=holder)
        other.start()
        held.wait(10)
        del r                                          # freed by reference counting, not by the collector...
        assert alive() is None and len(backend._BURIED) == 1    # ... and its scene is kept, not freed here
        release.set()
        other.join()
        with backend.RENDER_LOCK:
            assert backend._BURIED == []               # the next holder freed it
    finally:
        gc.enable()
