"""Instant pre-distortion: measure the scene's light transport once, then solve for each texture without rendering.

The optics. For a fixed scene the render is linear in the texture (light that bounces plane → sphere → plane
again is negligible)::

    render(T) = A · T + b

``T`` is the texture (R² texels per colour channel), ``A`` the sparse light-transport matrix (R² pixels ×
R² texels; row p says which texels pixel p sees and how much) and ``b`` what the sphere reflects from the
environment. The glass does not disperse, so one ``A`` serves all three channels. The best pre-distortion
of a picture ``P`` is then the texture in [0,1] that this scene renders closest to ``P``::

    T* = argmin_{0 ≤ T ≤ 1}  | A·T + b − P |

which needs no renderer once ``A`` and ``b`` are known.

Measuring A (:func:`probe`). A pixel's value is the reconstruction filter's weighted average of its camera
samples; each sample follows a *deterministic* chain of specular events through the smooth dielectric
sphere — reflect with weight F (Fresnel), or refract with weight 1 − F — until it lands on the plane, where
the bitmap is read with bilinear interpolation, or escapes to the white environment (radiance 1, which
makes up ``b``). So instead of rendering probe textures and reading the noisy footprints back, this module
traces the camera rays itself with Mitsuba (``sensor.sample_ray`` and ``scene.ray_intersect``, so camera,
film and shapes are exactly the renderer's), on a regular 3×3 grid of positions per pixel, along the five
specular chains that matter (direct; R; TT; TRT; TRRT), and assembles

    A = K · S          K: pixel ← sample, the film's Gaussian filter (σ = 0.5 px, radius 2 px), rows sum to 1
                       S: sample ← texel, bilinear weights × the chain's Fresnel weight

Two renders of the coordinate textures 0 and 1 then calibrate what tracing cannot see: how much
environment light reaches the plane (the sphere shadows and focuses it). Their difference is each pixel's
gain; a smooth per-pixel factor ``blur(gain_rendered) / blur(gain_traced)`` rescales A's rows. Measured at
128×128 in the tutorial's scene: A·T + b matches real spp-1024 renders of photographs to L1 ≈ 0.0023, the
noise level of those renders, after ~3 s. Reading A back from renders instead — 64 comb textures (one texel
in every 8×8 block lit) at spp 256, 38 s — gave 0.0053, with 0.0175 at the sphere's rim: there a pixel sees
two far-apart patches of the plane at once (through the glass and past it), which no window of taps
around one centre, let alone a Gaussian footprint from the 7 moment textures, can hold. At IOR 1.3–1.5 the
calibration halves the error (to ~0.003).

Solving (:func:`solve`). Projected FISTA with a diagonal majoriser: ``D = Aᵀ A 1`` bounds ``AᵀA`` from above
(A ≥ 0), so the step ``T ← clamp(T − (Aᵀ r) / D, 0, 1)`` never overshoots, and it adapts to each texel —
a magnified texel, seen by many pixels, moves gently; a compressed one boldly. The first iterations
minimise the squared error (fast progress), the rest a Huber loss with a small threshold (close to L1, the
metric that is reported). Texels that no pixel sees (``D = 0``) keep the picture's own value.

Caching. A transport depends on the scene config, the Mitsuba variant and this module's
:data:`PROBE_VERSION`; :func:`transport_for` keeps one per key in memory and in
``$PREDISTORT_CACHE/probes/<key>.safetensors`` (default ``~/.cache/predistort``), the most recently used
:data:`MAX_IN_MEMORY` in memory and :data:`MAX_ON_DISK` on disk (~3 MB each at 128²).

Limits: square textures. Measured at 32–128 pixels (probing and solving scale with R²: ~3–6 s and ~0.2 s at
128; at 512, expect a minute and ~3 s).
Dr.Jit work (tracing, calibration renders) holds :data:`predistort.backend.RENDER_LOCK`. The sparse
products run on one CPU thread (:func:`predistort.backend.one_thread`): on a busy 2-core machine a second thread only waits.
"""
import contextlib
import hashlib
import json
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .backend import one_thread
from .scene import DEFAULT, SceneConfig

# torch's sparse CSR tensors work well for what is used here; their "beta" notices would only add noise.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")

