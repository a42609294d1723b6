"""Trainable pre-distortion layers: ``texture [..., R, R, 3] -> pre-distorted texture [..., R, R, 3]``.

Every model type derives from :class:`PredistortModel` and so saves and loads the same way
(``save_pretrained`` / ``from_pretrained``, weights in ``model.safetensors``, a ``config.json`` beside
them; see :mod:`predistort.weights`). A model maps the three colour channels with the same weights: the
distortion is geometric, so it cannot depend on colour.
"""
import torch
import torch.nn as nn
from huggingface_hub import PyTorchModelHubMixin

from . import backend, probe, probe_cache, solve, target as targets, weights
from . import tolerance as tolerance_module

TUTORIAL_MAX_RESOLUTION = 128     # the tutorial layer's R⁴ weights: 1.07 GB at 128², 17 GB at 256²


class PredistortModel(nn.Module, PyTorchModelHubMixin,
                      library_name="predistort", tags=["predistort", "mitsuba", "differentiable-rendering"]):
    """Base of every model type: a registered ``model_type`` name, a ``resolution``, and the hub format.

    ``info`` holds what is known about the weights beyond the tensors — the scene they were trained for,
    the training recipe, the metrics they reached — and is written to ``config.json`` with them.
    """
    model_type = None                      # name in config.json; set by each subclass
    registry = {}                          # model_type -> class, filled by __init_subclass__

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.model_type:
            PredistortModel.registry[cls.model_type] = cls

    def __init__(self, resolution: int = 128):
        super().__init__()
        self.resolution = resolution       # texture side the model maps
        self.info = {}                     # scene / recipe / metrics, saved in config.json

    # Hub format: identical for every model type, implemented once in predistort.weights.
    def _save_pretrained(self, save_directory):
        weights.save_files(self, save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, revision=None, cache_dir=None,
                        force_download=False, local_files_only=False, token=None, allow_local=True):
        """Load weights from a local folder, "default" (the bundled weights) or a Hub repo id "user/name".

        Called on PredistortModel it returns whichever model type config.json names; called on a subclass
        it insists on that type. Only safetensors are read. ``allow_local=False`` never looks at the file
        system (for names typed by web visitors). Raises :class:`predistort.weights.WeightsError`.
        """
        folder = weights.resolve(pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir,
                                 force_download=force_download, local_files_only=local_files_only, token=token,
                                 allow_local=allow_local)
        return weights.load_folder(cls, folder)

    def push_to_hub(self, repo_id, *, token=None, private=None, revision=None, commit_message=None, **unused):
        """Save to a temporary folder and upload it with :func:`predistort.weights.push` (same files, same
        checks, model card filled in with `repo_id`); returns the commit URL."""
        import tempfile
        if unused:
            raise TypeError(f"push_to_hub() got unexpected arguments: {', '.join(sorted(unused))}")
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            return weights.push(tmp, repo_id, token=token, private=private, revision=revision,
                                commit_message=commit_message, model_class=PredistortModel)

    def _check_input(self, texture):
        if tuple(texture.shape[-3:]) != (self.resolution, self.resolution, 3):
            raise ValueError(f"This {self.model_type} model maps {self.resolution}×{self.resolution} RGB textures; "
                             f"got a tensor of shape {list(texture.shape)}.")


class TutorialLayer(PredistortModel):
    """The tutorial's model: one fully connected layer (R² -> R²) and a sigmoid, shared by the colour channels.

    Every output texel is a learned weighted sum of *all* input texels, so the layer can express any linear
    warp, but it has R⁴ weights (16384² = 268 M, 1.07 GB at R=128) and, fitted to a few textures, it learns
    those textures rather than the warp. Parameter names match the tutorial's ``Model1``
    (``layers.0.weight``, ``layers.0.bias``), so its state dict loads unchanged.

    The forward pass maps every channel of every texture in one matrix product ``[N·3, R²] @ [R², R²]ᵀ``
    (the tutorial loops over channels with matrix-vector products: same numbers, far slower).
    """
    model_type = "tutorial"

    def __init__(self, resolution: int = 128):
        if resolution > TUTORIAL_MAX_RESOLUTION:
            raise ValueError(f"The tutorial layer maps at most {TUTORIAL_MAX_RESOLUTION}×{TUTORIAL_MAX_RESOLUTION} "
                             f"textures: it has R⁴ weights ({4 * resolution ** 4 / 1e9:.0f} GB at {resolution}²). "
                             f"Use the generalising layer (unrolled) or the instant solve for larger pictures.")
        super().__init__(resolution)
        n = resolution * resolution
        self.layers = nn.Sequential(nn.Linear(n, n), nn.Sigmoid())

    def forward(self, texture):
        self._check_input(texture)
        r = self.resolution
        channels = texture.movedim(-1, -3).reshape(*texture.shape[:-3], 3, r * r)   # [..., 3, R²]
        out = self.layers(channels)
        return out.reshape(*texture.shape[:-3], 3, r, r).movedim(-3, -1)


