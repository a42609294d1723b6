"""What the app allows: limits and defaults read from ``PREDISTORT_*`` variables, and the error past them.

Every field of :class:`Settings` is read from the environment variable ``PREDISTORT_<FIELD NAME>``
(``max_textures`` ← ``PREDISTORT_MAX_TEXTURES``); the name is derived, never spelled out twice. The
defaults suit a 2-core CPU Space (Hugging Face's "CPU basic"). The checks of visitor-typed values
(:func:`check_whole`, :func:`check_number`) live here too, so every message names the limit and its variable.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .scene import MAX_RESOLUTION, MIN_RESOLUTION, _data_dir

ENV_PREFIX = "PREDISTORT_"
EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class ServiceError(ValueError):
    """A request this app cannot fulfil as asked; the message tells the visitor what to change."""


@dataclass(frozen=True)
class Settings:
    """Limits and defaults of the app; field ``name`` is read from ``PREDISTORT_<NAME>`` (see :meth:`env_name`)."""
    max_textures: int = 8               # pictures per request (train / compare)
    max_iterations: int = 1000          # training iterations per request
    max_resolution: int = 128           # largest training resolution (the tutorial layer has R⁴ weights)
    max_apply_resolution: int = 1024    # largest resolution a picture is pre-distorted at (/predistort's choice)
    picture_resolution: int = 512       # the page's resolution for a new picture: the largest that answers in about
                                        #   2 s on a 2-core CPU (bench/app_latency.py); 0: the model's own
    full_spp_resolution: int = 512      # /predistort renders above this side keep its samples: spp·(this/R)²
    max_spp: int = 256                  # samples per pixel, training and preview renders
    max_upload_mb: float = 20.0         # largest uploaded picture, megabytes (also Gradio's max_file_size)
    preview_spp: int = 32               # default spp of /predistort and /compare renders
    long_training_s: float = 120.0      # trainings estimated longer than this are flagged before they start
    default_weights: str = "default"    # model every session starts with: "default" (weights/default), a folder,
                                        #   a Hub repo id USER/NAME[@REVISION], or "" / "none" for none
    examples_dir: str = ""              # example pictures offered in the page (default: the repository's examples/)
    session_ttl_s: float = 7200.0       # a session unused this long is closed: its model, results, files freed
    session_models_mb: float = 2048.0   # models of the sessions' own (trained in them), in memory, whole server;
                                        #   past it the idlest sessions' models wait on disk (predistort.keep)
    results_disk_mb: float = 4096.0     # the sessions' stored results on disk, whole server; past it the idlest
                                        #   sessions' results are released (their visitors are told)
    train_concurrency: int = 1          # trainings running at once, whole server
    render_concurrency: int = 1         # pre-distortions / exports running at once (never behind trainings)
    queue_size: int = 32                # requests waiting in the queue before new ones are refused
    warmup: bool = True                 # render once at start so that the first visitor waits for no compilation
    max_refine_s: float = 30.0          # longest per-picture refinement a request may ask (0 hides it)
    max_model_mb: float = 0.0           # largest Hub model a visitor may load, MB (0: what the largest model type
                                        #   needs at max_resolution; predistort.hub.default_max_model_bytes)
    sign_in: str = "auto"               # "Sign in with Hugging Face" button: "auto" (on a Space only), "on", "off"
    mcp: bool = True                    # also serve the API as Model Context Protocol tools (/gradio_api/mcp/)

    @staticmethod
    def env_name(field_name):
        """The environment variable of a field: ``max_textures`` → ``PREDISTORT_MAX_TEXTURES``."""
        return ENV_PREFIX + field_name.upper()

    @classmethod
    def from_env(cls, environ=None):
        """Settings from environment variables (``os.environ`` by default); unset or empty ones keep their default.

        A value that does not read as the field's type raises ValueError naming the variable.
        """
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            var = cls.env_name(f.name)
            raw = (environ.get(var) or "").strip()
            if not raw:
                continue
            kind = {"int": int, "float": float, "str": str, "bool": bool}[f.type]
            if kind is bool:
                if raw.lower() not in _TRUE + _FALSE:
                    raise ValueError(f"Environment variable {var}={raw!r} must be 1 or 0.")
                values[f.name] = raw.lower() in _TRUE
                continue
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise ValueError(f"Environment variable {var}={raw!r} is not a valid {kind.__name__}.") from None
        return cls(**values)

    def __post_init__(self):
        for name in ("max_textures", "max_iterations", "max_spp", "preview_spp", "train_concurrency",
                     "render_concurrency", "queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"Setting {name} ({self.env_name(name)}) must be at least 1.")
        if not MIN_RESOLUTION <= self.max_resolution <= MAX_RESOLUTION:
            raise ValueError(f"Setting max_resolution ({self.env_name('max_resolution')}) must be between "
                             f"{MIN_RESOLUTION} and {MAX_RESOLUTION}.")
        if self.picture_resolution != 0 and not MIN_RESOLUTION <= self.picture_resolution <= MAX_RESOLUTION:
            raise ValueError(f"Setting picture_resolution ({self.env_name('picture_resolution')}) must be 0 (the "
                             f"model's own) or between {MIN_RESOLUTION} and {MAX_RESOLUTION}.")
        for name in ("max_apply_resolution", "full_spp_resolution"):
            if not MIN_RESOLUTION <= getattr(self, name) <= MAX_RESOLUTION:
                raise ValueError(f"Setting {name} ({self.env_name(name)}) must be between {MIN_RESOLUTION} and "
                                 f"{MAX_RESOLUTION}.")
        if self.preview_spp > self.max_spp:
            raise ValueError("Setting preview_spp must not exceed max_spp.")
        if not (0 <= self.max_model_mb < float("inf")):
            raise ValueError(f"Setting max_model_mb ({self.env_name('max_model_mb')}) must be a number of megabytes "
                             f"≥ 0 (0: the default).")
        for name in ("session_models_mb", "results_disk_mb"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise ValueError(f"Setting {name} ({self.env_name(name)}) must be a number of megabytes ≥ 0.")
        if self.sign_in not in ("auto", "on", "off"):
            raise ValueError(f"Setting sign_in ({self.env_name('sign_in')}) must be auto, on or off, got "
                             f"{self.sign_in!r}.")
        if not 0 <= self.max_refine_s <= 600:
            raise ValueError(f"Setting max_refine_s ({self.env_name('max_refine_s')}) must be between 0 and 600 "
                             f"seconds.")

    def resolutions(self):
        """The resolutions /predistort offers: 128, 256, 512, 1024 up to ``max_apply_resolution``."""
        return [r for r in (128, 256, 512, 1024) if r <= self.max_apply_resolution] or [self.max_apply_resolution]

    def page_resolution(self):
        """The page's resolution for a new picture: ``picture_resolution`` (0: the model's own), or the largest
        offered one below it when ``max_apply_resolution`` offers less."""
        if self.picture_resolution == 0:
            return 0
        offered = self.resolutions()
        return max([r for r in offered if r <= self.picture_resolution] or [offered[0]])

    def render_spp(self, spp, resolution):
        """The spp of /predistort's renders at `resolution`: `spp` up to ``full_spp_resolution``, above it as
        many samples in all as a render of that side (``spp·(full/R)²``, at least 1), so that a large picture's
        renders take about as long as a mid-size one's."""
        if resolution <= self.full_spp_resolution:
            return spp
        return max(1, round(spp * (self.full_spp_resolution / resolution) ** 2))

    @property
    def signs_in(self):
        """Whether the page offers "Sign in with Hugging Face": on a Space (``SPACE_ID`` set) unless "off".

        Outside a Space, Gradio imitates the sign-in with the machine's own Hugging Face login (it needs one at
        start), which is what a developer running the app locally with ``sign_in=on`` wants.
        """
        return self.sign_in == "on" or (self.sign_in == "auto" and bool(os.environ.get("SPACE_ID")))

    @property
    def examples_path(self):
        return Path(self.examples_dir) if self.examples_dir else _data_dir("examples")


SETTINGS = Settings.from_env()


def examples(settings=None):
    """The example pictures offered in the page (sorted paths; empty if the folder is missing)."""
    folder = (settings or SETTINGS).examples_path
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in EXAMPLE_SUFFIXES and p.is_file())


# -- values typed by a visitor --------------------------------------------------------------------------------
def is_number(value):
    """True for an int, a float or a string that reads as one (a value from a web form); never for a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def is_whole(value, lo, hi):
    """True if `value` (see :func:`is_number`) is a whole number from lo to hi."""
    if not is_number(value):
        return False
    x = float(value)
    return math.isfinite(x) and x.is_integer() and lo <= x <= hi


def check_whole(what, value, lo, hi, limit=None):
    """``int(value)`` if it is a whole number from lo to hi, else a ServiceError naming `what` (and the setting
    `limit` that sets `hi`, if any)."""
    if not is_whole(value, lo, hi):
        where = f" (the limit of this app, {Settings.env_name(limit)})" if limit else ""
        raise ServiceError(f"{what} must be a whole number from {lo} to {hi}{where}, got {value!r}.")
    return int(float(value))
