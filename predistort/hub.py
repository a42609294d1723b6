"""What a web visitor may do on the Hugging Face Hub: load with their own token or none, bounded; push their own.

The server may hold a token of its own (a Space owner's ``HF_TOKEN`` secret). ``huggingface_hub`` sends
that token whenever a call passes ``token=None``, so a visitor's request that reached the Hub through the
defaults would read the owner's private repos. Every call here passes the visitor's token explicitly:
their OAuth token when they signed in with Hugging Face (``gr.OAuthToken``), else ``False`` (anonymous).
The Hub answers a request for someone else's private repo exactly as for a repo that does not exist, and
so does this module: one message for both.

Loads are bounded before anything is downloaded. The files' sizes come from the Hub's metadata
(``model_info(files_metadata=True)``, one request, which also fixes the commit that is then downloaded),
and a model over the limit is refused. The limit (:func:`max_model_bytes`) is ``PREDISTORT_MAX_MODEL_MB``
or, by default, the weights of the largest model type at the largest resolution the server offers. A
config.json whose shapes disagree with its weights is refused by :func:`predistort.weights.load_folder`
before any tensor is allocated.

Pushing (:func:`push_for_visitor`) needs the visitor's token, goes to the visitor's own namespace only
(the Hub enforces it too), and uploads what ``predistort push`` uploads: weights, config and model card.
Every failure raises :class:`predistort.weights.WeightsError` with a message for the visitor.
"""
import math
from dataclasses import dataclass

import torch

from . import probe, weights
from .layers import PredistortModel
from .weights import CONFIG_NAME, PICKLE_SUFFIXES, WEIGHTS_NAME, WeightsError

MB = 1_000_000                       # PREDISTORT_MAX_MODEL_MB counts decimal megabytes, as the messages do


def visitor_token(oauth_token=None):
    """The token to use on a visitor's behalf: their OAuth token string when signed in, else ``False``.

    ``oauth_token``: ``None``, a token string, or Gradio's ``gr.OAuthToken`` (anything with a ``.token``).
    ``False`` tells huggingface_hub to send no token at all, rather than the server's ``HF_TOKEN``.
    """
    token = getattr(oauth_token, "token", oauth_token)
    return token if isinstance(token, str) and token.strip() else False


# -- how large a model may be ------------------------------------------------------------------------------------
def model_bytes(model_type, **config):
    """Bytes of the tensors of a `model_type` model built with `config` (built on the "meta" device: no memory)."""
    cls = PredistortModel.registry[model_type]
    with torch.device("meta"):
        model = cls(**config)
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def largest_config(model_type, resolution):
    """The constructor arguments of the largest `model_type` model at `resolution`.

    Every type is sized by its resolution alone, except the generalising layer (``unrolled``), whose sparse
    layer holds one entry per (pixel, texel) pair that the probe links. A pixel averages the film filter's
    samples (radius 4σ of :data:`predistort.probe.FILTER_STDDEV`, i.e. a 5×5 texel window under bilinear
    lookup where the plane is seen at 1:1) along each traced specular chain (:data:`predistort.probe.CHAINS`).
    """
    if model_type != "unrolled":
        return {"resolution": resolution}
    window = 2 * math.ceil(4 * probe.FILTER_STDDEV) + 1
    return {"resolution": resolution, "nnz": resolution * resolution * window * window * len(probe.CHAINS)}


def default_max_model_bytes(max_resolution):
    """What the largest model type needs at the largest offered resolution, in bytes.

    ``max_resolution``: the largest resolution the server offers, an int for every type or a mapping
    ``{model_type: resolution}`` (types left out are not offered).
    """
    sizes = {name: max_resolution if isinstance(max_resolution, int) else max_resolution.get(name)
             for name in PredistortModel.registry}
    return max(model_bytes(name, **largest_config(name, r)) for name, r in sizes.items() if r)


def max_model_bytes(max_resolution, limit_mb=0.0):
    """The largest model a visitor may load, in bytes: `limit_mb` megabytes (the setting ``max_model_mb``,
    ``PREDISTORT_MAX_MODEL_MB``) when positive, else :func:`default_max_model_bytes` of `max_resolution`."""
    return int(limit_mb * MB) if limit_mb > 0 else default_max_model_bytes(max_resolution)


# -- loading on a visitor's behalf -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteModel:
    """A model repo as the Hub describes it to the visitor: nothing of it is downloaded yet."""
    repo_id: str
    revision: str | None             # as asked (None: main)
    commit: str                      # the commit the sizes belong to, and that is downloaded
    private: bool                    # readable by this visitor only: never share the loaded model
    sizes: dict                      # file name -> bytes, for config.json and model.safetensors

    @property
    def total_bytes(self):
        return sum(self.sizes.values())


def not_found_message(repo_id):
    """The one answer for a repo that does not exist and for a private repo the visitor may not read."""
    return (f"There is no model repo '{repo_id}' on the Hugging Face Hub that you can read: it does not exist, "
            f"or it is private (sign in with Hugging Face to load your own private models).")