# ---------------------------------------------------------------------------------------------------------
# The generalising layer: the scene's measured light transport, unrolled into a fixed-depth solver
# ---------------------------------------------------------------------------------------------------------
class _SparseMatmul(torch.autograd.Function):
    """``y = M x`` for a sparse M [m, n] given as CSR arrays, x dense [n, k]; differentiable in x and M's values.

    Arguments: ``val, x, crow, col, rows`` (M's values, the input, M's CSR arrays, the row of each entry)
    and ``val_t, crow_t, col_t`` (the same matrix transposed, for the backward pass ``dx = Mᵀ dy``).
    M's values get ``dval[e] = Σ_k dy[row(e), k] · x[col(e), k]``: a linear layer's weight gradient,
    restricted to the sparsity pattern.
    """

    @staticmethod
    def forward(ctx, val, x, crow, col, rows, val_t, crow_t, col_t):
        m, n = crow.numel() - 1, crow_t.numel() - 1
        ctx.save_for_backward(val, x, col, rows, val_t, crow_t, col_t)
        return torch.sparse_csr_tensor(crow, col, val, (m, n)) @ x.contiguous()

    @staticmethod
    def backward(ctx, dy):
        val, x, col, rows, val_t, crow_t, col_t = ctx.saved_tensors
        m, n = dy.shape[0], crow_t.numel() - 1
        dval = dx = None
        if ctx.needs_input_grad[1]:
            dx = torch.sparse_csr_tensor(crow_t, col_t, val_t.detach(), (n, m)) @ dy.contiguous()
        if ctx.needs_input_grad[0]:
            dval = (dy[rows] * x[col]).sum(1)
        return dval, dx, None, None, None, None, None, None


class _OnOneThread(torch.autograd.Function):
    """Run ``model._solve`` forward *and backward* on one torch thread (see :func:`predistort.backend.one_thread`).

    The forward pass keeps no graph; the backward pass recomputes it with autograd on (one more forward
    pass) and differentiates it there, so that its many small sparse products do not wait on a busy core.
    """

    @staticmethod
    def forward(ctx, model, target, start, *params):
        ctx.model = model
        ctx.save_for_backward(target, start, *params)
        with torch.no_grad(), backend.one_thread():
            return model._solve(target, start, *params)

    @staticmethod
    def backward(ctx, grad):
        saved = ctx.saved_tensors
        inputs = [t.detach().requires_grad_(need) for t, need in zip(saved, ctx.needs_input_grad[1:])]
        wanted = [t for t in inputs if t.requires_grad]
        with torch.enable_grad(), backend.one_thread():
            out = ctx.model._solve(*inputs)
            grads = iter(torch.autograd.grad(out, wanted, grad, allow_unused=True))
        return (None, *[next(grads) if t.requires_grad else None for t in inputs])


