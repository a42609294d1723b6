"""Weights I/O: one format for every model type, in a local folder or a Hugging Face Hub repo alike.

A saved model is a folder (or Hub repo) holding

    model.safetensors   the tensors (safetensors: plain data, no code runs when it is read)
    config.json         model_type, its constructor arguments (resolution, ...), and ``scene``, ``recipe``,
                        ``metrics``: the scene it was trained for, how it was trained, what it reached
    README.md           a model card generated from config.json

``PredistortModel.save_pretrained(dir)`` / ``.from_pretrained(dir or "user/name", revision=...)`` /
``.push_to_hub("user/name")`` follow huggingface_hub's ``PyTorchModelHubMixin``; this module implements
them once for every model type. Only safetensors are ever read: a repo that offers pickles (``.bin``,
``.pt``, ...) is refused, because unpickling runs arbitrary code. Every failure — unknown repo, missing
file, no network, corrupt file, wrong shapes, another scene — raises :class:`WeightsError` with a message
that says what is wrong and what to do.
"""
import inspect
import json
import re
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_model

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
BUNDLED = "default"                                # name that selects the weights shipped with the package
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")
INFO_KEYS = ("scene", "recipe", "metrics")         # config.json entries that describe, not construct, a model


class WeightsError(ValueError):
    """Weights that cannot be loaded or saved; the message says what is wrong and what to do."""


def bundled_dir():
    """The folder of the default weights shipped with predistort (weights/default)."""
    from .scene import _data_dir
    return _data_dir("weights") / BUNDLED


# -- saving ------------------------------------------------------------------------------------------------
def save_files(model, folder):
    """Write model.safetensors, config.json and README.md of `model` into `folder`."""
    from . import __version__
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": model.model_type, **(model._hub_mixin_config or {}),
              **{k: model.info[k] for k in INFO_KEYS if model.info.get(k) is not None},
              "predistort_version": __version__}
    save_model(model, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "model_type": model.model_type})
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (folder / CARD_NAME).write_text(model_card(config, sum(p.numel() for p in model.state_dict().values())))


def model_card(config, n_params):
    """A Hub model card (README.md with YAML front matter) describing the weights from their config."""
    scene, recipe, metrics = (config.get(k) or {} for k in INFO_KEYS)
    lines = [
        "---", "library_name: predistort", "tags:", "- predistort", "- mitsuba", "- differentiable-rendering",
        "- pytorch_model_hub_mixin", "---", "",
        f"# predistort · `{config['model_type']}` model, {config.get('resolution')}×{config.get('resolution')}", "",
        "Pre-distorts a texture so that, seen through the glass sphere of the scene below and rendered with "
        "Mitsuba 3, it looks like the original. Trained through the differentiable renderer "
        "(`dr.wrap(source='torch', target='drjit')`).", "",
        f"- Parameters: {n_params:,}",
        f"- Scene: {json.dumps(scene) if scene else 'not recorded'}",
        f"- Training: {json.dumps(recipe) if recipe else 'not recorded'}",
        f"- Metrics: {json.dumps(metrics) if metrics else 'not recorded'}", "",
        "## Use", "", "```python", "from predistort import load_model",
        "model = load_model('USER/NAME')   # or a local folder", "```", "",
        "or `python -m predistort apply --weights USER/NAME --texture picture.png --out-dir out`.", "",
    ]
    notes = recipe.get("notes") if isinstance(recipe, dict) else None
    if notes:
        lines += ["## How these weights were made", "", notes, ""]
    return "\n".join(lines)


# -- finding the files ---------------------------------------------------------------------------------------
def _pickle_refusal(where, found):
    return WeightsError(
        f"{where} has no {WEIGHTS_NAME}{' but has ' + ', '.join(found) if found else ''}. predistort only loads "
        f"safetensors: pickle files (.bin, .pt, .pth) can run arbitrary code when loaded, so they are refused. "
        f"Whoever made them can convert them with safetensors.torch.save_file(state_dict, '{WEIGHTS_NAME}').")


