"""What the Hugging Face Hub checks when the repository is pushed to a Space: README front matter and LFS rules.

The Hub refuses a push whose README.md metadata breaks the Spaces configuration (e.g. "short_description
length must be less than or equal to 60") and a push that carries binary files outside LFS/Xet ("Your push
was rejected because it contains binary files"). :func:`front_matter_problems` and :func:`unprotected_binaries`
state those rules; the tests run them on this repository and show, on bad inputs, that they catch each case.

The front matter is read with huggingface_hub's own card parser (``SpaceCard``), the LFS rules with
``git check-attr``, which evaluates ``.gitattributes`` exactly as git does.
"""
from __future__ import annotations

import subprocess
import unicodedata
from pathlib import Path

import pytest
from huggingface_hub import SpaceCard, SpaceHardware
from huggingface_hub.utils import HFValidationError, validate_repo_id

from test_dockerfile import _args, _env

ROOT = Path(__file__).resolve().parents[1]

# From the Spaces configuration reference (huggingface.co/docs/hub/spaces-config-reference) and the Hub's
# refusals. Keys outside KNOWN_KEYS are not errors on the Hub, but here they are most likely typos.
MAX_SHORT_DESCRIPTION = 60
COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
SDKS = {"gradio", "docker", "static", "streamlit"}
OAUTH_SCOPES = {"openid", "profile", "email", "read-repos", "write-repos", "manage-repos", "inference-api",
                "write-discussions", "read-billing"}
MAX_OAUTH_MINUTES = 43200          # 30 days
# The Hub's license identifiers (huggingface.co/docs/hub/repositories-licenses).
LICENSES = set("""apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0
cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0
cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 agpl-3.0 gfdl gpl gpl-2.0
gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc lppl-1.3c ms-pl mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa
unlicense zlib pddl lgpl-lr deepfloyd-if-license llama2 gemma unknown other""".split())
KNOWN_KEYS = {"title", "emoji", "colorFrom", "colorTo", "sdk", "python_version", "sdk_version", "suggested_hardware",
              "suggested_storage", "app_file", "app_port", "app_build_command", "base_path", "fullWidth", "header",
              "models", "datasets", "tags", "thumbnail", "pinned", "hf_oauth", "hf_oauth_scopes",
              "hf_oauth_expiration_minutes", "hf_oauth_authorized_org", "hf_oauth_redirect_path",
              "disable_embedding", "startup_duration_timeout", "custom_headers", "preload_from_hub", "license",
              "license_name", "license_link", "short_description", "duplicated_from"}

# Binary by name even when the first 8000 bytes hold no NUL (git's own test looks at 8000 bytes).
BINARY_SUFFIXES = {".safetensors", ".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".exr",
                   ".pdf", ".zip", ".gz", ".npy", ".npz", ".pt", ".pth", ".bin", ".ckpt", ".pkl"}
HUB_MAX_PLAIN_BYTES = 10 * 1024 * 1024     # the Hub wants larger files in LFS/Xet even when they are text


def _is_emoji(text):
    """Emoji-only: pictographs (So), skin-tone modifiers (Sk), joiners and variation selectors."""
    return bool(text) and all(unicodedata.category(c) in ("So", "Sk") or c in "\u200d\ufe0f\u20e3" for c in text)