class UnrolledInverse(PredistortModel):
    """A fixed-depth solver of ``min |A·T' + b − T|`` whose sparse layers are the scene's light transport.

    The tutorial's idea — linear layers, a squashing nonlinearity, trained through the renderer — with
    the layers shaped by the optics. ``A`` (R² pixels × R² texels, some 15 taps per row) is a sparse linear
    layer whose taps sit where each pixel looks on the plane; ``Aᵀ`` is the same layer transposed, so each
    texel's taps sit at the pixels that see it. Both come from the probed transport
    (:mod:`predistort.solve`); the clamp to [0,1] plays the tutorial's sigmoid. Layer k is one step of
    projected, diagonally preconditioned FISTA, starting from ``x = y = T``::

        r  = A·y + b − T                              the predicted render's error
        r  = clamp(r, −δ_k, δ_k)                      Huber gradient: δ = 10 squared error, small δ ≈ L1
        x' = clamp(y − s_k · (Aᵀ r) / (AᵀA1), 0, 1)   preconditioned step, projected onto [0,1]
        y  = x' + β_k (x' − x)                        momentum

    Trained (through the renderer, :meth:`optimizer`): the step scale ``s_k``, threshold ``δ_k`` and
    momentum ``β_k`` of every layer — 3 × depth numbers that make a shallow solver as good as a much
    deeper untrained one; optionally A's values and ``b``. Nothing in it depends on particular pictures,
    which is why it corrects pictures it never saw. It fits only the scene it was probed for
    (``info['scene']``; see :func:`predistort.solve.applies`).

    Parameters: ``resolution`` R; ``nnz`` the number of entries of A (fixed by the probe); ``depth`` the
    number of layers, of which the first ``l2_depth`` (default: half) start on the squared error; ``pixels``
    A's rows, the film's pixels (None: R², the film on the texture's grid). Build one with
    :meth:`from_transport`. On a scene whose film is not the texture's grid, or whose camera is not the
    on-axis framing (:func:`predistort.target.target_for`), A has the film's rows, and the layers aim at the
    ball-free view of the input (the scene in ``info``, saved with the model) and start from the input itself.
    The preconditioner ``AᵀA1`` is recomputed from A's values at every forward pass and treated as a
    constant by the gradient.
    """
    model_type = "unrolled"

    def __init__(self, resolution: int = 128, nnz: int = 0, depth: int = 16, l2_depth: int = None,
                 pixels: int = None):
        super().__init__(resolution)
        n = resolution * resolution if pixels is None else pixels                # A's rows: the film's pixels
        self.depth = depth
        self.l2_depth = depth // 2 if l2_depth is None else l2_depth    # layers on the squared error
        self.register_buffer("crow", torch.zeros(n + 1, dtype=torch.int32))     # A's CSR row pointers
        self.register_buffer("col", torch.zeros(nnz, dtype=torch.int32))        # A's column (texel) indices
        self.val = nn.Parameter(torch.zeros(nnz))                                # A's values
        self.b = nn.Parameter(torch.zeros(n))                                    # environment term per pixel
        # δ = 10 never clips a residual (squared error); δ = 0.005 makes the Huber loss close to L1.
        deltas = [10.0] * self.l2_depth + [0.005] * (depth - self.l2_depth)
        self.log_delta = nn.Parameter(torch.log(torch.tensor(deltas)))
        self.log_step = nn.Parameter(torch.zeros(depth))
        self.momentum = nn.Parameter(self._fista_momentum(self.l2_depth, depth))

    @staticmethod
    def _fista_momentum(l2_depth, depth):
        """FISTA's momenta, restarting where the loss switches to Huber, as :func:`predistort.solve.fista`."""
        return torch.tensor(solve.momentum_schedule(depth, l2_depth))

    @classmethod
    def from_transport(cls, transport, depth: int = 16, l2_depth: int = None, scalars_from=None):
        """A model built on a probed :class:`predistort.probe.Transport`; untrained, it computes what
        ``predistort.solve.solve(T, transport, iterations=depth, l2_iterations=l2_depth)`` computes.

        ``scalars_from``: an UnrolledInverse whose trained per-layer scalars (and depth) to take instead —
        they describe how to step, not where the texels are, so they carry over to another resolution of
        the same scene (:func:`for_resolution`). The model shares A's arrays and ``b`` with the transport
        (no copy; they are not trained unless :meth:`optimizer` is asked to, which copies them first).
        """
        if scalars_from is not None:
            depth, l2_depth = scalars_from.depth, scalars_from.l2_depth
        rows = transport.b.numel()                                       # the film's pixels
        pixels = None if rows == transport.resolution ** 2 else rows     # None: the film on the texture's grid
        model = cls(transport.resolution, 0, depth, l2_depth, pixels)    # nnz 0: A's arrays come next
        model.scene = transport.config                                   # what the layers aim at: its target
        model._hub_mixin_config["nnz"] = transport.nnz                   # what config.json records
        model.crow, model.col = transport.crow, transport.col            # int32 buffers, shared
        model.val = nn.Parameter(transport.val, requires_grad=False)     # shared until trained
        model.b = nn.Parameter(transport.b, requires_grad=False)
        model._shared = (transport, transport.val.data_ptr(), model.val._version)
        if scalars_from is not None:
            with torch.no_grad():
                for name in ("log_step", "log_delta", "momentum"):
                    getattr(model, name).copy_(getattr(scalars_from, name))
        model.info = {"scene": transport.config.to_dict()}
        return model

    def optimizer(self, lr=0.02, transport_lr=0.0):
        """Adam for training through the renderer (pass it to :func:`predistort.train.train` as ``optimizer=``).

        The per-layer step scales, thresholds and momenta learn at `lr`; A's values and ``b`` at
        `transport_lr` — by default 0: they stay as probed, and their gradient (the costliest part of the
        backward pass) is not computed.
        """
        groups = [{"params": [self.log_step, self.log_delta, self.momentum], "lr": lr}]
        if transport_lr > 0 and self.__dict__.get("_shared"):          # train a copy, never the cached probe
            self.val = nn.Parameter(self.val.detach().clone())
            self.b = nn.Parameter(self.b.detach().clone())
            self._shared = None
        for p in (self.val, self.b):
            p.requires_grad_(transport_lr > 0)
        if transport_lr > 0:
            groups.append({"params": [self.val, self.b], "lr": transport_lr})
        return torch.optim.Adam(groups)

    def _pattern(self):
        """Index arrays of A and Aᵀ, derived once from the buffers: ``(rows, order, crow_t, col_t, rows_t)``.

        ``rows[e]`` is the row of A's entry e; Aᵀ's entries are A's in the order ``order``
        (``val_t = val[order]``), with CSR arrays ``crow_t, col_t`` and rows ``rows_t``.
        """
        key = (self.col.data_ptr(), self.crow.data_ptr(), self.col.device, self.col.numel())
        if getattr(self, "_pattern_key", None) != key:
            n, texels = self.crow.numel() - 1, self.resolution ** 2
            crow, col = self.crow.long(), self.col.long()
            rows = torch.repeat_interleave(torch.arange(n, device=col.device), crow[1:] - crow[:-1])
            order = torch.argsort(col * n + rows)                  # column-major = Aᵀ's row-major order
            crow_t = torch.zeros(texels + 1, dtype=torch.long, device=col.device)
            crow_t[1:] = torch.cumsum(torch.bincount(col, minlength=texels), 0)
            self._pattern_cache = (rows, order, crow_t, rows[order], col[order])
            self._pattern_key = key
        return self._pattern_cache

    def _solve(self, target, start, val, b, log_step, log_delta, momentum):
        """The unrolled solver on a [W·H, k] matrix of targets from a [R², k] start (k = batch·3 columns)."""
        n = self.resolution ** 2
        crow, col = self.crow.long(), self.col.long()
        rows, order, crow_t, col_t, rows_t = self._pattern()
        val_t = val[order]

        def A(x):
            return _SparseMatmul.apply(val, x, crow, col, rows, val_t, crow_t, col_t)

        def At(x):
            return _SparseMatmul.apply(val_t, x, crow_t, col_t, rows_t, val, crow, col)

        with torch.no_grad():   # diagonal majoriser of AᵀA: the per-texel step (0 for texels no pixel sees)
            d = At(A(torch.ones(n, 1, device=target.device, dtype=target.dtype)))
            step = torch.where(d > 1e-6, 1.0 / d.clamp_min(1e-6), torch.zeros_like(d))
        x = y = start
        for k in range(self.depth):
            delta = log_delta[k].exp()
            r = A(y) + b[:, None] - target
            r = torch.minimum(torch.maximum(r, -delta), delta)
            x_next = (y - log_step[k].exp() * step * At(r)).clamp(0, 1)
            y = x_next + momentum[k] * (x_next - x)
            x = x_next
        return x

    def _operators(self):
        """``(A, D⁻¹Aᵀ)`` for inference, CSR with int32 indices (torch's fastest sparse products): the shared
        transport's own while A's values are untouched, else derived once per version of them."""
        shared = self.__dict__.get("_shared")
        if shared and shared[1] == self.val.data_ptr() and shared[2] == self.val._version:
            return shared[0].A, shared[0].At_step
        key = (self.val.data_ptr(), self.val._version, self.col.data_ptr(), self.val.device, self.val.dtype)
        if self.__dict__.get("_ops_key") != key:
            m, n = self.crow.numel() - 1, self.resolution ** 2
            crow, col, val = self.crow.to(torch.int32), self.col.to(torch.int32), self.val.detach()
            A = torch.sparse_csr_tensor(crow, col, val, (m, n))
            At = torch.sparse_csr_tensor(*probe._transpose(crow, col, val, n), (n, m))
            self._ops, self._ops_key = (A, probe.scale_rows(At, probe.majoriser_step(A, At))), key
        return self._ops

    @torch.no_grad()
    def _infer(self, target, start):
        """The same layers as :meth:`_solve`, without autograd: :func:`predistort.solve.iterate`."""
        A, At_step = self._operators()
        with backend.solver_threads():
            return solve.iterate(A, At_step, self.b[:, None] - target, start, self.log_step.exp().tolist(),
                                 self.log_delta.exp().tolist(), self.momentum.tolist())

    def _target(self, texture):
        """[W·H, B·3]: what the layers aim at for the pictures `texture` [..., R, R, 3]: the pictures
        themselves (the on-axis framing, film = texture), else their ball-free views on the film."""
        scene = self.__dict__.get("scene")
        if scene is None and (self.info or {}).get("scene"):        # a loaded model: the scene it records
            from .scene import SceneConfig
            scene = self.scene = SceneConfig.from_dict(self.info["scene"])
        if scene is None or targets.is_on_axis_framing(scene):
            return None
        r = self.resolution
        views = [targets.ball_free_view(t, scene) for t in texture.detach().reshape(-1, r, r, 3)]
        views = torch.stack(views).to(texture.device, texture.dtype)
        pixels = views.shape[1] * views.shape[2]
        return views.reshape(-1, pixels, 3).permute(1, 0, 2).reshape(pixels, -1).contiguous()

    def forward(self, texture):
        self._check_input(texture)
        r, n = self.resolution, self.resolution ** 2
        batch = texture.shape[:-3]
        start = texture.reshape(-1, n, 3).permute(1, 0, 2).reshape(n, -1)         # [R², B·3]
        target = self._target(texture)
        target = start if target is None else target
        params = (self.val, self.b, self.log_step, self.log_delta, self.momentum)
        if torch.is_grad_enabled() and any(t.requires_grad for t in (start, *params)):
            x = _OnOneThread.apply(self, target, start, *params)
        else:
            x = self._infer(target.contiguous(), start.contiguous())
        return x.reshape(n, -1, 3).permute(1, 0, 2).reshape(*batch, r, r, 3)