def resolve(name_or_path, *, revision=None, cache_dir=None, force_download=False, local_files_only=False,
            token=None):
    """Return a local folder holding config.json and model.safetensors for a folder, "default" or a repo id.

    A repo id ("user/name") is fetched with ``hf_hub_download`` (Hub cache, ``HF_HUB_OFFLINE``,
    ``HF_ENDPOINT`` and ``revision`` as usual). Raises :class:`WeightsError`.
    """
    name = str(name_or_path).strip()
    if name == BUNDLED:
        path = bundled_dir()
        if not (path / WEIGHTS_NAME).exists():
            raise WeightsError(f"The bundled default weights are missing from {path}; reinstall predistort "
                               f"or pass a folder or Hub repo id.")
        return path
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / WEIGHTS_NAME).is_file():
            raise _pickle_refusal(f"The folder {path}", sorted(p.name for p in path.iterdir()
                                                              if p.suffix in PICKLE_SUFFIXES))
        if not (path / CONFIG_NAME).is_file():
            raise WeightsError(f"The folder {path} has no {CONFIG_NAME}: it was not saved by predistort "
                               f"(save with model.save_pretrained(folder)).")
        return path
    if path.exists():
        raise WeightsError(f"{path} is a file; give the folder that holds {WEIGHTS_NAME} and {CONFIG_NAME}.")
    if not REPO_ID.match(name) or name.count("/") > 1:
        raise WeightsError(f"'{name}' is neither an existing folder nor a Hugging Face repo id (USER/NAME).")
    hub = dict(revision=revision, cache_dir=cache_dir, force_download=force_download,
               local_files_only=local_files_only, token=token)
    _download(name, CONFIG_NAME, **hub)
    return Path(_download(name, WEIGHTS_NAME, **hub)).parent   # both files sit in one snapshot folder


def _download(repo_id, filename, *, revision, cache_dir, force_download, local_files_only, token):
    """hf_hub_download one file of a model repo, turning every Hub failure into a WeightsError."""
    from huggingface_hub import hf_hub_download, list_repo_files
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HfHubHTTPError,
                                        LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)
    at = f"'{repo_id}'" + (f" at revision '{revision}'" if revision else "")
    try:
        return hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                               force_download=force_download, local_files_only=local_files_only, token=token)
    except GatedRepoError:
        raise WeightsError(f"The Hub repo '{repo_id}' is gated: accept its terms on the Hub and log in "
                           f"(HF_TOKEN or `hf auth login`).") from None
    except RepositoryNotFoundError:
        raise WeightsError(f"No model repo '{repo_id}' on the Hugging Face Hub (or it is private and no token was "
                           f"given). Check the id (USER/NAME) and your HF_TOKEN.") from None
    except RevisionNotFoundError:
        raise WeightsError(f"The Hub repo '{repo_id}' has no revision '{revision}' (branch, tag or commit).") from None
    except EntryNotFoundError:
        if filename == WEIGHTS_NAME:
            try:
                found = [f for f in list_repo_files(repo_id, revision=revision, token=token)
                         if f.endswith(PICKLE_SUFFIXES)]
            except Exception:  # the refusal stands whether or not the listing works
                found = []
            raise _pickle_refusal(f"The Hub repo {at}", found) from None
        raise WeightsError(f"The Hub repo {at} has no {filename}: it is not a predistort model "
                           f"(those have {WEIGHTS_NAME} and {CONFIG_NAME}).") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        raise WeightsError(f"Could not fetch {filename} of {at}: the Hugging Face Hub cannot be reached (no "
                           f"network, or HF_HUB_OFFLINE=1) and the file is not in the local cache. Connect and "
                           f"retry, or load a local folder. ({type(e).__name__})") from None
    except HfHubHTTPError as e:
        raise WeightsError(f"The Hugging Face Hub refused {filename} of {at}: {str(e).splitlines()[0]}") from None
    except OSError as e:   # connection errors, full disk, unwritable cache
        raise WeightsError(f"Could not fetch {filename} of {at}: {e}") from None


