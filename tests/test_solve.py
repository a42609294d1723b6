"""The instant solve: the probed light transport reproduces real renders, the solve lowers the L1 of a real
render, probes are cached per scene (memory and disk), and `applies` says which methods fit a scene."""
import json

import pytest
import torch
from PIL import Image

from common import run_python

from predistort import probe_cache, procedural, solve
from predistort.layers import UnrolledInverse
from predistort.render import Renderer
from predistort.scene import DEFAULT

# torch's notices that sparse CSR tensors are "beta" are expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Sparse")

RES = 32
SCENE = DEFAULT.replace(resolution=RES)


@pytest.fixture(scope="module")
def renderer():
    return Renderer(SCENE)


@pytest.fixture(scope="module")
def transport(renderer):
    return solve.probe(SCENE, renderer=renderer)


def l1(a, b):
    return (a.cpu() - b.cpu()).abs().mean().item()


def test_transport_reproduces_a_real_render_of_a_random_texture(renderer, transport):
    """A·T + b against a spp-1024 render of a random texture (uniform noise per texel and channel: every
    texel's weight matters). Stated error: mean |difference| < 0.006 (measured: ~0.004, as large as the
    difference of two such renders with different seeds); the distortion itself, |render − T|, is ~0.24."""
    texture = torch.rand(RES, RES, 3, generator=torch.Generator().manual_seed(1))
    real = renderer.render(texture, spp=1024, seed=11)
    predicted = transport.render(texture)
    assert predicted.shape == (RES, RES, 3)
    assert l1(predicted, real) < 0.006, l1(predicted, real)
    assert l1(real, texture) > 0.15                      # the test would be void if the scene did nothing


def test_transport_reproduces_coordinate_textures(renderer, transport):
    """The ramps x and y (the coordinate textures of the footprint probes) render where A says they do."""
    ramp = (torch.arange(RES) + 0.5) / RES
    for texture in (ramp[None, :, None].expand(RES, RES, 3), ramp[:, None, None].expand(RES, RES, 3)):
        real = renderer.render(texture.contiguous(), spp=1024, seed=12)
        assert l1(transport.render(texture), real) < 0.006


def test_solve_lowers_the_l1_of_a_real_render(renderer, transport):
    """A procedural picture no one trained on: the solved texture renders much closer to it (measured ratio
    ~0.35 at 32×32; asserted < 0.7)."""
    target = procedural.texture(seed=2024, resolution=RES, kind="dead_leaves")
    solved = solve.solve(target, transport)
    before = l1(renderer.render(target, spp=256, seed=5), target)
    after = l1(renderer.render(solved, spp=256, seed=5), target)
    assert after < 0.7 * before, (before, after)


def test_solve_output_is_a_valid_texture_and_batches(transport):
    targets = torch.stack([procedural.texture(seed=s, resolution=RES) for s in (3, 4)])
    batch = solve.solve(targets, transport)
    assert batch.shape == targets.shape and batch.dtype == torch.float32
    assert batch.min() >= 0 and batch.max() <= 1
    for k in range(2):
        assert torch.allclose(batch[k], solve.solve(targets[k], transport), atol=1e-5)


def test_solve_on_a_known_transport():
    """A hand-made 8×8 transport: the first 32 texels are seen, each by one pixel with gain 0.8 over a
    reflection of 0.1; the other texels by no pixel. The solve inverts the seen ones exactly (clamped to
    [0,1]) and leaves the unseen ones at the picture's value."""
    from predistort.scene import SceneConfig
    n, seen = 64, 32
    crow = torch.cat([torch.arange(seen + 1), torch.full((n - seen,), seen)])
    transport = solve.Transport(SceneConfig(resolution=8), crow, torch.arange(seen), torch.full((seen,), 0.8),
                                torch.full((n,), 0.1))
    target = torch.rand(8, 8, 3, generator=torch.Generator().manual_seed(2))
    x = solve.solve(target, transport, iterations=300).reshape(n, 3)
    flat = target.reshape(n, 3)
    assert torch.allclose(x[:seen], ((flat[:seen] - 0.1) / 0.8).clamp(0, 1), atol=2e-3)
    assert torch.equal(x[seen:], flat[seen:])
    assert transport.seen.reshape(-1).tolist() == [True] * seen + [False] * (n - seen)