def for_resolution(model, transport):
    """The generalising layer `model` (an :class:`UnrolledInverse`) for `transport`'s scene and resolution.

    `model` itself when it was made for exactly that scene; else a layer built on `transport` with `model`'s
    trained per-layer scalars (:meth:`UnrolledInverse.from_transport` ``scalars_from=``), which describe how
    to step, not where: they carry over to every resolution of the scene they were trained for (measured
    from 32² to 1024², bench/scale.py). Cheap (no copy of A). Raises ValueError when `model` was made for
    another geometry (sphere, camera): its scalars were not trained for that scene.
    """
    if not isinstance(model, UnrolledInverse):
        raise TypeError(f"for_resolution() takes a generalising layer (unrolled), not a {model.model_type} model")
    scene = transport.config
    made_for = (model.info or {}).get("scene")
    if model.resolution == scene.resolution and made_for == scene.to_dict():
        return model
    if made_for:
        differ = [k for k, v in scene.to_dict().items() if k != "resolution" and made_for.get(k, v) != v]
        if differ:
            raise ValueError(f"This unrolled model was made for another scene ({', '.join(differ)} differ); its "
                             f"scalars do not carry over. Train one for this scene.")
    layer = UnrolledInverse.from_transport(transport, scalars_from=model)
    recipe = (model.info or {}).get("recipe") or {}
    layer.info = {"scene": scene.to_dict(), "recipe": {"scalars_from": f"a {model.resolution}² model", **recipe}}
    return layer


