"""The differentiable renderer: the glass-sphere scene as a PyTorch function ``texture [H,W,3] -> image``.

A texture on the plane behind the glass sphere, rendered by Mitsuba, differentiable through ``dr.wrap``.

Gradients. ``dr.wrap(source='torch', target='drjit')`` turns the Mitsuba render into a PyTorch autograd
op: on ``loss.backward()`` PyTorch hands the image gradient to Dr.Jit, whose ``prb`` integrator
back-propagates it through the light paths to the texture (path replay: the backward pass re-traces the
same paths, with ``seed_grad``, instead of storing them).

Two rules follow from how ``prb`` and Dr.Jit work; :meth:`Renderer.loss_and_grad` obeys both:

1. *Back-propagate each render before the scene changes.* Path replay reads the scene as it is when the
   backward pass runs. Render texture A, put texture B on the plane, back-propagate A: A silently gets the
   gradient of B's scene (batching the tutorial's four renders before one backward pass makes its training
   diverge instead of converge; the README gives the losses).
2. *One thread in Dr.Jit at a time.* Renders and their backward passes run under
   :data:`predistort.backend.RENDER_LOCK`.

Renders without gradients skip ``dr.wrap`` and Dr.Jit's AD altogether, so they build no graph and leak nothing.
"""
import drjit as dr
import mitsuba as mi
import torch
import torch.nn.functional as F

from . import backend
from .scene import DEFAULT, TEXTURE_KEY, mitsuba_dict


class Renderer:
    """Owns one Mitsuba scene built from a :class:`~predistort.scene.SceneConfig` and renders textures in it.

    Parameters: ``config`` the scene (default: the tutorial's). Textures are torch tensors
    ``[resolution, resolution, 3]``, float, nominally in [0,1] (values are reflectances, used as stored);
    they are moved to :attr:`device` (``cuda`` under ``cuda_ad_rgb``, else ``cpu``). Images are
    ``[film_height, film_width, 3]`` (:attr:`film_shape`; the texture's square unless the scene states a
    film). Thread-safe: every method takes the process-wide render lock.
    """

    def __init__(self, config=DEFAULT):
        self.variant = backend.init()                 # cuda_ad_rgb or llvm_ad_rgb, checked
        self.device = backend.device()                # where textures and images live
        self.config = config                          # the scene this renderer draws
        self.resolution = config.resolution           # texture side
        self.film_shape = (config.film_size[1], config.film_size[0], 3)   # rendered image: [H, W, 3]
        with backend.RENDER_LOCK:
            self.scene = mi.load_dict(mitsuba_dict(config))
            self.params = mi.traverse(self.scene)     # the scene's differentiable parameters ...
            self.params.keep([TEXTURE_KEY])           # ... of which only the texture ever changes

    def __del__(self):
        # This renderer may die on any thread (the last reference dropped, or Python's cyclic collector):
        # its scene is freed by the next holder of the render lock instead (predistort.backend, "Threads").
        scene, params = getattr(self, "scene", None), getattr(self, "params", None)
        if scene is not None and backend is not None and backend.bury is not None:   # not at interpreter exit
            backend.bury(scene, params)

    # -- the render itself, in Dr.Jit ----------------------------------------------------------------------
    def _render_drjit(self, texture, spp, seed, seed_grad):
        """Put `texture` (a Dr.Jit tensor) on the plane and render; called by dr.wrap in AD mode."""
        self.params[TEXTURE_KEY] = texture
        self.params.update()
        return mi.render(self.scene, self.params, spp=spp, seed=seed, seed_grad=seed_grad)

    def _check(self, texture):
        shape = (*self.config.texture_shape, 3)
        if tuple(texture.shape) != shape:
            raise ValueError(f"This renderer's scene is {shape[1]}×{shape[0]}: expected a texture of "
                             f"shape {list(shape)}, got {list(texture.shape)}. Resize the texture or build a "
                             f"Renderer for its resolution.")
        return texture.to(self.device, torch.float32)

    def _check_image(self, image):
        if tuple(image.shape) != self.film_shape:
            raise ValueError(f"This renderer's film is {self.film_shape[1]}×{self.film_shape[0]}: expected a target "
                             f"image of shape {list(self.film_shape)}, got {list(image.shape)}.")
        return image.to(self.device, torch.float32)

    # -- public API ----------------------------------------------------------------------------------------
    def render(self, texture, spp=4, seed=0, seed_grad=None):
        """Render `texture` [R,R,3] and return the image [H,W,3] (float32, linear, on :attr:`device`).

        Parameters: ``spp`` samples per pixel (noise ~ 1/sqrt(spp)); ``seed`` the sampler seed (the same seed
        gives the same noise); ``seed_grad`` the seed of the backward pass's replay (default ``seed + 1``,
        as in the tutorial). If `texture` requires grad and grad mode is on, the result is differentiable
        through ``dr.wrap``; the caller must then run its backward while holding
        :data:`~predistort.backend.RENDER_LOCK` from before this call, and before anything else is rendered
        in this scene (see the module docstring) — :meth:`loss_and_grad` does exactly that.
        """
        texture = self._check(texture)
        seed_grad = seed + 1 if seed_grad is None else seed_grad
        with backend.RENDER_LOCK:
            if texture.requires_grad and torch.is_grad_enabled():
                # Wrapped per call, not kept on self: a renderer that held its own bound method would be a
                # reference cycle, freed by Python's cyclic collector on whichever thread runs it next, and
                # Dr.Jit must not free a scene on one thread while another renders (backend's "Threads").
                wrapped = dr.wrap(source="torch", target="drjit")(self._render_drjit)
                return wrapped(texture, spp=spp, seed=seed, seed_grad=seed_grad)
            # Primal only: no dr.wrap, no AD graph, nothing kept alive after the call.
            with dr.suspend_grad():
                self.params[TEXTURE_KEY] = mi.TensorXf(texture.detach().contiguous())
                self.params.update()
                image = mi.render(self.scene, self.params, spp=spp, seed=seed)
                return image.torch().clone()

    def loss_and_grad(self, texture, target, spp=4, seed=0, seed_grad=None, loss_fn=F.l1_loss):
        """Render `texture`, compare with `target`, back-propagate: returns ``(loss, d loss / d texture)``.

        The render and its backward pass run under the render lock with this texture in the scene, so the
        gradient is exact (rule 1 above) and threads cannot interleave (rule 2). `texture` may be the output
        of a model: pass ``out.detach()`` here and call ``out.backward(grad)`` afterwards, outside the lock —
        this is how :func:`predistort.train.train` batches the model's own backward pass.
        """
        leaf = self._check(texture).detach().requires_grad_(True)
        target = self._check_image(target)
        with backend.RENDER_LOCK, torch.enable_grad():
            image = self.render(leaf, spp=spp, seed=seed, seed_grad=seed_grad)
            loss = loss_fn(image, target)
            loss.backward()
        return loss.item(), leaf.grad