def test_solve_refuses_another_resolution(transport):
    with pytest.raises(ValueError, match="expected textures of shape"):
        solve.solve(torch.rand(RES * 2, RES * 2, 3), transport)


def test_probes_are_cached_in_memory_and_on_disk(renderer, tmp_path, monkeypatch):
    monkeypatch.setenv("PREDISTORT_CACHE", str(tmp_path))
    monkeypatch.setattr(probe_cache, "_memory", {})
    scene = SCENE.replace(sphere_ior=1.1)                    # a scene no other test probes
    assert not solve.is_probed(scene)
    first = solve.transport_for(scene)
    files = list((tmp_path / "probes").glob("*.safetensors"))
    assert len(files) == 1 and files[0].stem == solve.cache_key(scene)
    assert solve.transport_for(scene) is first                # memory
    monkeypatch.setattr(probe_cache, "_memory", {})
    from_disk = solve.transport_for(scene)                    # disk
    assert from_disk is not first and from_disk.config == scene
    for name in ("crow", "col", "val", "b"):
        assert torch.equal(getattr(from_disk, name), getattr(first, name))
    # A corrupt file is probed again and rewritten, not an error.
    files[0].write_bytes(b"not a safetensors file")
    monkeypatch.setattr(probe_cache, "_memory", {})
    again = solve.transport_for(scene)
    assert torch.allclose(again.val, first.val, atol=1e-3)
    assert solve.Transport.load(files[0]).nnz == again.nnz
    # Another scene has another key.
    assert solve.cache_key(scene) != solve.cache_key(SCENE)


def test_the_caches_are_bounded_by_bytes(renderer, tmp_path, monkeypatch):
    """Memory keeps the most recently used transports that fit PREDISTORT_CACHE_MEMORY_MB, the disk the files
    that fit PREDISTORT_CACHE_MAX_MB (and PREDISTORT_CACHE_MAX_PROBES); reading counts as a use, and the
    newest is kept even when it alone is over the budget. Here each 32² transport is ~0.3 MB, and a 64² one
    about 4× that: it pushes out more of the small ones than one of their own kind would."""
    monkeypatch.setenv("PREDISTORT_CACHE", str(tmp_path))
    monkeypatch.setattr(probe_cache, "_memory", {})
    scenes = [SCENE.replace(sphere_ior=ior) for ior in (1.11, 1.12, 1.13, 1.14)]
    small = [solve.transport_for(sc) for sc in scenes[:3]]
    mb = small[0].nbytes / 2 ** 20
    files = {sc: tmp_path / "probes" / f"{solve.cache_key(sc)}.safetensors" for sc in scenes}
    file_mb = files[scenes[0]].stat().st_size / 2 ** 20
    assert all(abs(t.nbytes / 2 ** 20 - mb) < 0.2 * mb for t in small)
    # Memory: a budget for 2.5 small transports keeps the two most recently used.
    # (The settings are in MB, too coarse for these small files: the budget functions are replaced here and
    # read from the environment in test_the_cache_bounds_are_settings.)
    monkeypatch.setattr(probe_cache, "memory_budget", lambda: int(2.5 * mb * 2 ** 20))
    monkeypatch.setattr(probe_cache, "_memory", {})
    kept = [solve.transport_for(sc) for sc in scenes[:3]]             # from disk
    assert list(probe_cache._memory) == [solve.cache_key(sc) for sc in scenes[1:3]]
    assert solve.transport_for(scenes[1]) is kept[1]                   # now the most recently used
    solve.transport_for(scenes[0])
    assert list(probe_cache._memory) == [solve.cache_key(sc) for sc in (scenes[1], scenes[0])]
    # A transport of 4× the size alone exceeds the budget: it is kept, the others go.
    big = solve.transport_for(SCENE.replace(resolution=2 * RES, sphere_ior=1.11))
    assert big.nbytes > 3 * mb and list(probe_cache._memory) == [solve.cache_key(big.config)]
    # Disk: a budget of 3.5 small files keeps the newest three; least recently used go first, so once the
    # big file (~4 small ones) is over the budget, it and everything older go.
    monkeypatch.setattr(probe_cache, "disk_budget", lambda: (int(3.5 * file_mb * 2 ** 20), 64))
    monkeypatch.setattr(probe_cache, "_memory", {})
    files[scenes[0]].unlink()                                          # gone: probed again, now the newest
    solve.transport_for(scenes[0])
    left = {f.stem for f in (tmp_path / "probes").glob("*.safetensors")}
    assert left == {solve.cache_key(scenes[0])}, "the big file must have pushed out the small ones"
    for sc in scenes[1:4]:
        monkeypatch.setattr(probe_cache, "_memory", {})
        solve.transport_for(sc)
    left = {f.stem for f in (tmp_path / "probes").glob("*.safetensors")}
    assert left == {solve.cache_key(sc) for sc in scenes[1:4]}
    # Reading a file counts as a use: the oldest, read again, survives the next new one.
    monkeypatch.setattr(probe_cache, "_memory", {})
    solve.transport_for(scenes[1])
    solve.transport_for(SCENE.replace(sphere_ior=1.15))
    left = {f.stem for f in (tmp_path / "probes").glob("*.safetensors")}
    assert left == {solve.cache_key(sc) for sc in (scenes[1], scenes[3], SCENE.replace(sphere_ior=1.15))}
    # The file count is a bound as well.
    monkeypatch.setattr(probe_cache, "disk_budget", lambda: (2 ** 40, 2))
    solve.transport_for(SCENE.replace(sphere_ior=1.16))
    assert len(list((tmp_path / "probes").glob("*.safetensors"))) == 2