def instant_model(transport):
    """The instant solve as a model: an untrained :class:`UnrolledInverse` with the schedule of
    :func:`predistort.solve.solve` at this resolution (:func:`predistort.solve.iterations_for`). Same output
    as :func:`predistort.solve.solve` (to float rounding), but usable — and saveable — wherever a model is."""
    iterations, l2_iterations = solve.iterations_for(transport.resolution)
    model = UnrolledInverse.from_transport(transport, depth=iterations, l2_depth=l2_iterations)
    model.info["recipe"] = {"method": "solve", "iterations": iterations, "l2_iterations": l2_iterations}
    return model


def is_instant(model):
    """True for the instant solve as a model (:func:`instant_model`, or a "solve" trained in the app)."""
    return isinstance(model, UnrolledInverse) and ((model.info or {}).get("recipe") or {}).get("method") == "solve"


def for_scene(model, scene, renderer=None, progress=None, tolerance=None):
    """`model`, made to pre-distort for `scene`: another resolution of the scene it was made for.

    With a `tolerance` (:class:`predistort.tolerance.Tolerance`, or camera millimetres) that is not the exact
    spot, every model type falls back to the robust solve on the views of that tolerance
    (:class:`predistort.tolerance.RobustModel`, its ``info['note']`` says so): no trained layer is made for a
    range of setups yet.

    The model itself when it fits; the instant solve: the instant solve on `scene`'s light transport (with
    that resolution's schedule); a generalising layer: the same layer on `scene`'s transport, its trained
    scalars carried over (:func:`for_resolution`). The transport is probed first if it is new (``renderer``
    reused; ``progress(fraction, message)`` hears how the probe goes). The tutorial layer maps only its own
    resolution (R⁴ weights): ValueError, as for a model made for another geometry.
    """
    t = tolerance_module.Tolerance.of(tolerance)
    if not t.exact:
        kind = "instant solve" if is_instant(model) else f"{model.model_type} model"
        robust, _ = tolerance_module.robust_model(
            scene, t, renderer=renderer, progress=progress,
            note=f"The {kind} is made for one exact setup; for a tolerance it falls back to the robust solve.")
        return robust
    if model.resolution == scene.resolution and (model.info or {}).get("scene") in (None, scene.to_dict()):
        return model
    if not isinstance(model, UnrolledInverse):
        raise ValueError(f"This {model.model_type} model maps {model.resolution}×{model.resolution} textures only "
                         f"(the tutorial layer has R⁴ weights): pre-distort at {model.resolution}, or use the "
                         f"generalising layer or the instant solve for {scene.resolution}×{scene.resolution}.")
    transport = probe_cache.transport_for(scene, renderer=renderer, progress=progress)
    return instant_model(transport) if is_instant(model) else for_resolution(model, transport)


def for_any_scene(model, scene, renderer=None, progress=None):
    """`model` made to pre-distort for any `scene`: ``(model, how)``, `how` one line saying which it is.

    As :func:`for_scene` when the model fits `scene` or another resolution or film of the scene it was made
    for (the model itself, or the generalising layer rebuilt on `scene`'s transport); for a scene of
    another geometry (sphere, camera, print: e.g. what ``advise`` proposes), the instant solve on `scene`'s
    light transport, which needs no training. The transport is probed first if it is new.
    """
    own = (model.info or {}).get("scene")
    try:
        fitted = for_scene(model, scene, renderer=renderer, progress=progress)
    except ValueError:
        fitted = None
    if fitted is model:
        return model, f"the {model.model_type} model, made for this scene"
    if fitted is not None:
        kind = "the instant solve" if is_instant(model) else "the generalising layer"
        return fitted, f"{kind}, rebuilt on this scene's light transport ({scene.resolution}² texture)"
    transport = probe_cache.transport_for(scene, renderer=renderer, progress=progress)
    why = "made for another scene" if own else f"a {model.model_type} model of another resolution"
    return instant_model(transport), (f"the instant solve on this scene's light transport (the "
                                      f"{model.model_type} model was {why})")