def front_matter_problems(meta, app_port=None):
    """What the Hub would refuse (or most likely mistyped) in a Space's README metadata, as sentences.

    ``meta``: the front matter as a dict; ``app_port``: the port the app listens on (checked for Docker Spaces).
    """
    problems = []

    def string(key, required=False):
        value = meta.get(key)
        if value is None:
            if required:
                problems.append(f"{key} is missing")
            return None
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{key} must be a non-empty string, got {value!r}")
            return None
        return value

    def string_list(key):
        value = meta.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)):
            problems.append(f"{key} must be a list of strings, got {value!r}")
            return []
        return value or []

    def boolean(key):
        if key in meta and not isinstance(meta[key], bool):
            problems.append(f"{key} must be true or false, got {meta[key]!r}")

    problems += [f"{key} is not a Spaces setting (typo?)" for key in meta if key not in KNOWN_KEYS]
    string("title", required=True)
    emoji = string("emoji")
    if emoji is not None and not _is_emoji(emoji):
        problems.append(f"emoji must be emoji characters only, got {emoji!r}")
    for key in ("colorFrom", "colorTo"):
        color = string(key)
        if color is not None and color not in COLORS:
            problems.append(f"{key} must be one of {sorted(COLORS)}, got {color!r}")
    sdk = string("sdk", required=True)
    if sdk is not None and sdk not in SDKS:
        problems.append(f"sdk must be one of {sorted(SDKS)}, got {sdk!r}")
    description = string("short_description")
    if description is not None and len(description) > MAX_SHORT_DESCRIPTION:
        problems.append(f"short_description length must be less than or equal to {MAX_SHORT_DESCRIPTION} "
                        f"(it is {len(description)})")
    port = meta.get("app_port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        problems.append(f"app_port must be a port number (an integer), got {port!r}")
    elif sdk == "docker" and app_port is not None and (port or 7860) != app_port:
        problems.append(f"app_port is {port or 7860} (7860 when absent) but the app listens on {app_port}")
    license_id = string("license")
    if license_id is not None and license_id not in LICENSES:
        problems.append(f"license {license_id!r} is not one of the Hub's license identifiers")
    for key in ("tags", "models", "datasets", "hf_oauth_scopes"):
        string_list(key)
    for key in ("models", "datasets"):
        for repo_id in string_list(key):
            try:
                validate_repo_id(repo_id)
            except HFValidationError as e:
                problems.append(f"{key}: {repo_id!r} is not a repo id ({e})")
    hardware = string("suggested_hardware")
    if hardware is not None and hardware not in {h.value for h in SpaceHardware}:
        problems.append(f"suggested_hardware {hardware!r} is not a Spaces hardware flavor")
    for key in ("pinned", "hf_oauth", "fullWidth", "disable_embedding"):
        boolean(key)
    unknown_scopes = set(string_list("hf_oauth_scopes")) - OAUTH_SCOPES
    if unknown_scopes:
        problems.append(f"hf_oauth_scopes: unknown scopes {sorted(unknown_scopes)}")
    if meta.get("hf_oauth_scopes") and meta.get("hf_oauth") is not True:
        problems.append("hf_oauth_scopes is set but hf_oauth is not true")
    minutes = meta.get("hf_oauth_expiration_minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int)
                                or not 1 <= minutes <= MAX_OAUTH_MINUTES):
        problems.append(f"hf_oauth_expiration_minutes must be an integer from 1 to {MAX_OAUTH_MINUTES}")
    return problems


def _git(*args, stdin=None, cwd=ROOT):
    return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=True).stdout


def unprotected_binaries(repo=ROOT):
    """Tracked files the Hub would refuse as plain git blobs: binary (a NUL byte in the first 8000 bytes, or a
    binary suffix) or larger than 10 MiB, and not routed to LFS by ``.gitattributes`` (``git check-attr``)."""
    repo = Path(repo)
    files = [f for f in _git("ls-files", "-z", cwd=repo).decode().split("\0") if f]
    risky = []
    for name in files:
        path = repo / name
        if not path.is_file():            # deleted in the work tree, or a submodule
            continue
        with path.open("rb") as f:
            head = f.read(8000)
        if b"\0" in head or path.suffix.lower() in BINARY_SUFFIXES or path.stat().st_size > HUB_MAX_PLAIN_BYTES:
            risky.append(name)
    if not risky:
        return []
    out = _git("check-attr", "-z", "--stdin", "filter", stdin=b"\0".join(n.encode() for n in risky) + b"\0",
               cwd=repo).decode().split("\0")
    attrs = {out[i]: out[i + 2] for i in range(0, len(out) - 2, 3)}   # -z: path, attribute, value triples
    return [name for name in risky if attrs.get(name) != "lfs"]


def _readme_meta(path=ROOT / "README.md"):
    return SpaceCard.load(path).data.to_dict()


def _app_port():
    """The port the Docker image's app listens on: GRADIO_SERVER_PORT, which must also be EXPOSEd."""
    port = int(_env()["GRADIO_SERVER_PORT"])
    assert any(str(port) in args.split() for args in _args("EXPOSE")), f"the Dockerfile does not EXPOSE {port}"
    return port


# -- this repository ------------------------------------------------------------------------------------------
def test_readme_front_matter_is_accepted():
    meta = _readme_meta()
    assert meta.get("sdk") == "docker" and meta.get("app_port") == 7860
    assert front_matter_problems(meta, _app_port()) == []


def test_every_tracked_binary_goes_to_lfs():
    assert (ROOT / ".git").exists(), "run the tests from a git checkout: the LFS check reads `git ls-files`"
    assert unprotected_binaries() == []


