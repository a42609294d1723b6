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
import math
import os
import re
import threading
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
BUNDLED = "default"                                # name that selects the weights shipped with the package
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,199}")   # a branch, tag or commit (refs/pr/1 too)
INFO_KEYS = ("scene", "recipe", "metrics")         # config.json entries that describe, not construct, a model


class WeightsError(ValueError):
    """Weights that cannot be loaded or saved; the message says what is wrong and what to do."""


def bundled_dir():
    """The folder of the default weights shipped with predistort (weights/default)."""
    from .scene import _data_dir
    return _data_dir("weights") / BUNDLED


# -- saving ------------------------------------------------------------------------------------------------
def save_files(model, folder):
    """Write model.safetensors, config.json and README.md of `model` into `folder`.

    Everything is serialised before anything is written, and each file is written to a temporary name
    and then renamed, so a failure (a non-JSON value in ``model.info``, a full disk) leaves no half file.
    """
    from safetensors.torch import save_file
    from .version import __version__
    folder = Path(folder)
    config = {"model_type": model.model_type, **(model._hub_mixin_config or {}),
              **{k: model.info[k] for k in INFO_KEYS if model.info.get(k) is not None},
              "predistort_version": __version__}
    try:
        config_text = json.dumps(config, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise WeightsError(f"Cannot save: the model's config or info is not plain JSON ({e}). Keep "
                           f"model.info['scene'/'recipe'/'metrics'] to numbers, strings, lists and dicts.") from None
    state = model.state_dict()
    tensors, storages = {}, set()
    for key, value in state.items():                  # safetensors refuses tensors sharing memory: copy those
        value = value.detach().to("cpu").contiguous()
        ptr = value.untyped_storage().data_ptr()
        tensors[key] = value.clone() if ptr in storages else value
        storages.add(ptr)
    card = model_card(config, sum(v.numel() for v in state.values()))
    folder.mkdir(parents=True, exist_ok=True)
    # One metadata entry only: safetensors orders several at random, and identical weights should give
    # identical bytes (a re-push of unchanged weights is then no commit at all). model_type is in config.json.
    _write_atomic(folder / WEIGHTS_NAME, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    _write_atomic(folder / CONFIG_NAME, lambda tmp: tmp.write_text(config_text))
    _write_atomic(folder / CARD_NAME, lambda tmp: tmp.write_text(card))


def _write_atomic(path, write):
    """Call write(tmp) for a temporary file beside `path`, then rename it to `path` (no half-written file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def model_card(config, n_params):
    """A Hub model card (README.md with YAML front matter) describing the weights from their config.

    Built from the config's values alone (keys sorted), so the same weights always get the same card.
    ``USER/NAME`` stands for the repo id; :func:`push` fills it in.
    """
    def cell(value):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return text.replace("|", "\\|").replace("\n", " ")

    def table(title, data, what):
        if not isinstance(data, dict) or not data:
            return [f"## {title}", "", "Not recorded.", ""]
        return [f"## {title}", "", f"| {what} | value |", "|---|---|",
                *(f"| {k} | {cell(data[k])} |" for k in sorted(data) if k != "notes"), ""]

    scene, recipe, metrics = (config.get(k) for k in INFO_KEYS)
    res = config.get("resolution")
    hyper = {k: v for k, v in config.items() if k not in (*INFO_KEYS, "model_type", "predistort_version")}
    lines = [
        "---", "library_name: predistort", "tags:", "- predistort", "- mitsuba", "- differentiable-rendering",
        "- pytorch_model_hub_mixin", "---", "",
        f"# predistort · `{config['model_type']}` model, {res}×{res}", "",
        f"A `{config['model_type']}` pre-distortion model for predistort: it pre-distorts "
        f"{res}×{res} textures so that, seen through the glass sphere of the scene below and rendered with "
        "Mitsuba 3, they look like the originals. Trained through the differentiable renderer "
        "(`dr.wrap(source='torch', target='drjit')`).", "",
        f"- Model type: `{config['model_type']}`; hyper-parameters: `{json.dumps(hyper, sort_keys=True)}`",
        f"- Parameters: {n_params:,}",
        f"- Files: `{WEIGHTS_NAME}` (weights, safetensors), `{CONFIG_NAME}` (everything on this card)",
        f"- Saved by predistort {config.get('predistort_version', '?')}", "",
        *table("Metrics", metrics, "metric"),
        *table("Training recipe", recipe, "setting"),
    ]
    notes = recipe.get("notes") if isinstance(recipe, dict) else None
    if notes:
        lines += [str(notes), ""]
    lines += [
        *table("Scene the weights were trained for", scene, "parameter"),
        "The weights only undo this scene's distortion: predistort refuses to use them with another resolution "
        "or another sphere.", "",
        "## Use", "", "```python", "from predistort import load_model",
        "model = load_model('USER/NAME')            # or a local folder; revision='v1' for a tag or commit",
        "predistorted = model(texture)              # texture: float tensor [..., R, R, 3] in [0, 1]", "```", "",
        "or on the command line:", "", "```bash",
        "python -m predistort apply --weights USER/NAME --texture picture.png --out-dir out",
        "python -m predistort train --init USER/NAME --textures a.png b.png --out finetuned", "```", "",
    ]
    return "\n".join(lines)


# -- finding the files ---------------------------------------------------------------------------------------
def check_repo_id(text):
    """Split ``"USER/NAME"`` or ``"USER/NAME@REVISION"`` into ``(repo_id, revision or None)``, or refuse it.

    The one check of a model repo id in predistort, for names from the command line, the web page or the
    API alike. The Hub's own rules (``huggingface_hub.utils.validate_repo_id``: ASCII letters, digits, '-',
    '_', '.', at most 96 characters a part, no '--' or '..', no '.git' at the end) and predistort's: exactly
    one '/', since a model repo always belongs to a user or an organisation. A revision (branch, tag or
    commit) is letters, digits, '-', '_', '.', '/', without '..'. Nothing is looked up: no file system, no
    network. Raises :class:`WeightsError` saying what a repo id looks like (for a Hub URL: which id it means).
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    if not isinstance(text, str):
        raise WeightsError(f"A Hugging Face model repo id is text (USER/NAME), not {type(text).__name__}.")
    name, revision = text.strip(), None
    if "@" in name:
        name, revision = (part.strip() for part in name.rsplit("@", 1))
    problem = None
    try:
        validate_repo_id(name)
    except HFValidationError:
        problem = "letters, digits, '-', '_', '.'; no '--' or '..'"
    if problem is None and name.count("/") != 1:
        problem = "exactly one '/' between the user (or organisation) and the model's name"
    if problem is None and revision is not None and (not REVISION.fullmatch(revision) or ".." in revision):
        problem = "a revision after '@' is a branch, tag or commit: letters, digits, '-', '_', '.', '/'"
    if problem:
        shown = text.strip() if len(text.strip()) <= 100 else text.strip()[:100] + "..."
        raise WeightsError(f"'{shown}' is not a Hugging Face model repo id: give USER/NAME or USER/NAME@REVISION "
                           f"({problem}).{_url_hint(text)}")
    return name, revision


def _url_hint(text):
    """For a Hub page's URL typed instead of a repo id: which repo id it means."""
    url = re.match(r"^\s*https?://(?:www\.)?(?:hf\.co|huggingface\.co)/([^/?#@]+/[^/?#@]+)", text)
    return f" For that Hub page, use the repo id '{url[1]}'." if url else ""


def _pickle_refusal(where, found):
    return WeightsError(
        f"{where} has no {WEIGHTS_NAME}{' but has ' + ', '.join(found) if found else ''}. predistort only loads "
        f"safetensors: pickle files (.bin, .pt, .pth) can run arbitrary code when loaded, so they are refused. "
        f"Whoever made them can convert them with safetensors.torch.save_file(state_dict, '{WEIGHTS_NAME}').")


def _check_folder(path):
    """`path` if it is a folder holding model.safetensors and config.json, else a WeightsError."""
    if not (path / WEIGHTS_NAME).is_file():
        raise _pickle_refusal(f"The folder {path}", sorted(p.name for p in path.iterdir()
                                                          if p.name.endswith(PICKLE_SUFFIXES)))
    if not (path / CONFIG_NAME).is_file():
        raise WeightsError(f"The folder {path} has no {CONFIG_NAME}: it was not saved by predistort "
                           f"(save with model.save_pretrained(folder)).")
    return path


def resolve(name_or_path, *, revision=None, cache_dir=None, force_download=False, local_files_only=False,
            token=None, allow_local=True):
    """Return a local folder holding config.json and model.safetensors for a folder, "default" or a repo id.

    A repo id ("user/name") is fetched with ``hf_hub_download`` (Hub cache, ``HF_HUB_OFFLINE``,
    ``HF_ENDPOINT`` and ``revision`` as usual); both files come from the same commit. Nothing but these
    two files is ever downloaded. An existing folder wins over a repo id of the same name, unless
    ``allow_local=False`` (for names typed by a web visitor: then only "default" and repo ids are accepted
    and the file system is never looked at). Raises :class:`WeightsError`.
    """
    name = str(name_or_path).strip()
    if not name:
        raise WeightsError("No weights given: pass a folder saved by predistort, 'default' (the bundled weights) "
                           "or a Hugging Face repo id USER/NAME.")
    if name == BUNDLED:
        path = bundled_dir()
        if not (path / WEIGHTS_NAME).is_file() or not (path / CONFIG_NAME).is_file():
            raise WeightsError(f"The bundled default weights are missing from {path}; reinstall predistort "
                               f"or pass a folder or Hub repo id.")
        return path
    path = Path(name).expanduser()
    if allow_local and path.is_dir():
        return _check_folder(path)
    if allow_local and path.exists():
        raise WeightsError(f"{path} is a file; give the folder that holds {WEIGHTS_NAME} and {CONFIG_NAME}"
                           f"{f' ({path.parent})' if path.name in (WEIGHTS_NAME, CONFIG_NAME) else ''}.")
    try:
        name, named_revision = check_repo_id(name)
    except WeightsError:
        if not allow_local:
            raise
        raise WeightsError(f"'{name}' is neither an existing folder nor a Hugging Face repo id (USER/NAME: "
                           f"letters, digits, '-', '_', '.').{_url_hint(name)}") from None
    if named_revision is not None and revision is not None and named_revision != revision:
        raise WeightsError(f"Two revisions given for '{name}': '@{named_revision}' and revision='{revision}'.")
    revision = revision if revision is not None else named_revision
    hub = dict(cache_dir=cache_dir, force_download=force_download, local_files_only=local_files_only,
               token=token)
    config_path = Path(_download(name, CONFIG_NAME, revision=revision, **hub))
    # Pin the weights to the commit the config came from: a push between the two downloads must not pair
    # one commit's config with another's weights.
    commit = config_path.parent.name
    pinned = commit if re.fullmatch(r"[0-9a-f]{40}", commit) else revision
    weights_path = Path(_download(name, WEIGHTS_NAME, revision=pinned, shown_revision=revision, **hub))
    return weights_path.parent


def _download(repo_id, filename, *, revision, cache_dir, force_download, local_files_only, token,
              shown_revision=None):
    """hf_hub_download one file of a model repo, turning every Hub failure into a WeightsError."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HfHubHTTPError, HFValidationError,
                                        LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)
    shown = shown_revision if shown_revision is not None else revision
    at = f"'{repo_id}'" + (f" at revision '{shown}'" if shown else "")
    try:
        return hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                               force_download=force_download, local_files_only=local_files_only, token=token)
    except HFValidationError as e:
        raise WeightsError(f"'{repo_id}' is not a valid Hugging Face repo id or revision ({e}). A repo id looks "
                           f"like USER/NAME.") from None
    except GatedRepoError:
        raise WeightsError(f"The Hub repo '{repo_id}' is gated: accept its terms on the Hub and log in "
                           f"(HF_TOKEN or `hf auth login`).") from None
    except RepositoryNotFoundError:
        raise WeightsError(f"There is no folder '{repo_id}' here and no model repo '{repo_id}' on the Hugging Face "
                           f"Hub (or it is private and no token was given). Check the path or the repo id "
                           f"(USER/NAME) and your HF_TOKEN.") from None
    except RevisionNotFoundError:
        raise WeightsError(f"The Hub repo '{repo_id}' has no revision '{shown}' (branch, tag or commit). "
                           f"Check it, or leave it out for the latest version (main).") from None
    # Before EntryNotFoundError: LocalEntryNotFoundError is one, but means "not cached and cannot ask the Hub".
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        if local_files_only or constants.HF_HUB_OFFLINE:
            why = ("offline mode is on (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE
                   else "only local files were allowed (local_files_only=True)")
            raise WeightsError(f"Cannot load {filename} of {at}: {why} and it is not in the Hugging Face cache "
                               f"({constants.HF_HUB_CACHE if cache_dir is None else cache_dir}). Load it once "
                               f"with the network on, or load a local folder.") from None
        raise WeightsError(f"Cannot fetch {filename} of {at}: the Hugging Face Hub ({constants.ENDPOINT}) cannot "
                           f"be reached (no network?) and it is not in the local cache. Connect and retry, or load "
                           f"a local folder. ({type(e).__name__})") from None
    except EntryNotFoundError:
        found = _remote_files(repo_id, revision, token)
        pickles = [f for f in found if f.endswith(PICKLE_SUFFIXES)]
        if filename == WEIGHTS_NAME or (pickles and WEIGHTS_NAME not in found):
            raise _pickle_refusal(f"The Hub repo {at}", pickles) from None
        raise WeightsError(f"The Hub repo {at} has no {filename}: it is not a predistort model "
                           f"(those have {WEIGHTS_NAME} and {CONFIG_NAME}).") from None
    except HfHubHTTPError as e:
        raise WeightsError(f"The Hugging Face Hub refused {filename} of {at}: {str(e).splitlines()[0]}") from None
    except OSError as e:   # connection errors, size mismatch, full disk, unwritable cache
        raise WeightsError(f"Could not fetch {filename} of {at}: {e}") from None


def _remote_files(repo_id, revision, token):
    """The repo's file names (a listing only, nothing is downloaded); [] when it cannot be listed."""
    from huggingface_hub import list_repo_files
    try:
        return list_repo_files(repo_id, revision=revision, token=token)
    except Exception:  # the refusal stands whether or not the listing works
        return []


# -- loading -------------------------------------------------------------------------------------------------
def read_config(folder):
    try:
        config = json.loads((Path(folder) / CONFIG_NAME).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{CONFIG_NAME} in {folder} cannot be read as JSON ({e}). Download or save it "
                           f"again.") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise WeightsError(f"{CONFIG_NAME} in {folder} has no model_type: it was not saved by predistort.")
    return config


def _read_shapes(path):
    """{name: shape} from a safetensors header (reads the header only), or a WeightsError if it is corrupt."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _corrupt(path, e) from None


def _corrupt(path, error):
    return WeightsError(f"{WEIGHTS_NAME} in {path.parent} is corrupt or truncated and cannot be read ({error}). "
                        f"Save it again, or download it again (from_pretrained(..., force_download=True) for a "
                        f"Hub repo).")


def load_folder(cls, folder):
    """Build the model described by `folder`'s config.json and fill it from its model.safetensors.

    `cls` is PredistortModel (any type, chosen by config.json) or a subclass (which then must match). The
    tensor names and shapes are checked against the model before any tensor data is read, and the model is
    first built on the "meta" device, so a config that does not fit its weights costs no memory. Before
    that, a whole number in config.json may exceed neither the number of values in the weights file nor the
    largest scene resolution (a model's sizes are resolutions or counts of its weights), so that a config
    cannot make even the construction huge (a depth of 10⁹ would build lists of 10⁹ numbers).
    """
    import torch
    from .scene import MAX_RESOLUTION
    folder = Path(folder)
    config = read_config(folder)
    model_type = config["model_type"]
    registry = cls.registry                        # model_type -> class, shared by every model class
    if model_type not in registry:
        raise WeightsError(f"{folder} holds a '{model_type}' model, which this version of predistort does not "
                           f"know (it knows: {', '.join(sorted(registry))}). Update predistort.")
    if cls.model_type and cls.model_type != model_type:
        raise WeightsError(f"{folder} holds a '{model_type}' model, not a '{cls.model_type}' one; load it with "
                           f"predistort.load_model (any type) or {registry[model_type].__name__}.")
    model_cls = registry[model_type]
    accepted = inspect.signature(model_cls.__init__).parameters
    kwargs = {k: v for k, v in config.items() if k in accepted and k != "self"}
    path = folder / WEIGHTS_NAME
    shapes = _read_shapes(path)
    n_values = sum(math.prod(shape) for shape in shapes.values())
    too_big = [f"{k}={v}" for k, v in kwargs.items()
               if isinstance(v, int) and not isinstance(v, bool) and v > max(n_values, MAX_RESOLUTION)]
    if too_big:
        raise WeightsError(f"{CONFIG_NAME} in {folder} asks for {', '.join(too_big)}: more than the {n_values:,} "
                           f"values its {WEIGHTS_NAME} holds and more than the largest resolution "
                           f"({MAX_RESOLUTION}). The two do not belong together: save the model again.")

    def build(device=None):
        try:
            if device is None:
                return model_cls(**kwargs)
            with torch.device(device):
                return model_cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise WeightsError(f"{CONFIG_NAME} in {folder} does not describe a valid '{model_type}' model: "
                               f"{e}") from None

    try:
        model = build("meta")
    except WeightsError:
        raise
    except Exception:  # a constructor that needs real tensors (e.g. calls .item()): build it for real
        model = build()
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in shapes]
    problems += [f"unexpected {k}" for k in shapes if k not in expected]
    problems += [f"{k} has shape {shapes[k]}, the model needs {list(v.shape)}"
                 for k, v in expected.items() if k in shapes and shapes[k] != list(v.shape)]
    if problems:
        raise WeightsError(f"The weights in {folder} do not fit the '{model_type}' model that its {CONFIG_NAME} "
                           f"describes ({json.dumps(kwargs)}): " + "; ".join(problems[:5]) +
                           ("; ..." if len(problems) > 5 else "") + ". Save the model again, or fix "
                           f"{CONFIG_NAME}.")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _corrupt(path, e) from None
    tensors = {k: t.to(expected[k].dtype) for k, t in tensors.items()}
    # Fill the meta model with the loaded tensors (no random init of weights about to be replaced). Tensors
    # a model keeps outside its state dict would stay on "meta": then build it for real and copy.
    model.load_state_dict(tensors, strict=True, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        model = build()
        model.load_state_dict(tensors, strict=True)
    model.info = {k: config[k] for k in INFO_KEYS if k in config}
    return model.eval()


def scene_of(model):
    """The scene `model` was made for: the :class:`~predistort.scene.SceneConfig` its config.json records
    (``info['scene']``), at the model's resolution; the tutorial's for weights that record none. What
    ``apply --weights`` and the page's *Load a model* use when no other scene is asked for. Raises
    :class:`WeightsError` when the recorded scene cannot be built (the message says why)."""
    from .scene import DEFAULT, SceneConfig
    recorded = (model.info or {}).get("scene")
    if not recorded:
        return DEFAULT.replace(resolution=model.resolution)
    try:
        return SceneConfig.from_dict(recorded).replace(resolution=model.resolution)
    except (ValueError, TypeError) as e:
        raise WeightsError(f"The model's {CONFIG_NAME} records a scene that cannot be used: {e}") from None


def check_compatible(model, scene):
    """Raise WeightsError unless `model` was made for `scene` (a SceneConfig): same resolution and geometry."""
    if model.resolution != scene.resolution:
        raise WeightsError(f"These weights map {model.resolution}×{model.resolution} textures, but the scene renders "
                           f"{scene.resolution}×{scene.resolution}. Use weights trained at {scene.resolution}, or "
                           f"set the resolution to {model.resolution}.")
    trained = model.info.get("scene")
    if isinstance(trained, dict):
        current = scene.to_dict()
        differ = [f"{k} {trained[k]} (now {current[k]})" for k in current
                  if k in trained and k != "resolution" and trained[k] != current[k]]
        if differ:
            raise WeightsError("These weights were trained for another scene: " + ", ".join(differ) +
                               ". Retrain for this scene, or restore the scene they were trained for.")


def zip_folder(folder, zip_path):
    """Zip the files of a saved model folder (for a download); written under a temporary name, then renamed.
    Returns the zip's path as a string."""
    import zipfile
    zip_path = Path(zip_path)
    tmp = zip_path.with_suffix(".part")
    with zipfile.ZipFile(tmp, "w") as z:
        for p in sorted(Path(folder).iterdir()):
            if p.is_file():   # weights are float noise to a compressor: stored as they are (fast at 1 GB)
                z.write(p, arcname=p.name, compress_type=zipfile.ZIP_STORED if p.suffix in (".safetensors", ".png")
                        else zipfile.ZIP_DEFLATED)
    tmp.replace(zip_path)
    return str(zip_path)


# -- pushing -------------------------------------------------------------------------------------------------
PUSHED = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME, "history.json", "loss_curve.png")   # what push uploads


LOGIN_FIX = "log in with `hf auth login` or set HF_TOKEN to a token with write access"


def push(folder, repo_id, *, token=None, private=None, revision=None, commit_message=None, model_class=None,
         fix=LOGIN_FIX):
    """Upload a saved model folder to the Hub repo `repo_id` (created if needed); returns the commit URL.

    Uploads model.safetensors, config.json, README.md (its USER/NAME placeholders filled in) and, when
    present, history.json and loss_curve.png — nothing else from the folder. With ``model_class`` (e.g.
    ``PredistortModel``, whose registry knows every type) the folder is loaded first, so what gets uploaded is
    known to load. Token: `token`, else HF_TOKEN or the one stored by `hf auth login`. `fix`: what a refusal
    by the Hub tells the user to do.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, get_token
    from huggingface_hub.errors import HFValidationError, HfHubHTTPError
    repo_id, named_revision = check_repo_id(repo_id)
    if named_revision is not None:
        raise WeightsError(f"push takes the repo id alone (USER/NAME); give the branch '{named_revision}' as "
                           f"revision.")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise WeightsError(f"push needs a local folder saved by predistort (model.safetensors + config.json); "
                           f"{folder} is {'a file' if path.exists() else 'not there'}.")
    _check_folder(path)
    if model_class is not None:                   # what gets uploaded is known to load
        load_folder(model_class, path)
    else:                                         # at least: a readable config and a readable safetensors header
        read_config(path)
        _read_shapes(path / WEIGHTS_NAME)
    token = token or get_token()
    if not token:
        raise WeightsError("Pushing to the Hugging Face Hub needs a write token: set HF_TOKEN, run "
                           "`hf auth login`, or pass --token.")
    operations = []
    for name in PUSHED:
        if not (path / name).is_file():
            continue
        content = str(path / name)
        if name == CARD_NAME:
            content = (path / name).read_text().replace("USER/NAME", repo_id).encode()
        operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
    api = HfApi(token=token)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        info = api.create_commit(repo_id, operations, revision=revision,
                                 commit_message=commit_message or "Upload predistort weights")
    except HFValidationError as e:
        raise WeightsError(f"'{repo_id}' is not a valid Hub repo id ({e}).") from None
    except HfHubHTTPError as e:
        raise WeightsError(f"The Hub refused the upload to '{repo_id}': {str(e).splitlines()[0]} ({fix}).") from None
    except OSError as e:
        raise WeightsError(f"Could not upload to '{repo_id}': {e}") from None
    return getattr(info, "commit_url", str(info))