PROBE_VERSION = 1              # bump when the probe's output changes: old cache files are then ignored
CHAINS = ("", "R", "TT", "TRT", "TRRT")   # specular chains traced: R = reflect, T = refract at the sphere
PRUNE = 1e-4                   # entries of A below this are dropped (rows rescaled to keep their sums)
CALIBRATE_SPP = 256            # samples per pixel of the two calibration renders
CALIBRATE_BLUR = 4.0           # σ (pixels) of the blur that keeps the calibration smooth
FILTER_STDDEV = 0.5            # Mitsuba's default film filter: Gaussian, σ = 0.5 px, radius 4σ


# ---------------------------------------------------------------------------------------------------------
# The transport: A and b, with what the solver derives from them
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Transport:
    """The measured light transport of one scene: ``render(T) ≈ A·T + b``.

    Fields: ``config`` the scene; ``crow``, ``col``, ``val`` the CSR arrays of A (R² pixel rows × R² texel
    columns, pixel and texel index ``row·R + column``); ``b`` [R²] the environment's part of each pixel;
    ``info`` how it was measured (seconds, supersampling, calibration). Derived on first use: ``A``, ``At``
    (CSR tensors) and ``step`` (1 / diag-majoriser of AᵀA, 0 for unseen texels).
    """
    config: SceneConfig
    crow: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor
    b: torch.Tensor
    info: dict = field(default_factory=dict)

    @property
    def resolution(self):
        return self.config.resolution

    @property
    def nnz(self):
        return int(self.val.numel())

    def prepare(self):
        """Derive ``A``, ``At`` and ``step`` now (~0.1 s at 128²) rather than at the first solve."""
        self._derive()
        return self

    def _derive(self):
        if "_A" in self.__dict__:
            return
        n = self.resolution ** 2
        rows = torch.repeat_interleave(torch.arange(n), self.crow[1:] - self.crow[:-1])
        self._A = torch.sparse_csr_tensor(self.crow, self.col, self.val, (n, n))
        order = torch.argsort(self.col * n + rows)                 # the same entries, column-major
        crow_t = torch.zeros(n + 1, dtype=torch.int64)
        crow_t[1:] = torch.cumsum(torch.bincount(self.col, minlength=n), 0)
        self._At = torch.sparse_csr_tensor(crow_t, rows[order], self.val[order], (n, n))
        self._transpose_order = order
        with one_thread():
            d = self._At @ (self._A @ torch.ones(n, 1))            # Aᵀ A 1 ≥ every row sum of AᵀA
        self._step = torch.where(d > 1e-6, 1.0 / d.clamp_min(1e-6), torch.zeros_like(d))

    @property
    def A(self):
        self._derive()
        return self._A

    @property
    def At(self):
        self._derive()
        return self._At

    @property
    def step(self):
        """[R², 1]: the preconditioned step 1 / (AᵀA1) per texel (0 where no pixel sees the texel)."""
        self._derive()
        return self._step

    @property
    def seen(self):
        """[R, R] bool: texels that some pixel sees (the rest never show in the render)."""
        r = self.resolution
        return (self.step > 0).reshape(r, r)

    def render(self, texture):
        """The predicted render ``A·T + b`` of `texture` [..., R, R, 3] (any batch shape), on the CPU."""
        x, unflatten = _flatten(texture, self.resolution)
        with one_thread():
            y = self.A @ x + self.b[:, None]
        return unflatten(y)

    # -- files ---------------------------------------------------------------------------------------------
    def save(self, path):
        """Write this transport as one safetensors file (tensors + JSON metadata)."""
        from safetensors.torch import save_file
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        save_file({"crow": self.crow.to(torch.int32), "col": self.col.to(torch.int32),
                   "val": self.val.contiguous(), "b": self.b.contiguous()}, str(tmp),
                  metadata={"config": json.dumps(self.config.to_dict()), "info": json.dumps(self.info),
                            "probe_version": str(PROBE_VERSION)})
        os.replace(tmp, path)                                       # readers never see half a file
        return path

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save`; raises ValueError if it is unreadable or of another version."""
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in ("crow", "col", "val", "b")}
        except Exception as e:   # any corruption means: probe again
            raise ValueError(f"cannot read transport {path}: {e}") from None
        if meta.get("probe_version") != str(PROBE_VERSION):
            raise ValueError(f"transport {path} is from probe version {meta.get('probe_version')}, "
                             f"not {PROBE_VERSION}")
        transport = cls(SceneConfig.from_dict(json.loads(meta["config"])), tensors["crow"].long(),
                        tensors["col"].long(), tensors["val"].float(), tensors["b"].float(),
                        json.loads(meta.get("info", "{}")))
        transport.prepare()
        return transport


def _flatten(texture, resolution):
    """[..., R, R, 3] -> ([R², batch·3] float32 CPU, function mapping such a matrix back to the input's shape)."""
    texture = torch.as_tensor(texture)
    if tuple(texture.shape[-3:]) != (resolution, resolution, 3):
        raise ValueError(f"expected textures of shape [..., {resolution}, {resolution}, 3], "
                         f"got {list(texture.shape)}")
    batch = texture.shape[:-3]
    device = texture.device
    x = texture.detach().to("cpu", torch.float32).reshape(-1, resolution * resolution, 3)
    x = x.permute(1, 0, 2).reshape(resolution * resolution, -1)            # [R², B·3]

    def unflatten(y):
        y = y.reshape(resolution * resolution, -1, 3).permute(1, 0, 2)
        return y.reshape(*batch, resolution, resolution, 3).to(device)
    return x.contiguous(), unflatten


# ---------------------------------------------------------------------------------------------------------
# Probing: trace the camera's specular chains, assemble A, calibrate the gain with two renders
# ---------------------------------------------------------------------------------------------------------
def _trace(scene, config, n):
    """Follow every chain of :data:`CHAINS` from an n×n grid of film positions per pixel.

    Returns ``(sample, u, v, weight)`` for the chains that end on the plane (sample index on the fine grid
    of side R·n, the plane's uv, the product of Fresnel weights) and ``env`` [(R·n)²]: the summed weight of
    the chains that escape to the environment.
    """
    import drjit as dr
    import mitsuba as mi

    side = config.resolution * n
    sensor = scene.sensors()[0]
    plane = mi.ShapePtr(next(s for s in scene.shapes() if s.id() == "textured_plane"))
    idx = dr.arange(mi.UInt32, side * side)
    film_pos = mi.Point2f((mi.Float(idx % side) + 0.5) / side, (mi.Float(idx // side) + 0.5) / side)
    out, env = [], torch.zeros(side * side)
    with dr.suspend_grad():
        for chain in CHAINS:
            ray, _ = sensor.sample_ray(0.0, 0.5, film_pos, mi.Point2f(0.5, 0.5))   # pinhole: no lens sample
            weight = dr.full(mi.Float, 1.0, side * side)
            alive = dr.full(mi.Bool, True, side * side)
            for k in range(len(chain) + 1):
                si = scene.ray_intersect(ray, alive)
                on_plane = alive & si.is_valid() & (si.shape == plane)
                on_sphere = alive & si.is_valid() & ~on_plane
                if k == len(chain):
                    break
                # Smooth dielectric: Fresnel F decides the split between reflection and refraction.
                wi = si.to_local(-ray.d)
                fresnel, cos_t, _, eta_ti = mi.fresnel(mi.Frame3f.cos_theta(wi), config.sphere_ior)
                if chain[k] == "T":
                    wo, weight = mi.refract(wi, cos_t, eta_ti), weight * (1 - fresnel)
                else:
                    wo, weight = mi.reflect(wi), weight * fresnel
                ray = si.spawn_ray(si.to_world(wo))
                alive = on_sphere                      # the chain continues only if it met the sphere
            escaped = torch.from_numpy(np.array(alive & ~si.is_valid()))
            w = torch.from_numpy(np.array(weight))
            env += torch.where(escaped, w, 0.0)
            hit = torch.from_numpy(np.array(on_plane)).nonzero().squeeze(1)
            out.append((hit, torch.from_numpy(np.array(si.uv.x))[hit], torch.from_numpy(np.array(si.uv.y))[hit],
                        w[hit]))
    sample, u, v, w = (torch.cat(parts) for parts in zip(*out))
    return sample, u, v, w, env


def _gaussian(d, stddev=FILTER_STDDEV):
    """Mitsuba's Gaussian reconstruction filter: exp(−d²/2σ²) − exp(−(4σ)²/2σ²), zero beyond 4σ."""
    return (torch.exp(-d * d / (2 * stddev ** 2)) - np.exp(-8.0)).clamp_min(0)


def _filter_matrix(res, n):
    """K [R², (R·n)²]: pixel p's normalised Gaussian weights over the fine samples within its filter radius."""
    side = res * n
    offsets = torch.arange(-3 * n, 4 * n)                        # fine-sample offsets from the pixel's first sample
    w1 = _gaussian((offsets + 0.5) / n - 0.5)                    # distance from the pixel centre, in pixels
    offsets, w1 = offsets[w1 > 0], w1[w1 > 0]
    p = torch.arange(res)
    fine = p[:, None] * n + offsets[None, :]                     # [R, k] fine index per pixel, one axis
    inside = (fine >= 0) & (fine < side)                         # the film has no samples beyond its edge
    wy = (w1[None, :] * inside)[:, None, :, None]                # [R, 1, k, 1]
    wx = (w1[None, :] * inside)[None, :, None, :]                # [1, R, 1, k]
    w = (wy * wx)
    w = w / w.sum((2, 3), keepdim=True)                          # Mitsuba divides by the summed filter weight
    k = len(offsets)
    rows = (p[:, None] * res + p[None, :])[:, :, None, None].expand(res, res, k, k)
    cols = (fine.clamp(0, side - 1)[:, None, :, None] * side + fine.clamp(0, side - 1)[None, :, None, :])
    keep = w > 0
    return torch.sparse_coo_tensor(torch.stack([rows[keep], cols.expand(res, res, k, k)[keep]]), w[keep],
                                   (res * res, side * side)).coalesce().to_sparse_csr()


def _sample_matrix(res, n, sample, u, v, weight):
    """S [(R·n)², R²]: each traced sample's bilinear lookup of the bitmap (wrap mode repeat) times its weight."""
    x, y = u * res - 0.5, v * res - 0.5                          # texel coordinates (texel centres at integers)
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    rows, cols, vals = [], [], []
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        rows.append(sample)
        cols.append(((y0 + dy) % res) * res + (x0 + dx) % res)
        vals.append(w * weight)
    side = res * n
    return torch.sparse_coo_tensor(torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(vals),
                                   (side * side, res * res)).coalesce().to_sparse_csr()


def _blur(image, sigma):
    """Separable Gaussian blur of a [R, R] map (edges replicated)."""
    r = max(1, int(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum())
    x = image[None, None]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return x[0, 0]


def probe(config=DEFAULT, renderer=None, supersampling=None, calibrate_spp=CALIBRATE_SPP, prune=PRUNE):
    """Measure the light transport of `config`: returns a :class:`Transport` (``A``, ``b``).

    Parameters:
        config         the scene (its resolution is A's)
        renderer       a :class:`predistort.render.Renderer` of `config` to reuse (else one is built)
        supersampling  camera samples per pixel and axis (default 3 up to 192 px, else 2)
        calibrate_spp  samples per pixel of the two calibration renders (0: skip calibration)
        prune          drop entries of A below this (rows keep their sums)
    Cost at 128×128 on 2 cores: about 3 s of tracing and assembly plus 2 renders.
    """
    from . import backend
    from .render import Renderer

    start = time.perf_counter()
    renderer = renderer or Renderer(config)
    if renderer.config != config:
        raise ValueError("probe(): the renderer draws another scene than `config`")
    res = config.resolution
    n = supersampling or (3 if res <= 192 else 2)
    with backend.RENDER_LOCK:
        sample, u, v, weight, env = _trace(renderer.scene, config, n)
    with one_thread():
        K = _filter_matrix(res, n)
        A = (K @ _sample_matrix(res, n, sample, u, v, weight)).to_sparse_coo().coalesce()
        b = (K @ env[:, None]).squeeze(1)
    rows, cols = A.indices()
    vals = A.values().float()
    gain_traced = torch.zeros(res * res).index_add_(0, rows, vals)

    calibration = None
    if calibrate_spp:
        # Coordinate textures 0 and 1: their difference is each pixel's true gain, environment lighting included.
        zero = torch.zeros(res, res, 3)
        b_rendered = renderer.render(zero, spp=calibrate_spp, seed=0).cpu().mean(-1)
        gain_rendered = renderer.render(zero + 1, spp=calibrate_spp, seed=0).cpu().mean(-1) - b_rendered
        factor = (_blur(gain_rendered, CALIBRATE_BLUR) /
                  _blur(gain_traced.reshape(res, res), CALIBRATE_BLUR).clamp_min(1e-3)).clamp(0.5, 2.0)
        vals = vals * factor.reshape(-1)[rows]
        calibration = {"spp": calibrate_spp, "blur_px": CALIBRATE_BLUR, "factor_min": float(factor.min()),
                       "factor_max": float(factor.max())}

    # Prune negligible entries; rescale each row so that its sum (the pixel's gain) is unchanged.
    row_sum = torch.zeros(res * res).index_add_(0, rows, vals)
    keep = vals >= prune
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    kept_sum = torch.zeros(res * res).index_add_(0, rows, vals)
    vals = vals * (row_sum / kept_sum.clamp_min(1e-12))[rows]
    csr = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (res * res, res * res)).coalesce().to_sparse_csr()
    info = {"method": "traced specular chains " + ",".join(c or "direct" for c in CHAINS),
            "supersampling": n, "prune": prune, "calibration": calibration, "nnz": int(vals.numel()),
            "variant": backend.init(), "seconds": round(time.perf_counter() - start, 2)}
    transport = Transport(config, csr.crow_indices().long(), csr.col_indices().long(), csr.values().float(),
                          b.float(), info)
    transport.prepare()
    return transport


# ---------------------------------------------------------------------------------------------------------
# Cache: one transport per (scene, variant, probe version), in memory and on disk
# ---------------------------------------------------------------------------------------------------------
_memory = {}                             # cache key -> Transport, least recently used first
_memory_lock = threading.Lock()          # guards _memory
MAX_IN_MEMORY = 8                        # transports kept in memory (~3 MB each at 128²); the rest stay on disk
MAX_ON_DISK = 64                         # probe files kept on disk (PREDISTORT_CACHE_MAX_PROBES overrides)
_probe_lock = threading.Lock()           # one probe at a time: two sessions asking for a new scene probe it once


def cache_dir():
    """Folder of cached probes: ``$PREDISTORT_CACHE/probes`` (default ``~/.cache/predistort/probes``)."""
    root = os.environ.get("PREDISTORT_CACHE") or Path.home() / ".cache" / "predistort"
    return Path(root).expanduser() / "probes"


def cache_key(config, variant=None):
    """A short hash of everything the transport depends on: the scene config, the variant, PROBE_VERSION."""
    from . import backend
    payload = json.dumps({"scene": config.to_dict(), "variant": variant or backend.init(),
                          "probe_version": PROBE_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def transport_for(config=DEFAULT, renderer=None, cache=True):
    """The transport of `config`: from memory, else from the disk cache, else probed (and then cached).

    ``cache=False`` probes afresh and stores nothing. An unreadable or outdated cache file is probed again
    and overwritten. A cache folder that cannot be written is not an error (the probe is kept in memory).
    """
    if not cache:
        return probe(config, renderer=renderer)
    key = cache_key(config)
    with _probe_lock:
        with _memory_lock:
            if key in _memory:
                _memory[key] = _memory.pop(key)                     # most recently used last
                return _memory[key]
        path = cache_dir() / f"{key}.safetensors"
        transport = None
        if path.exists():
            try:
                transport = Transport.load(path)
            except (ValueError, OSError):
                transport = None
            with contextlib.suppress(OSError):                      # a read-only cache is still read
                os.utime(path)                                      # recently used: pruned last
            if transport is not None and transport.config != config:
                transport = None
        if transport is None:
            transport = probe(config, renderer=renderer)
            try:
                transport.save(path)
                _prune_disk(path.parent, keep=_max_on_disk())
            except OSError:
                pass
        with _memory_lock:
            _memory[key] = transport
            while len(_memory) > MAX_IN_MEMORY:                     # a visitor trying many spheres
                _memory.pop(next(iter(_memory)))
        return transport


def _max_on_disk():
    """How many probe files the disk cache keeps: PREDISTORT_CACHE_MAX_PROBES, else :data:`MAX_ON_DISK`."""
    value = os.environ.get("PREDISTORT_CACHE_MAX_PROBES", "").strip()
    try:
        return max(int(value), 1) if value else MAX_ON_DISK
    except ValueError:
        warnings.warn(f"PREDISTORT_CACHE_MAX_PROBES={value!r} is not a whole number; keeping {MAX_ON_DISK}")
        return MAX_ON_DISK


def _prune_disk(folder, keep):
    """Delete the least recently used probe files of `folder` beyond the newest `keep` (each scene a visitor
    tries adds one, ~3 MB at 128²: a public app must not fill its disk)."""
    files = sorted(folder.glob("*.safetensors"), key=lambda f: f.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()


def is_probed(config):
    """True when :func:`transport_for` would answer `config` from memory or disk, without probing."""
    key = cache_key(config)
    with _memory_lock:
        if key in _memory:
            return True
    return (cache_dir() / f"{key}.safetensors").exists()


# ---------------------------------------------------------------------------------------------------------
# Solving: projected FISTA with a diagonal majoriser, squared error then Huber
# ---------------------------------------------------------------------------------------------------------
ITERATIONS = 100        # total FISTA iterations (~0.2-0.3 s at 128² on one core)
L2_ITERATIONS = 40      # of which the first minimise the squared error
HUBER_DELTA = 0.005     # then a Huber loss with this threshold (≈ L1 for residuals above 0.005)


def fista(transport, x, target, iterations, l2_iterations, delta):
    """Projected FISTA on [R², k] matrices (k = batch·3 columns): returns the improved x.

    Minimises ``Σ φ(A x + b − target)`` over ``0 ≤ x ≤ 1`` with φ the squared error for the first
    `l2_iterations`, then the Huber function with threshold `delta` (its gradient is the residual clipped
    to ±delta); momentum restarts when the loss changes. Step: ``transport.step`` per texel.
    """
    A, At, step, b = transport.A, transport.At, transport.step, transport.b[:, None]
    y, t = x.clone(), 1.0
    for i in range(iterations):
        if i == l2_iterations:
            y, t = x.clone(), 1.0                           # restart momentum for the new loss
        r = A @ y + b - target
        if i >= l2_iterations:
            r = r.clamp(-delta, delta)
        x_next = (y - step * (At @ r)).clamp(0, 1)
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        y = x_next + ((t - 1) / t_next) * (x_next - x)
        x, t = x_next, t_next
    return x


@torch.no_grad()
def solve(target, transport, iterations=ITERATIONS, l2_iterations=L2_ITERATIONS, delta=HUBER_DELTA, start=None):
    """The pre-distortion of `target` [..., R, R, 3] for the transport's scene: a texture in [0,1], same shape.

    Parameters: ``transport`` from :func:`transport_for` / :func:`probe` (same resolution as `target`);
    ``iterations``, ``l2_iterations``, ``delta`` the schedule of :func:`fista`; ``start`` an initial texture
    (default: `target` itself, which is also what unseen texels keep). No rendering; ~0.2-0.3 s at 128².
    """
    res = transport.resolution
    t, unflatten = _flatten(target, res)
    x = t.clone() if start is None else _flatten(start, res)[0].clamp(0, 1)
    with one_thread():
        x = fista(transport, x, t, iterations, l2_iterations, delta)
    return unflatten(x)


# ---------------------------------------------------------------------------------------------------------
# Which methods still apply after the scene changed
# ---------------------------------------------------------------------------------------------------------
def applies(thing, config):
    """Whether `thing` — a model (any PredistortModel) or a :class:`Transport` — fits scene `config`.

    Returns ``(ok, reason)``: ``reason`` says in one sentence what differs and what to do. A model fits when
    it maps textures of the scene's resolution and was made for the same geometry (its ``info['scene']``;
    a model that records no scene is assumed to fit). A transport fits only its own scene. Refinement
    (:mod:`predistort.refine`) renders the scene itself and so always applies.
    """
    if isinstance(thing, Transport):
        made_for = thing.config.to_dict()
        kind = "The measured light transport"
        fix = "Probe the new scene (a few seconds)."
    else:
        if getattr(thing, "resolution", config.resolution) != config.resolution:
            return False, (f"This model maps {thing.resolution}×{thing.resolution} textures; the scene renders "
                           f"{config.resolution}×{config.resolution}. Use or train a model for that resolution.")
        made_for = (getattr(thing, "info", None) or {}).get("scene")
        kind = f"This {getattr(thing, 'model_type', '')} model".replace("  ", " ")
        fix = ("Re-probe and retrain it for this scene." if getattr(thing, "model_type", "") == "unrolled"
               else "Retrain it for this scene.")
        if not made_for:
            return True, f"{kind} records no scene; assuming it fits."
    current = config.to_dict()
    differ = [f"{k} {made_for[k]} → {current[k]}" for k in current if k in made_for and made_for[k] != current[k]]
    if differ:
        return False, f"{kind} was made for another scene ({', '.join(differ)}). {fix}"
    return True, f"{kind} was made for this scene."