# -- loading -------------------------------------------------------------------------------------------------
def read_config(folder):
    try:
        config = json.loads((Path(folder) / CONFIG_NAME).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{CONFIG_NAME} in {folder} cannot be read as JSON ({e}).") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise WeightsError(f"{CONFIG_NAME} in {folder} has no model_type: it was not saved by predistort.")
    return config


def load_folder(cls, folder):
    """Build the model described by `folder`'s config.json and fill it from its model.safetensors.

    `cls` is PredistortModel (any type, chosen by config.json) or a subclass (which then must match).
    """
    from .layers import PredistortModel
    config = read_config(folder)
    model_type = config["model_type"]
    if model_type not in PredistortModel.registry:
        raise WeightsError(f"{folder} holds a '{model_type}' model, which this version of predistort does not "
                           f"know (it knows: {', '.join(sorted(PredistortModel.registry))}).")
    if cls.model_type and cls.model_type != model_type:
        raise WeightsError(f"{folder} holds a '{model_type}' model, not a '{cls.model_type}' one.")
    model_cls = PredistortModel.registry[model_type]
    accepted = inspect.signature(model_cls.__init__).parameters
    kwargs = {k: v for k, v in config.items() if k in accepted and k != "self"}
    try:
        model = model_cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{CONFIG_NAME} in {folder} does not describe a valid '{model_type}' model: {e}") from None

    try:
        tensors = load_file(str(Path(folder) / WEIGHTS_NAME))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{WEIGHTS_NAME} in {folder} is corrupt or truncated and cannot be read ({e}). "
                           f"Download or save it again.") from None
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in tensors]
    problems += [f"unexpected {k}" for k in tensors if k not in expected]
    problems += [f"{k} has shape {list(tensors[k].shape)}, the model needs {list(v.shape)}"
                 for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if problems:
        raise WeightsError(f"The weights in {folder} do not fit a '{model_type}' model with "
                           f"{json.dumps(kwargs)}: " + "; ".join(problems[:5]) +
                           ("; ..." if len(problems) > 5 else "") + ".")
    model.load_state_dict(tensors, strict=True)
    model.info = {k: config[k] for k in INFO_KEYS if k in config}
    return model.eval()


def check_compatible(model, scene):
    """Raise WeightsError unless `model` was made for `scene` (a SceneConfig): same resolution and geometry."""
    if model.resolution != scene.resolution:
        raise WeightsError(f"These weights map {model.resolution}×{model.resolution} textures, but the scene renders "
                           f"{scene.resolution}×{scene.resolution}. Use weights trained at {scene.resolution}, or "
                           f"set the resolution to {model.resolution}.")
    trained = model.info.get("scene")
    if trained:
        current = scene.to_dict()
        differ = [f"{k} {trained[k]} (now {current[k]})" for k in current
                  if k in trained and k != "resolution" and trained[k] != current[k]]
        if differ:
            raise WeightsError("These weights were trained for another scene: " + ", ".join(differ) +
                               ". Retrain for this scene, or restore the scene they were trained for.")


# -- pushing -------------------------------------------------------------------------------------------------
def push(folder, repo_id, *, token=None, private=None, revision=None, commit_message=None):
    """Upload a saved model folder to the Hub repo `repo_id` (created if needed); returns the commit URL.

    The folder is loaded first, so what gets uploaded is known to load. Token: `token`, else HF_TOKEN or
    the one stored by `hf auth login`.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from .layers import PredistortModel
    folder = resolve(folder) if Path(folder).is_dir() else None
    if folder is None:
        raise WeightsError("push needs a local folder saved by predistort (model.safetensors + config.json).")
    load_folder(PredistortModel, folder)
    if not REPO_ID.match(repo_id) or repo_id.count("/") != 1:
        raise WeightsError(f"'{repo_id}' is not a Hub repo id of the form USER/NAME.")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), revision=revision,
                                 commit_message=commit_message or "Upload predistort weights",
                                 allow_patterns=[WEIGHTS_NAME, CONFIG_NAME, CARD_NAME, "history.json",
                                                 "loss_curve.png"])
    except HfHubHTTPError as e:
        raise WeightsError(f"The Hub refused the upload to '{repo_id}': {str(e).splitlines()[0]} "
                           f"(log in with `hf auth login` or set HF_TOKEN).") from None
    except OSError as e:
        raise WeightsError(f"Could not upload to '{repo_id}': {e}") from None
    return getattr(info, "commit_url", str(info))