def inspect_remote(text, token=None, *, max_bytes):
    """Check ``USER/NAME[@REVISION]`` against the Hub's metadata for the visitor; returns a :class:`RemoteModel`.

    ``token``: the visitor's OAuth token (see :func:`visitor_token`; never the server's); ``max_bytes``: the
    limit (:func:`max_model_bytes`). One metadata request, nothing downloaded. Raises WeightsError: not a
    repo id, not readable, no such revision, not a predistort model (or only pickles), or too large.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    repo_id, revision = weights.check_repo_id(text)
    at = f"'{repo_id}'" + (f" at revision '{revision}'" if revision else "")
    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True, token=visitor_token(token))
    except GatedRepoError:     # before RepositoryNotFoundError, which it extends
        raise WeightsError(f"The Hub repo '{repo_id}' is gated: predistort models are not.") from None
    except RepositoryNotFoundError:
        raise WeightsError(not_found_message(repo_id)) from None
    except RevisionNotFoundError:
        raise WeightsError(f"The Hub repo '{repo_id}' has no revision '{revision}' (branch, tag or commit). "
                           f"Check it, or leave it out for the latest version (main).") from None
    except OfflineModeIsEnabled:
        raise WeightsError("This server is offline (HF_HUB_OFFLINE=1): it loads no models from the Hub.") from None
    except HfHubHTTPError as e:
        raise WeightsError(f"The Hugging Face Hub refused to describe {at}: {str(e).splitlines()[0]}") from None
    except OSError as e:      # no network, timeouts
        raise WeightsError(f"The Hugging Face Hub cannot be reached to describe {at}: {e}") from None
    files = {s.rfilename: (s.lfs.size if s.lfs else s.size) for s in info.siblings or []}
    if WEIGHTS_NAME not in files:
        raise weights._pickle_refusal(f"The Hub repo {at}", sorted(f for f in files if f.endswith(PICKLE_SUFFIXES)))
    if CONFIG_NAME not in files:
        raise WeightsError(f"The Hub repo {at} has no {CONFIG_NAME}: it is not a predistort model "
                           f"(those have {WEIGHTS_NAME} and {CONFIG_NAME}).")
    sizes = {name: files[name] for name in (CONFIG_NAME, WEIGHTS_NAME)}
    if any(not isinstance(size, int) or size < 0 for size in sizes.values()):
        raise WeightsError(f"The Hub did not say how large the files of {at} are; they are not downloaded.")
    remote = RemoteModel(repo_id, revision, info.sha, bool(info.private), sizes)
    if remote.total_bytes > max_bytes:
        raise WeightsError(f"The model {at} is {remote.total_bytes / MB:,.1f} MB; this server loads models of at "
                           f"most {max_bytes / MB:,.1f} MB (PREDISTORT_MAX_MODEL_MB). It was not downloaded.")
    return remote


def load_remote(remote, token=None):
    """Download the two files of `remote` (pinned to its commit) with the visitor's token and build the model."""
    folder = weights.resolve(remote.repo_id, revision=remote.commit, token=visitor_token(token), allow_local=False)
    return weights.load_folder(PredistortModel, folder)


def load_for_visitor(text, token=None, *, max_bytes):
    """Load a Hub model for a web visitor: :func:`inspect_remote`, then :func:`load_remote`.

    The model of a private repo (``RemoteModel.private``) was loaded with that visitor's token: keep it to
    their session, never in a cache other visitors read.
    """
    return load_remote(inspect_remote(text, token, max_bytes=max_bytes), token)


# -- pushing to the visitor's own account ------------------------------------------------------------------------
def signed_in_user(token):
    """The Hub user name of a visitor's token (asked of the Hub, not taken from the browser)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    token = visitor_token(token)
    if not token:
        raise WeightsError("Sign in with Hugging Face first: the model is pushed to your own account.")
    try:
        return HfApi().whoami(token=token)["name"]
    except HfHubHTTPError as e:
        raise WeightsError(f"The Hugging Face Hub does not accept your sign-in ({str(e).splitlines()[0]}); "
                           f"sign out and in again.") from None
    except OSError as e:
        raise WeightsError(f"The Hugging Face Hub cannot be reached: {e}") from None


def push_for_visitor(folder, name, token, *, private=True, commit_message=None):
    """Push a saved model folder to the signed-in visitor's account; returns ``(repo_id, commit_url)``.

    ``name``: ``NAME`` or ``USER/NAME`` with USER the visitor; ``token``: their OAuth token (needs the
    ``write-repos`` scope, and ``manage-repos`` to create the repo); ``private``: visibility of a new repo.
    Uploads what ``predistort push`` uploads (:func:`predistort.weights.push`).
    """
    user = signed_in_user(token)
    text = name.strip() if isinstance(name, str) else name
    repo_id, revision = weights.check_repo_id(text if isinstance(text, str) and "/" in text else f"{user}/{text}")
    if revision is not None:
        raise WeightsError("Give the repo name alone (NAME or USER/NAME), without '@'.")
    if repo_id.split("/")[0] != user:
        raise WeightsError(f"You are signed in as '{user}': push to your own account ({user}/NAME), not to "
                           f"'{repo_id.split('/')[0]}'.")
    return repo_id, weights.push(folder, repo_id, token=visitor_token(token), private=private,
                                 commit_message=commit_message, model_class=PredistortModel,
                                 fix="sign out and in again, allowing predistort to write to your repos")
