"""Measure a scene's light transport ``render(T) = A·T + b`` once, by tracing, and cache it per scene.

The optics. For a fixed scene the render is linear in the texture (light that bounces plane → sphere → plane
again is negligible)::

    render(T) = A · T + b

``T`` is the texture (R² texels per colour channel), ``A`` the sparse light-transport matrix (W·H film
pixels × R² texels; row p says which texels pixel p sees and how much) and ``b`` what the sphere reflects
from the environment. The film (W × H, :attr:`~predistort.scene.SceneConfig.film_size`) may be coarser than
the texture: A is then rectangular, and a pixel sees many texels. The glass does not disperse, so one ``A``
serves all three channels.
:mod:`predistort.solve` inverts it for a picture.

Tracing (:func:`probe`). A pixel's value is the reconstruction filter's weighted average of its camera
samples; each sample follows a *deterministic* chain of specular events through the smooth dielectric
sphere — reflect with weight F (Fresnel), or refract with weight 1 − F — until it lands on the plane, where
the bitmap is read with bilinear interpolation, or escapes to the white environment (radiance 1, which
makes up ``b``). So instead of rendering probe textures and reading the noisy footprints back, this module
traces the camera rays itself with Mitsuba (``sensor.sample_ray`` and ``scene.ray_intersect``, so camera,
film and shapes are exactly the renderer's), on a regular n×n grid of positions per pixel, along the five
specular chains that matter (direct; R; TT; TRT; TRRT), and assembles

    A = K · S          K: pixel ← sample, the film's Gaussian filter (σ = 0.5 px, radius 2 px), rows sum to 1
                       S: sample ← texel, bilinear weights × the chain's Fresnel weight

The chains share their beginnings (TT, TRT and TRRT all start with T), so they are traced as a tree: every
intersection is computed once. Tracing runs over bands of film rows and A is assembled over bands of pixel
rows, so that memory grows with the result (~20 entries per pixel), not with the samples behind it.

Calibration. Two renders of the coordinate textures 0 and 1 measure what tracing cannot see: how much
environment light reaches the plane (the sphere shadows and focuses it). Their difference is each pixel's
gain; a smooth per-pixel factor ``blur(gain_rendered) / blur(gain_traced)`` rescales A's rows. The factor
is smooth by construction (σ = 4 px at 128², the same patch of the scene at every size), so above
:data:`CALIBRATE_RESOLUTION` it is measured at that resolution and upsampled: two small renders instead of
two full ones. Entries of A below :data:`PRUNE` are then dropped, each row rescaled to keep its sum.

Accuracy: A·T + b matches real renders of photographs to about the renders' own noise, and of random
textures to a few times it (at the sphere's compressed rim a pixel covers several texels, more than its n×n
samples resolve); tests/test_solve.py and tests/test_scale.py state the errors, bench/probe_accuracy.py
measures each setting. :mod:`predistort.probe_cache` keeps transports per scene (use its
:func:`~predistort.probe_cache.transport_for` rather than probing twice).

Limits: square textures, R from 8 to :data:`predistort.scene.MAX_TEXTURE_RESOLUTION`, films up to
:data:`predistort.scene.MAX_RESOLUTION` on a side. Dr.Jit work (tracing,
calibration renders) holds :data:`predistort.backend.RENDER_LOCK`; assembly runs outside it.
"""
import json
import math
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import backend
from .scene import DEFAULT, SceneConfig, roles
from .target import FILTER_STDDEV, filter_image as _filter_image, filter_taps as _filter_taps  # noqa: F401

# torch's sparse CSR tensors work well for what is used here; their "beta" notices would only add noise.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")

PROBE_VERSION = 3              # bump when the probe's output changes (its constants below included: tests/test_solve.py
                               # pins them to this version): old cache files are then ignored
CHAINS = ("", "R", "TT", "TRT", "TRRT")   # the ball's specular chains: R = reflect, T = refract at the sphere
BALL_DEPTH = 4                 # ... i.e. paths of up to four events through the ball world (depth_for)
MAX_DEPTH = 8                  # events followed at most in any other world (a rod's internal reflections)
MIN_WEIGHT = 1e-4              # ... where a path lighter than this is dropped (its weight: info['pruned'])
PRUNE = 1e-3                   # entries of A below this are dropped (rows rescaled to keep their sums)
CALIBRATE_SPP = 256            # samples per pixel of the two calibration renders
CALIBRATE_BLUR = 4.0           # σ (pixels of the calibration renders) of the blur that keeps the factor smooth
CALIBRATE_RESOLUTION = 128     # calibration renders are at most this size; the factor is upsampled from there
SUPERSAMPLING = 3              # camera samples per pixel and axis (2 is faster and a little less exact)
SAMPLE_SPACING = 2 / 3         # a texture finer than the film: camera samples at most this many texels apart
COVER_SPACING = 1.5            # ... or, where that would pass MAX_SAMPLES, at most this many (every texel read)
MAX_SAMPLES = 1 << 24          # camera samples of one probe beyond which the finer spacing is given up
BAND_SAMPLES = 1 << 18         # camera samples traced at once (caps Dr.Jit's memory)
BAND_ENTRIES = 1 << 20         # about this many entries of K·S assembled at once (caps torch's memory)
TRACE, ASSEMBLE = 0.25, 0.33   # progress reported when tracing ends, when assembly starts (of 0..1)


