"""Trainable pre-distortion layers: ``texture [..., R, R, 3] -> pre-distorted texture [..., R, R, 3]``.

Every model type derives from :class:`PredistortModel` and so saves and loads the same way
(``save_pretrained`` / ``from_pretrained``, weights in ``model.safetensors``, a ``config.json`` beside
them; see :mod:`predistort.weights`). A model maps the three colour channels with the same weights: the
distortion is geometric, so it cannot depend on colour.
"""
import torch
import torch.nn as nn
from huggingface_hub import PyTorchModelHubMixin

from . import weights


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
                                commit_message=commit_message)

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
        super().__init__(resolution)
        n = resolution * resolution
        self.layers = nn.Sequential(nn.Linear(n, n), nn.Sigmoid())

    def forward(self, texture):
        self._check_input(texture)
        r = self.resolution
        channels = texture.movedim(-1, -3).reshape(*texture.shape[:-3], 3, r * r)   # [..., 3, R²]
        out = self.layers(channels)
        return out.reshape(*texture.shape[:-3], 3, r, r).movedim(-3, -1)