def test_the_binaries_we_ship_are_seen_as_binaries():
    """The check above is not vacuous: the bundled weights and the example pictures are among the files it checks."""
    tracked = _git("ls-files").decode().split()
    assert "weights/default/model.safetensors" in tracked and "examples/checker.png" in tracked
    attrs = _git("check-attr", "filter", "--", "weights/default/model.safetensors", "examples/checker.png",
                 "README.md").decode()
    assert "model.safetensors: filter: lfs" in attrs and "checker.png: filter: lfs" in attrs
    assert "README.md: filter: unspecified" in attrs


# -- the checks catch what the Hub refuses ---------------------------------------------------------------------
GOOD = {"title": "predistort", "emoji": "🔮", "colorFrom": "indigo", "colorTo": "yellow", "sdk": "docker",
        "app_port": 7860, "short_description": "x" * 60, "license": "bsd-3-clause", "tags": ["mitsuba"],
        "suggested_hardware": "cpu-basic", "hf_oauth": True, "hf_oauth_scopes": ["read-repos"]}


def test_the_good_example_passes():
    assert front_matter_problems(GOOD, 7860) == []


def test_the_62_character_description_of_before_is_refused(tmp_path):
    """The description this README had when the Hub refused the push, read through the real card parser."""
    readme = tmp_path / "README.md"
    readme.write_text("---\ntitle: predistort\nemoji: 🔮\ncolorFrom: indigo\ncolorTo: yellow\nsdk: docker\n"
                      "app_port: 7860\nshort_description: Pre-distort a picture so it looks right through a "
                      "glass sphere\n---\n\n# predistort\n")
    problems = front_matter_problems(_readme_meta(readme), 7860)
    assert problems == ["short_description length must be less than or equal to 60 (it is 62)"]


@pytest.mark.parametrize("change, expected", [
    ({"sdk": "flask"}, "sdk must be one of"),
    ({"sdk": None}, "sdk is missing"),
    ({"app_port": "7860"}, "app_port must be a port number"),
    ({"app_port": 8080}, "but the app listens on 7860"),
    ({"colorFrom": "orange"}, "colorFrom must be one of"),
    ({"emoji": "glass"}, "emoji must be emoji characters only"),
    ({"title": ""}, "title must be a non-empty string"),
    ({"license": "BSD-3-Clause"}, "not one of the Hub's license identifiers"),
    ({"tags": "mitsuba"}, "tags must be a list of strings"),
    ({"tags": ["ok", 3]}, "tags must be a list of strings"),
    ({"models": ["not a/repo id"]}, "is not a repo id"),
    ({"suggested_hardware": "gpu"}, "is not a Spaces hardware flavor"),
    ({"hf_oauth": "yes"}, "hf_oauth must be true or false"),
    ({"hf_oauth_scopes": ["write-everything"]}, "unknown scopes"),
    ({"hf_oauth": None, "hf_oauth_scopes": ["read-repos"]}, "hf_oauth is not true"),
    ({"short_desciption": "typo"}, "short_desciption is not a Spaces setting"),
])
def test_each_refusal_is_caught(change, expected):
    meta = {**GOOD, **change}
    meta = {k: v for k, v in meta.items() if v is not None}
    problems = front_matter_problems(meta, 7860)
    assert any(expected in p for p in problems), problems


def _repo_with(tmp_path, files, gitattributes=None):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    if gitattributes is not None:
        (tmp_path / ".gitattributes").write_text(gitattributes)
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    return tmp_path


def test_a_binary_outside_lfs_is_caught(tmp_path):
    png = (ROOT / "examples" / "checker.png").read_bytes()
    files = {"a.png": png, "data/blob.dat": b"\x00\x01binary", "notes.txt": b"text\n",
             "w/model.safetensors": b'{"__metadata__":{}}'}       # no NUL, binary by its suffix
    repo = _repo_with(tmp_path, files)
    assert sorted(unprotected_binaries(repo)) == ["a.png", "data/blob.dat", "w/model.safetensors"]
    (repo / ".gitattributes").write_text((ROOT / ".gitattributes").read_text())
    assert unprotected_binaries(repo) == ["data/blob.dat"]        # .dat has no rule: still caught
    (repo / ".gitattributes").write_text((ROOT / ".gitattributes").read_text() + "*.dat filter=lfs -text\n")
    assert unprotected_binaries(repo) == []