def test_applies_says_which_methods_fit_a_scene(transport):
    ok, why = solve.applies(transport, SCENE)
    assert ok, why
    ok, why = solve.applies(transport, SCENE.replace(sphere_ior=1.3))
    assert not ok and "sphere_ior" in why and "Probe" in why
    model = UnrolledInverse.from_transport(transport, depth=2)
    assert solve.applies(model, SCENE)[0]
    ok, why = solve.applies(model, SCENE.replace(sphere_radius=0.5))
    assert not ok and "sphere_radius" in why
    ok, why = solve.applies(model, DEFAULT.replace(resolution=64))
    assert not ok and "64×64" in why


def test_cli_apply_with_the_instant_solve_and_refinement(tmp_path):
    """`apply --method solve --refine 1`: probes into PREDISTORT_CACHE, solves, refines, writes the usual
    files, and the final render is closer to the picture than the initial one."""
    picture = tmp_path / "picture.png"
    Image.fromarray((procedural.texture(seed=7, resolution=RES, kind="glyphs") * 255).byte().numpy()).save(picture)
    env = {"PREDISTORT_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "out"
    done = run_python(["-m", "predistort", "apply", "--method", "solve", "--refine", "1", "--texture", str(picture),
                       "--resolution", str(RES), "--spp", "64", "--out-dir", str(out)], env=env)
    assert done.returncode == 0, done.stderr
    assert "refine:" in done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["l1_final"] < 0.8 * metrics["l1_initial"]
    # One probe for the scene, and one per camera offset of the stand map (metrics.json's "tolerance": a grid
    # around the nominal, whose centre is the scene itself, and the two z ends), each cached once.
    stand = metrics["tolerance"]
    offsets = sum(len(row) for row in stand["map"]) - 1 + len(stand["z"])
    assert len(list((tmp_path / "cache" / "probes").glob("*.safetensors"))) == 1 + offsets
    bad = run_python(["-m", "predistort", "apply", "--refine", "-1", "--texture", str(picture),
                      "--out-dir", str(out)], env=env)
    assert bad.returncode == 2 and "--refine" in bad.stderr


def test_the_cache_bounds_are_settings(monkeypatch):
    for name in ("PREDISTORT_CACHE_MAX_PROBES", "PREDISTORT_CACHE_MAX_MB", "PREDISTORT_CACHE_MEMORY_MB"):
        monkeypatch.delenv(name, raising=False)
    assert probe_cache.disk_budget() == (probe_cache.DISK_MB * 2 ** 20, probe_cache.MAX_ON_DISK)
    assert probe_cache.memory_budget() == probe_cache.MEMORY_MB * 2 ** 20
    monkeypatch.setenv("PREDISTORT_CACHE_MAX_PROBES", "5")
    monkeypatch.setenv("PREDISTORT_CACHE_MAX_MB", "300")
    monkeypatch.setenv("PREDISTORT_CACHE_MEMORY_MB", "200")
    assert probe_cache.disk_budget() == (300 * 2 ** 20, 5) and probe_cache.memory_budget() == 200 * 2 ** 20
    monkeypatch.setenv("PREDISTORT_CACHE_MAX_PROBES", "0")
    assert probe_cache.disk_budget()[1] == 1                          # the probe just made is always kept
    monkeypatch.setenv("PREDISTORT_CACHE_MAX_PROBES", "lots")
    with pytest.warns(UserWarning, match="PREDISTORT_CACHE_MAX_PROBES='lots' is not a whole number"):
        assert probe_cache.disk_budget()[1] == probe_cache.MAX_ON_DISK
    monkeypatch.setenv("PREDISTORT_CACHE_MEMORY_MB", "-3")
    assert probe_cache.memory_budget() == 0                           # then only the newest transport stays


def test_the_cache_key_holds_every_setting_that_changes_the_transport(transport, monkeypatch):
    """A probe records the settings it measured with (probe.settings_for: sampling, paths, filter, calibration,
    Mitsuba's version), and the cache key holds them: the same scene measured another way is another entry,
    so a changed constant or a Mitsuba upgrade never serves a transport measured the old way."""
    import mitsuba
    from predistort import probe
    assert transport.info["settings"] == probe.settings_for(SCENE)
    assert transport.info["settings"]["supersampling"] == probe.SUPERSAMPLING
    key = solve.cache_key(SCENE)
    for owner, name, value in ((probe, "SUPERSAMPLING", 2), (probe, "PRUNE", 2e-3), (probe, "BALL_DEPTH", 6),
                               (probe, "CALIBRATE_BLUR", 2.0), (probe, "FILTER_STDDEV", 0.4),
                               (mitsuba, "__version__", "0.0.1")):
        with monkeypatch.context() as patched:
            patched.setattr(owner, name, value)
            assert solve.cache_key(SCENE) != key, name
    assert solve.cache_key(SCENE) == key
    # What probe() is asked for is in its settings too: the advisor's cheap search probes are another thing.
    from predistort.advise import SEARCH_PROBE
    assert probe.settings_for(SCENE, **SEARCH_PROBE) != probe.settings_for(SCENE)
    # A texture finer than the film is sampled more densely: its own setting, in its own key.
    fine = DEFAULT.replace(resolution=128, film_width=32, film_height=32)
    assert probe.settings_for(fine)["supersampling"] > probe.SUPERSAMPLING


def test_the_probe_constants_are_pinned_to_the_probe_version():
    """Cache keys hold the probe's settings (the test above) and PROBE_VERSION, which stands for what no setting
    says: a change to the probe's code or to a constant that only the version covers must bump it, or transports
    measured the old way would be served. Change the constants, the version and this table together."""
    from predistort import probe
    pinned = {2: dict(CHAINS=("", "R", "TT", "TRT", "TRRT"), PRUNE=1e-3, CALIBRATE_SPP=256, CALIBRATE_BLUR=4.0,
                      CALIBRATE_RESOLUTION=128, FILTER_STDDEV=0.5, SUPERSAMPLING=3, SAMPLE_SPACING=2 / 3,
                      COVER_SPACING=1.5, MAX_SAMPLES=1 << 24),
              # 3: any world (mirrors, glass, several objects); object masks stored; the ball's A unchanged
              3: dict(CHAINS=("", "R", "TT", "TRT", "TRRT"), BALL_DEPTH=4, MAX_DEPTH=8, MIN_WEIGHT=1e-4, PRUNE=1e-3,
                      CALIBRATE_SPP=256, CALIBRATE_BLUR=4.0, CALIBRATE_RESOLUTION=128, FILTER_STDDEV=0.5,
                      SUPERSAMPLING=3, SAMPLE_SPACING=2 / 3, COVER_SPACING=1.5, MAX_SAMPLES=1 << 24)}
    assert probe.PROBE_VERSION in pinned, "a new PROBE_VERSION: add its constants to this table"
    assert {name: getattr(probe, name) for name in pinned[probe.PROBE_VERSION]} == pinned[probe.PROBE_VERSION]