# ---------------------------------------------------------------------------------------------------------
# The transport: A and b, with what the solver derives from them
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Transport:
    """The measured light transport of one scene: ``render(T) ≈ A·T + b``.

    Fields: ``config`` the scene; ``crow``, ``col`` (int32), ``val`` (float32) the CSR arrays of A (W·H pixel
    rows × R² texel columns, pixel index ``row·W + column``, texel index ``row·R + column``); ``b`` [W·H]
    the environment's part of
    each pixel; ``info`` how it was measured (seconds, supersampling, calibration). Derived on first use:
    ``A``, ``At`` (CSR tensors with int32 indices: torch's sparse products are fastest so) and ``step``
    (1 / diag-majoriser of AᵀA, 0 for unseen texels).
    """
    config: SceneConfig
    crow: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor
    b: torch.Tensor
    info: dict = field(default_factory=dict)
    cover: torch.Tensor = None
    through: torch.Tensor = None

    def __post_init__(self):
        self.crow, self.col = self.crow.to(torch.int32).contiguous(), self.col.to(torch.int32).contiguous()
        self.val, self.b = self.val.to(torch.float32).contiguous(), self.b.to(torch.float32).contiguous()

    @property
    def resolution(self):
        """The texture's long side R (a square texture: A has R² columns)."""
        return self.config.resolution

    @property
    def texture_shape(self):
        """The texture's ``(rows, columns)`` (A has rows·columns columns)."""
        return self.config.texture_shape

    def masks(self):
        """``(silhouette, through)`` [H, W] bool: the pixels whose camera ray first meets an object (more than
        half of the pixel), and those of them whose light comes from the print (at least half of it)."""
        width, height = self.film_size
        if self.cover is None:
            raise ValueError("this transport was measured without its object masks: probe it again")
        silhouette = (self.cover > 0.5).reshape(height, width)
        return silhouette, silhouette & (self.through > 0.5).reshape(height, width)

    @property
    def film_size(self):
        """The film's ``(width, height)`` (A has width·height rows)."""
        return self.config.film_size

    @property
    def shape(self):
        """A's ``(pixels, texels)``."""
        rows, cols = self.texture_shape
        return (self.config.film_pixels, rows * cols)

    @property
    def nnz(self):
        return int(self.val.numel())

    @property
    def nbytes(self):
        """Bytes held: A's arrays and b, plus Aᵀ and the step once derived (what the memory cache counts)."""
        tensors = [self.crow, self.col, self.val, self.b]
        if "_A" in self.__dict__:
            tensors += [self._At.crow_indices(), self._At.col_indices(), self._At.values(), self._step,
                        self._At_step.values()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def prepare(self):
        """Derive ``A``, ``At`` and ``step`` now rather than at the first solve."""
        self._derive()
        return self

    def _derive(self, transposed=None):
        """Build A, Aᵀ (from `transposed`, Aᵀ's CSR arrays, when the caller has them) and the step."""
        if "_A" in self.__dict__:
            return
        pixels, texels = self.shape
        self._A = torch.sparse_csr_tensor(self.crow, self.col, self.val, (pixels, texels))
        self._At = torch.sparse_csr_tensor(*(transposed or _transpose(self.crow, self.col, self.val, texels)),
                                           (texels, pixels))
        self._step = majoriser_step(self._A, self._At)
        self._At_step = scale_rows(self._At, self._step)

    @property
    def A(self):
        self._derive()
        return self._A

    @property
    def At(self):
        self._derive()
        return self._At

    @property
    def At_step(self):
        """D⁻¹Aᵀ: Aᵀ with each row (texel) scaled by :attr:`step`, the solvers' preconditioned transpose."""
        self._derive()
        return self._At_step

    @property
    def step(self):
        """[R², 1]: the preconditioned step 1 / (AᵀA1) per texel (0 where no pixel sees the texel)."""
        self._derive()
        return self._step

    @property
    def seen(self):
        """[R, R] bool: texels that some pixel sees (the rest never show in the render)."""
        return (self.step > 0).reshape(self.texture_shape)

    def render(self, texture):
        """The predicted render ``A·T + b`` [..., H, W, 3] of `texture` [..., rows, cols, 3] (any batch shape)."""
        width, height = self.film_size
        x, unflatten = flatten(texture, self.texture_shape, out=(height, width))
        with backend.one_thread():
            y = self.A @ x + self.b[:, None]
        return unflatten(y)

    # -- files ---------------------------------------------------------------------------------------------
    def save(self, path):
        """Write this transport as one safetensors file (tensors + JSON metadata)."""
        from safetensors.torch import save_file
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        masks = {} if self.cover is None else {"cover": self.cover.contiguous(), "through": self.through.contiguous()}
        save_file({"crow": self.crow, "col": self.col, "val": self.val, "b": self.b, **masks}, str(tmp),
                  metadata={"config": json.dumps(self.config.to_dict()), "info": json.dumps(self.info),
                            "probe_version": str(PROBE_VERSION)})
        os.replace(tmp, path)                                       # readers never see half a file
        return path

    @classmethod
    def load(cls, path, config=None):
        """Read a file written by :meth:`save`; raises ValueError if it is unreadable or of another version.
        `config`: the scene it is expected to be (a world with meshes is rebuilt from it, not from the file)."""
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:   # any corruption means: probe again
            raise ValueError(f"cannot read transport {path}: {e}") from None
        if meta.get("probe_version") != str(PROBE_VERSION):
            raise ValueError(f"transport {path} is from probe version {meta.get('probe_version')}, "
                             f"not {PROBE_VERSION}")
        recorded = json.loads(meta["config"])
        scene = config if config is not None and config.to_dict() == recorded else SceneConfig.from_dict(recorded)
        transport = cls(scene, tensors["crow"], tensors["col"], tensors["val"], tensors["b"],
                        json.loads(meta.get("info", "{}")), cover=tensors.get("cover"), through=tensors.get("through"))
        transport.prepare()
        return transport


def _transpose(crow, col, val, columns=None):
    """The CSR arrays (int32 indices) of the transpose of the CSR matrix ``(crow, col, val)`` of `columns`
    columns (default: square): its entries column by column. A stable sort by column keeps the rows
    ascending within each, so the result's columns are sorted even where the input's were not."""
    n = crow.numel() - 1
    columns = n if columns is None else columns
    rows = torch.repeat_interleave(torch.arange(n, dtype=torch.int32, device=col.device), (crow[1:] - crow[:-1]).long())
    col_sorted, order = torch.sort(col, stable=True)
    crow_t = torch.zeros(columns + 1, dtype=torch.int64, device=col.device)
    crow_t[1:] = torch.cumsum(torch.bincount(col_sorted.long(), minlength=columns), 0)
    return crow_t.to(torch.int32), rows[order], val[order]


def majoriser_step(A, At):
    """[n, 1]: 1 / (AᵀA1) per texel, 0 for texels no pixel sees. AᵀA1 ≥ every row sum of AᵀA (A ≥ 0), so this
    diagonal step never overshoots the squared error's minimum along any texel."""
    with backend.one_thread():
        d = At @ (A @ torch.ones(A.shape[1], 1, dtype=A.dtype, device=A.device))
    return torch.where(d > 1e-6, 1.0 / d.clamp_min(1e-6), torch.zeros_like(d))


def scale_rows(M, scale):
    """The CSR matrix ``diag(scale) · M`` (same index arrays, new values)."""
    crow = M.crow_indices()
    rows = torch.repeat_interleave(torch.arange(M.shape[0], device=crow.device), (crow[1:] - crow[:-1]).long())
    return torch.sparse_csr_tensor(crow, M.col_indices(), M.values() * scale.reshape(-1)[rows], M.shape)


def flatten(texture, resolution, out=None):
    """[..., H, W, 3] -> ([H·W, batch·3] float32 CPU, function mapping a [h·w, batch·3] matrix back to
    [..., h, w, 3] on the input's device). `resolution`: R (square) or ``(H, W)``; `out`: ``(h, w)`` of the
    matrices `unflatten` takes (default: the input's)."""
    texture = torch.as_tensor(texture)
    h, w = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    if tuple(texture.shape[-3:]) != (h, w, 3):
        raise ValueError(f"expected {'textures' if out is None else 'images'} of shape [..., {h}, {w}, 3], "
                         f"got {list(texture.shape)}")
    out_h, out_w = out or (h, w)
    batch = texture.shape[:-3]
    device = texture.device
    x = texture.detach().to("cpu", torch.float32).reshape(-1, h * w, 3)
    x = x.permute(1, 0, 2).reshape(h * w, -1)                              # [H·W, B·3]

    def unflatten(y):
        y = y.reshape(out_h * out_w, -1, 3).permute(1, 0, 2)
        return y.reshape(*batch, out_h, out_w, 3).to(device)
    return x.contiguous(), unflatten


# ---------------------------------------------------------------------------------------------------------
# Tracing: the camera's specular chains through the sphere, as a tree, one band of film rows at a time
# ---------------------------------------------------------------------------------------------------------
def _trace_band(scene, config, side, row0, row1):
    """Follow every camera sample of fine rows ``row0 .. row1 − 1`` (a grid of ``side`` = (W·n, H·n) positions
    over the film) through the world's specular chains, as a tree.

    At each node every live path is intersected once, then, by what it met:

    - *the print*: the path ends there; its uv and weight are a hit;
    - *nothing*: it escapes to the white environment; its weight goes to ``env``;
    - *a black cap*: it ends, dark;
    - *a mirror*: it goes on reflected, weight unchanged;
    - *glass*: it splits into the reflected path (weight × F, Fresnel) and the refracted one (× 1 − F; total
      internal reflection gives F = 1), the glass's IOR against air from whichever side it meets it.

    Paths deeper than :func:`depth_for` events, or lighter than its weight threshold, are dropped, and the
    weight they carried is summed in ``pruned``. Each node's live paths are compacted before the next
    intersection, so the cost follows the paths, not the tree.

    Returns ``(hits, env, first, through, pruned)``: ``hits`` = (sample index on the fine grid, u, v, weight)
    of the paths that end on the print; ``env`` [(row1 − row0)·W·n]; ``first`` [same] 1 where the sample's
    first hit is an object; ``through`` [same] the weight that reaches the print after meeting an object.
    """
    import drjit as dr
    import mitsuba as mi

    (side_x, side_y) = side
    count = (row1 - row0) * side_x
    max_depth, min_weight = depth_for(config)
    sensor = scene.sensors()[0]
    role_of = roles(config)
    kinds = [(mi.ShapePtr(s), _ROLE_CODE.get(role_of.get(s.id(), "print"), GLASS), role_of.get(s.id()))
             for s in scene.shapes()]
    env, first, through = torch.zeros(count), torch.zeros(count), torch.zeros(count)
    hits, pruned = [], 0.0

    def node(ray, weight, sample, level):
        nonlocal pruned
        si = scene.ray_intersect(ray)
        kind, ior = dr.zeros(mi.UInt32, dr.width(ray.o)), dr.full(mi.Float, 1.5, dr.width(ray.o))
        for ptr, code, role in kinds:
            here = si.is_valid() & (si.shape == ptr)
            kind = dr.select(here, code, kind)
            if code == GLASS:
                ior = dr.select(here, float(role), ior)
        wi = si.to_local(-ray.d)
        fresnel, cos_t, _, eta_ti = mi.fresnel(mi.Frame3f.cos_theta(wi), ior)
        reflected = si.spawn_ray(si.to_world(mi.reflect(wi)))
        refracted = si.spawn_ray(si.to_world(mi.refract(wi, cos_t, eta_ti)))
        # One kernel per node: everything it yields is evaluated together, each ray intersected once.
        dr.eval(kind, fresnel, si.uv, reflected, refracted)
        kind = torch.from_numpy(np.array(kind)).long()
        fresnel = torch.from_numpy(np.array(fresnel))
        on_plane, escaped = kind == PRINT, kind == ESCAPE
        if on_plane.any():
            uv = torch.from_numpy(np.array(si.uv))
            hits.append((sample[on_plane] + row0 * side_x, uv[0][on_plane], uv[1][on_plane], weight[on_plane]))
            if level > 0:
                through.index_add_(0, sample[on_plane], weight[on_plane])
        env.index_add_(0, sample[escaped], weight[escaped])
        if level == 0:
            first[sample[kind >= MIRROR]] = 1.0
        mirror, glass = kind == MIRROR, kind == GLASS
        children = ((reflected, torch.where(mirror, weight, torch.where(glass, weight * fresnel, 0.0))),
                    (refracted, torch.where(glass, weight * (1 - fresnel), 0.0)))
        del si
        for child_ray, child_weight in children:
            live = child_weight > min_weight
            if level + 1 > max_depth:
                pruned += float(child_weight[live].sum())
                continue
            pruned += float(child_weight[~live].sum())
            if live.any():
                node(_gather(child_ray, live), child_weight[live], sample[live], level + 1)

    idx = dr.arange(mi.UInt32, count) + dr.opaque(mi.UInt32, row0 * side_x)   # opaque: one kernel for all bands
    film_pos = mi.Point2f((mi.Float(idx % side_x) + 0.5) / side_x, (mi.Float(idx // side_x) + 0.5) / side_y)
    try:
        with dr.suspend_grad():
            ray, _ = sensor.sample_ray(0.0, 0.5, film_pos, mi.Point2f(0.5, 0.5))   # pinhole: no lens sample
            node(ray, torch.ones(count), torch.arange(count), 0)
    finally:
        # node calls itself through its closure, a reference cycle holding the scene: broken here, so that
        # nothing of Dr.Jit's waits for Python's cyclic collector, which may run on another thread while
        # this one renders (see predistort.backend, "Threads").
        del node
    return [torch.cat(parts) for parts in zip(*hits)], env, first, through, pruned


ESCAPE, PRINT, BLACK, MIRROR, GLASS = 0, 1, 2, 3, 4        # what a path met (codes of _trace_band's nodes)
_ROLE_CODE = {"print": PRINT, "black": BLACK, "mirror": MIRROR}


def depth_for(config):
    """``(events, weight)``: how deep :func:`_trace_band` follows paths, and the weight below which it drops
    one. A single glass sphere (the ball world, in any frame) keeps the five chains it was measured with (direct, R, TT, TRT, TRRT: four events,
    nothing dropped by weight), so its transports and every number measured on them stay as they were;
    any other world goes :data:`MAX_DEPTH` events deep and drops paths under :data:`MIN_WEIGHT`."""
    ball = len(config.objects) == 1 and config.objects[0].shape == "sphere" and not config.objects[0].mirror
    return (BALL_DEPTH, 0.0) if ball else (MAX_DEPTH, MIN_WEIGHT)


def _gather(ray, keep):
    """The rays of `ray` where `keep` [N] (a torch bool mask) is true, as a new, compact Ray3f."""
    import mitsuba as mi
    index = mi.UInt32(keep.nonzero().squeeze(1).to(torch.int32).numpy().astype(np.uint32))
    import drjit as dr
    return mi.Ray3f(dr.gather(mi.Point3f, ray.o, index), dr.gather(mi.Vector3f, ray.d, index))


# ---------------------------------------------------------------------------------------------------------
# Assembly: the film filter K and the bilinear lookups S, multiplied one band of pixel rows at a time
# ---------------------------------------------------------------------------------------------------------
def _band_matrix(width, height, n, py0, py1):
    """K's rows for pixel rows ``py0 .. py1 − 1``: CSR over the fine rows ``fy0 .. fy1 − 1`` they see
    (``fy0 = fine_y[py0, 0]``); pixel (py, px) weighs fine sample (fy, fx) with ``K_y[py, fy]·K_x[px, fx]``."""
    fine_y, w_y = _filter_taps(height, n)
    fine_x, w_x = _filter_taps(width, n)
    side = width * n
    fy0, fy1 = int(fine_y[py0, 0]), int(fine_y[py1 - 1, -1]) + 1
    vals = w_y[py0:py1, None, :, None] * w_x[None, :, None, :]  # [P, W, k, k]: taps by fine row, then column
    cols = (fine_y[py0:py1, None, :, None] - fy0) * side + fine_x[None, :, None, :]
    keep = vals > 0                                             # CSR order: columns ascend within each row
    crow = torch.zeros((py1 - py0) * width + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(keep.sum((2, 3)).reshape(-1), 0)
    return torch.sparse_csr_tensor(crow, cols.expand_as(vals)[keep], vals[keep],
                                   ((py1 - py0) * width, (fy1 - fy0) * side))


def _sample_matrix(shape, side, fy0, fy1, sample, u, v, weight):
    """S for the fine rows ``fy0 .. fy1 − 1`` [(fy1 − fy0)·side, rows·cols]: each traced sample's bilinear
    lookup of the bitmap (``shape`` = its (rows, cols); wrap mode repeat) times its chain's weight. `sample`
    etc. are the hits in those rows; two hits of one sample on the same texel add up (S has one entry per
    sample and texel)."""
    th, tw = shape
    m, texels = (fy1 - fy0) * side, th * tw
    if sample.numel() == 0:                                      # no sample of these rows reached the print
        return torch.sparse_csr_tensor(torch.zeros(m + 1, dtype=torch.int64), torch.zeros(0, dtype=torch.int64),
                                       torch.zeros(0), (m, texels))
    x, y = u * tw - 0.5, v * th - 0.5                            # texel coordinates (texel centres at integers)
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    rows = (sample - fy0 * side).repeat(4)
    cols = torch.cat([((y0 + dy) % th) * tw + (x0 + dx) % tw for dy in (0, 1) for dx in (0, 1)])
    vals = torch.cat([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx]) * weight.repeat(4)
    key, order = torch.sort(rows * texels + cols)
    key, counts = torch.unique_consecutive(key, return_counts=True)
    vals = torch.segment_reduce(vals[order], "sum", lengths=counts)
    crow = torch.zeros(m + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(torch.bincount(key // texels, minlength=m), 0)
    return torch.sparse_csr_tensor(crow, key % texels, vals, (m, texels))


def _refuse_blind(config, cover, through):
    """Raise ValueError, saying what to move, when the camera sees none of the objects or nothing it sees in
    them comes from the print (`cover`, `through`: the per-pixel maps of :func:`probe`)."""
    if config.is_ball_world:
        return                                   # checked by the scene itself, and the ball always shows the print
    if not cover.max() > 0:
        raise ValueError("The camera sees none of the objects: aim camera.target at them, or widen camera.fov.")
    if not through.max() > 1e-3:
        if config.has_mirror:
            raise ValueError("Nothing seen in the mirror comes from the print: the mirror reflects the sky. Raise "
                             "the camera (look down at the mirror) or make the print larger.")
        raise ValueError("Nothing seen through the objects comes from the print: move the print behind the "
                         "objects as the camera sees them, or make it larger.")


def _blur(image, sigma):
    """Separable Gaussian blur of a [R, R] map (edges replicated)."""
    r = max(1, int(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum())
    x = image[None, None]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return x[0, 0]


def calibration_scene(config, resolution=CALIBRATE_RESOLUTION):
    """The scene of the calibration renders: `config` with its film scaled down to at most `resolution` on
    its longer side (its shape kept) and a texture of the film's width at most (the calibration textures
    are constant, so their size changes nothing but the cost)."""
    width, height = config.film_size
    scale = min(1.0, resolution / max(width, height))
    w, h = max(8, round(width * scale)), max(8, round(height * scale))
    return config.replace(resolution=min(config.resolution, max(w, h)), film_width=w, film_height=h)


def _calibration(config, gain_traced, spp, small, renderer=None):
    """The smooth per-pixel factor [H, W] that makes A's rows carry the rendered gain (environment light
    that reaches the plane), measured with two renders of the scene `small` (:func:`calibration_scene`)
    and upsampled to the film."""
    from .render import Renderer
    width, height = config.film_size
    if renderer is None or renderer.config != small:
        renderer = Renderer(small)
    # Coordinate textures 0 and 1: their difference is each pixel's true gain, environment lighting included.
    zero = torch.zeros(*small.texture_shape, 3)
    b_rendered = renderer.render(zero, spp=spp, seed=0).cpu().mean(-1)
    gain_rendered = renderer.render(zero + 1, spp=spp, seed=0).cpu().mean(-1) - b_rendered
    traced = gain_traced.reshape(1, 1, height, width)
    if small.film_size != config.film_size:
        traced = F.interpolate(traced, size=gain_rendered.shape, mode="area")
    factor = (_blur(gain_rendered, CALIBRATE_BLUR) / _blur(traced[0, 0], CALIBRATE_BLUR).clamp_min(1e-3))
    if small.film_size != config.film_size:
        factor = F.interpolate(factor[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return factor.clamp(0.5, 2.0)


def sampling_for(config):
    """``(supersampling, prune)`` for `config`: :data:`SUPERSAMPLING` and :data:`PRUNE` while a pixel spans at
    most 2 texels. A finer texture needs more samples per pixel: :data:`SAMPLE_SPACING` texels apart (a 2048²
    texture on a 512² film: 6, its render then as good as the 512² texture's; 3 leaves it 0.02 worse in L1
    ratio, bench/film.py), as many as :data:`MAX_SAMPLES` allows, never fewer than every texel read
    (:data:`COVER_SPACING`). Above 4 texels per pixel the threshold drops, since a pixel's gain is spread over
    ratio² times more texels (it keeps its ratio to a row's largest entry)."""
    ratio = config.resolution / min(config.film_size)
    n = max(SUPERSAMPLING, math.ceil(ratio / SAMPLE_SPACING))
    affordable = math.isqrt(MAX_SAMPLES // config.film_pixels)
    n = max(SUPERSAMPLING, math.ceil(ratio / COVER_SPACING), min(n, affordable))
    return n, PRUNE * min(1.0, (4 / ratio) ** 2)


def settings_for(config, supersampling=None, calibrate_spp=CALIBRATE_SPP, prune=None,
                 calibrate_resolution=CALIBRATE_RESOLUTION):
    """Every setting that changes the transport :func:`probe` measures for `config` with these arguments (None:
    :func:`sampling_for`'s), JSON-ready: the camera samples per pixel and axis and the threshold below which
    entries of A are dropped (the sampling), how deep paths are followed and the lightest kept
    (:func:`depth_for`), the film's filter, and the calibration's samples, size and blur. Mitsuba's version
    (its tracing and renders) comes with them. :func:`probe` records them in ``info['settings']``, and
    :func:`predistort.probe_cache.cache_key` holds them: a transport measured another way is another cache
    entry, whether the way was asked for or a constant changed."""
    import mitsuba as mi
    n, pruned_below = sampling_for(config)
    events, min_weight = depth_for(config)
    return {"supersampling": supersampling or n, "prune": pruned_below if prune is None else prune,
            "events": events, "min_weight": min_weight, "filter_stddev": FILTER_STDDEV,
            "calibrate_spp": calibrate_spp, "calibrate_resolution": calibrate_resolution,
            "calibrate_blur": CALIBRATE_BLUR, "mitsuba": mi.__version__}


def probe(config=DEFAULT, renderer=None, supersampling=None, calibrate_spp=CALIBRATE_SPP, prune=None,
          calibrate_resolution=CALIBRATE_RESOLUTION, progress=None):
    """Measure the light transport of `config`: returns a prepared :class:`Transport` (``A``, ``b``).

    Parameters:
        config                the scene (A is its film's pixels × its texture's texels)
        renderer              a :class:`predistort.render.Renderer` of `config` to reuse (else one is built)
        supersampling         camera samples per pixel and axis (default :func:`sampling_for`'s: 3 unless
                              the texture is over 4× finer than the film)
        calibrate_spp         samples per pixel of the two calibration renders (0: skip calibration)
        prune                 drop entries of A below this (rows keep their sums; default
                              :func:`sampling_for`'s: :data:`PRUNE` unless the texture is over 4× finer)
        calibrate_resolution  render the calibration at most this size (the factor is smooth; upsampled)
        progress              called as ``progress(fraction, message)`` with fraction in [0, 1] as the
                              probe goes (a ``gradio.Progress`` fits; :func:`tqdm_progress` adapts tqdm)
    Memory: the traced hits (~20 bytes per camera sample, n² per pixel), the result and its transpose;
    Dr.Jit's tracing and the assembly's temporaries work in bands, so they do not grow with the film.
    """
    from .render import Renderer

    start = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    renderer = renderer or Renderer(config)
    if renderer.config != config:
        raise ValueError("probe(): the renderer draws another scene than `config`")
    tex_rows, tex_cols = config.texture_shape    # the texture's grid
    width, height = config.film_size             # film
    settings = settings_for(config, supersampling, calibrate_spp, prune, calibrate_resolution)
    n, prune = settings["supersampling"], settings["prune"]
    side, side_y = width * n, height * n         # the fine grid of camera samples: side × side_y

    # 1. Trace, in bands of fine rows.
    what = "sphere's" if config.is_ball_world else "objects'"
    band_rows = max(1, BAND_SAMPLES // side)
    parts, env, first, through, pruned = [], [], [], [], 0.0
    first_hit = [0]                              # the hits of trace band i are first_hit[i] .. first_hit[i+1]
    for row0 in range(0, side_y, band_rows):
        row1 = min(side_y, row0 + band_rows)
        report(TRACE * row0 / side_y, f"tracing the {what} light paths ({row0 // n}/{height} rows)")
        with backend.RENDER_LOCK:
            band, band_env, band_first, band_through, band_pruned = _trace_band(
                renderer.scene, config, (side, side_y), row0, row1)
        if not band:                             # no sample of this band reached the print
            band = [torch.zeros(0, dtype=torch.int64), torch.zeros(0), torch.zeros(0), torch.zeros(0)]
        parts.append(band)
        env.append(band_env)
        first.append(band_first)
        through.append(band_through)
        pruned += band_pruned
        first_hit.append(first_hit[-1] + band[0].numel())
    sample, u, v, weight = (torch.cat(p) for p in zip(*parts))
    del parts
    env = torch.cat(env).reshape(side_y, side)

    # 2. Gain and environment per pixel: K applied to dense maps of the samples (the bilinear weights sum to 1);
    #    the share of each pixel that sees an object, and what reaches the print through them.
    b = _filter_image(env, width, height, n).reshape(-1)
    per_sample = torch.zeros(side * side_y).index_add_(0, sample, weight).reshape(side_y, side)
    gain_traced = _filter_image(per_sample, width, height, n).reshape(-1)
    cover = _filter_image(torch.cat(first).reshape(side_y, side), width, height, n).reshape(-1)
    through = _filter_image(torch.cat(through).reshape(side_y, side), width, height, n).reshape(-1)
    _refuse_blind(config, cover, through)
    del env, per_sample
    factor, calibration = torch.ones(width * height), None
    if calibrate_spp:
        report(TRACE, "calibrating the environment light (2 renders)")
        small = calibration_scene(config, calibrate_resolution)
        with backend.RENDER_LOCK:
            factor = _calibration(config, gain_traced, calibrate_spp, small,
                                  renderer if small == config else None).reshape(-1)
        calibration = {"spp": calibrate_spp, "blur_px": CALIBRATE_BLUR, "resolution": max(small.film_size),
                       "factor_min": float(factor.min()), "factor_max": float(factor.max())}

    # 3. A = K·S, calibrated and pruned, one band of pixel rows at a time.
    fine, w = _filter_taps(height, n)
    band_pixels = max(1, BAND_ENTRIES // (fine.shape[1] ** 2 * width))   # K has k² entries per pixel
    crow_parts, col_parts, val_parts = [torch.zeros(1, dtype=torch.int64)], [], []
    nnz = 0
    K, pattern = None, None
    with backend.one_thread():
        for py0 in range(0, height, band_pixels):
            py1 = min(height, py0 + band_pixels)
            report(ASSEMBLE + (1 - ASSEMBLE) * py0 / height, f"assembling the light transport ({py0}/{height} rows)")
            shape = torch.cat([fine[py0:py1] - fine[py0, 0], w[py0:py1]])  # K's band, up to a shift
            if pattern is None or not torch.equal(shape, pattern):
                K = _band_matrix(width, height, n, py0, py1)          # the same for every inner band
                pattern = shape
            fy0, fy1 = int(fine[py0, 0]), int(fine[py0, 0]) + K.shape[1] // side
            # The hits K's band sees: those of the trace bands that cover its fine rows, then the rows.
            lo, hi = first_hit[fy0 // band_rows], first_hit[min(len(first_hit) - 1, (fy1 - 1) // band_rows + 1)]
            here = (sample[lo:hi] >= fy0 * side) & (sample[lo:hi] < fy1 * side)
            S = _sample_matrix((tex_rows, tex_cols), side, fy0, fy1, *(x[lo:hi][here] for x in (sample, u, v, weight)))
            A = K @ S
            crow, cols, vals = A.crow_indices(), A.col_indices(), A.values().float()
            rows = torch.repeat_interleave(torch.arange(crow.numel() - 1), crow[1:] - crow[:-1])
            vals = vals * factor[py0 * width:py1 * width][rows]
            # Prune negligible entries; rescale each row so that its sum (the pixel's gain) is unchanged.
            row_sum = torch.zeros(crow.numel() - 1).index_add_(0, rows, vals)
            keep = vals >= prune
            rows, cols, vals = rows[keep], cols[keep], vals[keep]
            kept_sum = torch.zeros(crow.numel() - 1).index_add_(0, rows, vals)
            vals = vals * (row_sum / kept_sum.clamp_min(1e-12))[rows]
            crow_parts.append(nnz + torch.cumsum(torch.bincount(rows, minlength=crow.numel() - 1), 0))
            col_parts.append(cols.to(torch.int32))
            val_parts.append(vals)
            nnz += int(vals.numel())
    del sample, u, v, weight
    # SpGEMM leaves each row's columns unordered; transposing twice sorts them (A·x gathers x in order).
    crow, col, val = torch.cat(crow_parts), torch.cat(col_parts), torch.cat(val_parts)
    del crow_parts, col_parts, val_parts
    transposed = _transpose(crow.to(torch.int32), col, val, tex_rows * tex_cols)
    crow, col, val = _transpose(*transposed, width * height)
    report(1.0, "light transport measured")
    depth, min_weight = depth_for(config)
    info = {"method": f"traced specular chains, up to {depth} events, paths under {min_weight:g} dropped",
            "pruned": round(pruned / (side * side_y), 6), "supersampling": n, "prune": prune, "calibration": calibration, "nnz": nnz,
            "variant": backend.init(), "settings": settings, "seconds": round(time.perf_counter() - start, 2)}
    transport = Transport(config, crow, col, val, b, info, cover=cover, through=through)
    transport._derive(transposed)
    transport.info["seconds"] = round(time.perf_counter() - start, 2)
    return transport


def tqdm_progress(**tqdm_kwargs):
    """A ``progress(fraction, message)`` callback that drives a tqdm bar (0-100 %); close it with ``.close``."""
    from tqdm import tqdm
    bar = tqdm(total=100, unit="%", **tqdm_kwargs)

    def progress(fraction, message):
        bar.set_description_str(message, refresh=False)
        bar.update(round(100 * fraction) - bar.n)
    progress.close = bar.close
    return progress
