"""Today's path, frozen for bench/scale.py: the probe and the instant solve as predistort/solve.py had them at
commit 13b22d9 (before issue 13), so that the benchmark's baseline really is the old code, run in the same run
as the new one. Verbatim but for the imports (package-relative -> absolute) and the parts the benchmark does not
use (the probe cache, instant_model, applies). Do not "improve" it: it is the yardstick.

Its docstring at that commit, in short: A is traced along the sphere's specular chains (each chain from the
camera, all rays at once), assembled as K·S with int64 indices over the whole film, calibrated with two
spp-256 renders at full resolution, pruned at 1e-4; solve() runs 100 FISTA iterations (40 on the squared
error) on int64 CSR tensors, one torch thread.
"""
import contextlib
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

from predistort.scene import DEFAULT, SceneConfig

# torch's sparse CSR tensors work well for what is used here; their "beta" notices would only add noise.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")

PROBE_VERSION = 1              # bump when the probe's output changes: old cache files are then ignored
CHAINS = ("", "R", "TT", "TRT", "TRRT")   # specular chains traced: R = reflect, T = refract at the sphere
PRUNE = 1e-4                   # entries of A below this are dropped (rows rescaled to keep their sums)
CALIBRATE_SPP = 256            # samples per pixel of the two calibration renders
CALIBRATE_BLUR = 4.0           # σ (pixels) of the blur that keeps the calibration smooth
FILTER_STDDEV = 0.5            # Mitsuba's default film filter: Gaussian, σ = 0.5 px, radius 4σ


@contextlib.contextmanager
def one_thread():
    """Run the enclosed torch work on one intra-op thread (restored afterwards).

    Sparse matrix products here take ~1 ms on one thread; with two threads on a loaded 2-core machine
    they took 5–30× longer (every step waits for the busiest core). Process-wide while it lasts.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    from predistort import backend
    from predistort.render import Renderer

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
