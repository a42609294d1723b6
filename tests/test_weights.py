"""Weights format and Hub I/O (predistort.weights), in-process, against the real huggingface_hub client.

* Every model type in ``PredistortModel.registry`` (parametrised, so types added later are covered):
  save -> load gives identical outputs; config.json and the model card say what they must; the mixin's
  ``push_to_hub`` uploads exactly the three files ``save_pretrained`` writes.
* A repo served by the fake Hub (tests/fake_hub.py: a local HTTP endpoint answering like the Hub, so
  ``hf_hub_download`` runs for real) loads by repo id, at a tag or a commit, then from the cache alone with
  HF_HUB_OFFLINE (zero requests).
* Every refusal: the WeightsError message says what is wrong and what to do, and nothing else changed: a
  model loaded before is untouched (the app keeps it), no file was written or removed, nothing half
  downloaded, no pickle opened.

The command line (push, apply/train from a repo id, in fresh processes) is in test_weights_cli.py.
"""
import base64
import copy
import hashlib
import io
import json
import os
import pickle
import re
import socket
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, constants, hf_hub_download
from safetensors import safe_open
from safetensors.torch import save_file

import predistort
from predistort import load_model, weights
from predistort.layers import PredistortModel, TutorialLayer
from predistort.scene import DEFAULT
from predistort.weights import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, WeightsError

from fake_hub import use_fake_hub

FILES = {WEIGHTS_NAME, CONFIG_NAME, CARD_NAME}
TYPES = sorted(PredistortModel.registry)
# Constructor arguments of a small model of each type; a type that needs more than `resolution` adds itself.
SMALL_KWARGS = {}
REPO = "someone/sphere-8"


# -- helpers -----------------------------------------------------------------------------------------------
def small(model_type="tutorial", seed=0, resolution=8):
    """A small model of `model_type`, its parameters nudged off their initial values, with info filled in."""
    torch.manual_seed(seed)
    cls = PredistortModel.registry[model_type]
    model = cls(**SMALL_KWARGS.get(model_type, {"resolution": resolution}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)   # a parameter left at a constant init must still round-trip
    model.info = {"scene": DEFAULT.replace(resolution=model.resolution).to_dict(),
                  "recipe": {"iterations": 3, "spp": 4, "lr": 2e-4, "seed": seed, "loss": "l1",
                             "textures": ["a.png", "b.png"], "notes": "Made by test_weights.py."},
                  "metrics": {"final_train_loss": 0.1234 + seed, "l1_final": 0.0567}}
    return model.eval()


def outputs(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, model.resolution, model.resolution, 3, generator=g)
    with torch.no_grad():
        return model(x)


def assert_same_model(a, b):
    assert type(a) is type(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k
    assert torch.equal(outputs(a), outputs(b))
    assert a.info == b.info and a.resolution == b.resolution


def saved(model, folder):
    model.save_pretrained(folder)
    return Path(folder)


def publish(hub, repo_id, model, tmp_path, revision="main"):
    """Put `model`'s saved files on the fake Hub as the whole tree of `revision`; returns the commit sha."""
    folder = saved(model, tmp_path / f"publish-{len(list(tmp_path.glob('publish-*')))}")
    return hub.add_repo(repo_id, {name: (folder / name).read_bytes() for name in FILES}, revision=revision)


def tree(*roots):
    """Everything under `roots`: path -> content hash (or symlink target, or 'dir')."""
    out = {}
    for root in map(Path, roots):
        for p in sorted(root.rglob("*")) if root.exists() else []:
            if p.is_symlink():
                out[str(p)] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[str(p)] = "dir"
            else:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def hub_cache():
    return Path(constants.HF_HUB_CACHE)


def no_partial_files(*roots):
    partial = [p for root in roots for p in Path(root).rglob("*")
               if p.name.endswith((".incomplete", ".tmp")) or ".tmp" in p.name]
    assert not partial, partial


@pytest.fixture
def bystander(tmp_path):
    """A model loaded before the refused load, as the app holds one: it must come out untouched."""
    model = load_model(saved(small(seed=7), tmp_path / "bystander"))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    info = copy.deepcopy(model.info)
    yield model
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert model.info == info and not model.training


def refused(load, *fragments, unchanged=()):
    """Run `load`, expect a WeightsError whose message contains every fragment; nothing under `unchanged`
    may change. Returns the message."""
    before = tree(*unchanged)
    with pytest.raises(WeightsError) as caught:
        load()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert "Traceback" not in message and len(message) < 1200
    assert tree(*unchanged) == before
    no_partial_files(*unchanged)
    return message


class PickleTrap:
    """Unpickling this runs code (as a malicious pickle would): it leaves a marker file behind."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (_sprung, (self.marker,))


def _sprung(marker):
    Path(marker).write_text("a pickle was unpickled")
    return torch.zeros(1)


def pickle_bytes(marker):
    """A pytorch_model.bin as torch.save writes it: a real state dict, plus a trap that fires if unpickled."""
    buffer = io.BytesIO()
    torch.save({**small().state_dict(), "trap": PickleTrap(marker)}, buffer)
    return buffer.getvalue()


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail the test on any attempt to unpickle (torch.load, pickle.load/loads/Unpickler)."""
    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")
    for owner, name in [(torch, "load"), (torch.serialization, "load"), (pickle, "load"), (pickle, "loads"),
                        (pickle, "Unpickler")]:
        monkeypatch.setattr(owner, name, refuse)


@pytest.fixture
def other_type():
    """A second model type registered for the test only (the registry is restored afterwards)."""
    registry = dict(PredistortModel.registry)

    class ScaleModel(PredistortModel):
        model_type = "test-scale"

        def __init__(self, resolution: int = 8):
            super().__init__(resolution)
            self.scale = torch.nn.Parameter(torch.ones(1))
            # kept outside the state dict: loading must build this model for real, not leave it on "meta"
            self.register_buffer("ramp", torch.linspace(0, 1, resolution).view(-1, 1, 1), persistent=False)

        def forward(self, texture):
            return texture * self.scale + self.ramp

    yield ScaleModel
    PredistortModel.registry.clear()
    PredistortModel.registry.update(registry)


# -- the format, for every model type --------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", TYPES)
def test_save_load_round_trip(model_type, tmp_path):
    model = small(model_type)
    folder = saved(model, tmp_path / "w")
    assert {p.name for p in folder.iterdir()} == FILES            # nothing else, no temporary left behind

    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["model_type"] == model_type
    assert config["resolution"] == model.resolution
    assert {k: config[k] for k in model._hub_mixin_config} == model._hub_mixin_config   # every hyper-parameter
    for key in ("scene", "recipe", "metrics"):
        assert config[key] == model.info[key]
    assert config["predistort_version"] == predistort.__version__
    with safe_open(str(folder / WEIGHTS_NAME), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert set(f.keys()) == set(model.state_dict())

    card = (folder / CARD_NAME).read_text()
    assert ModelCard(card).data.library_name == "predistort"      # valid YAML front matter, as the Hub wants
    assert f"`{model_type}`" in card and f"{model.resolution}×{model.resolution}" in card
    assert "| final_train_loss | 0.1234 |" in card                     # the metrics
    assert "| lr | 0.0002 |" in card and "Made by test_weights.py." in card   # the recipe and its notes
    assert "| sphere_ior | 1.06 |" in card                            # the scene
    assert "from predistort import load_model" in card and "load_model('USER/NAME')" in card
    assert "python -m predistort apply --weights USER/NAME" in card

    cls = PredistortModel.registry[model_type]
    for load in (load_model, PredistortModel.from_pretrained, cls.from_pretrained):
        for name in (folder, str(folder)):
            loaded = load(name)
            assert_same_model(model, loaded)
            assert not loaded.training

    again = saved(loaded, tmp_path / "again")                        # saving what was loaded changes nothing
    assert {n: (again / n).read_bytes() for n in FILES} == {n: (folder / n).read_bytes() for n in FILES}


@pytest.mark.parametrize("model_type", TYPES)
def test_push_to_hub_uploads_what_save_pretrained_writes(model_type, fake_hub, tmp_path):
    model = small(model_type)
    local = saved(model, tmp_path / "local")
    repo_id = "someone/" + re.sub(r"[^A-Za-z0-9._-]", "-", model_type)
    url = model.push_to_hub(repo_id, token=fake_hub.token)
    assert fake_hub.resolve(repo_id) in url

    (payload,) = fake_hub.commit_payloads(repo_id)
    sent = {line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in payload[1:]}
    expected = {name: (local / name).read_bytes() for name in FILES}
    # The card is the saved one with its USER/NAME placeholders filled in with the repo id.
    expected["README.md"] = expected["README.md"].replace(b"USER/NAME", repo_id.encode())
    assert sent == expected
    assert_same_model(model, load_model(repo_id))
    model.push_to_hub(repo_id, token=fake_hub.token)      # unchanged weights, byte for byte: no new commit
    assert len(fake_hub.commit_payloads(repo_id)) == 1


def test_save_refuses_info_that_is_not_json_and_writes_nothing(tmp_path):
    model = small()
    model.info["recipe"]["textures"] = [Path("a.png")]
    with pytest.raises(WeightsError, match="not plain JSON"):
        model.save_pretrained(tmp_path / "w")
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


def test_save_over_an_existing_folder_replaces_the_three_files(tmp_path):
    folder = saved(small(seed=1), tmp_path / "w")
    (folder / "history.json").write_text("[]")
    model = small(seed=2)
    saved(model, folder)
    assert_same_model(model, load_model(folder))
    assert {p.name for p in folder.iterdir()} == FILES | {"history.json"}


# -- the Hub: repo id, revisions, cache, offline ------------------------------------------------------------
def test_repo_id_loads_at_any_revision_then_offline_from_the_cache(fake_hub, hf_offline, tmp_path):
    v1, v2 = small(seed=1), small(seed=2)
    sha1 = publish(fake_hub, REPO, v1, tmp_path)
    fake_hub.add_tag(REPO, "v1")
    sha2 = publish(fake_hub, REPO, v2, tmp_path)

    assert_same_model(v2, load_model(REPO))
    fetched = {p.rsplit("/", 1)[-1] for m, p in fake_hub.requests if m == "GET" and "/resolve/" in p}
    assert fetched == {CONFIG_NAME}                       # model.safetensors is LFS: it came from the CDN
    assert [r.method for r in fake_hub.recorded if r.server == "cdn"] == ["GET"]
    assert_same_model(v1, TutorialLayer.from_pretrained(REPO, revision="v1"))
    assert_same_model(v1, TutorialLayer.from_pretrained(REPO, revision=sha1))
    assert_same_model(v2, PredistortModel.from_pretrained(REPO, revision="main"))

    cache = hub_cache() / "models--someone--sphere-8"     # the real cache layout, nothing but the two files
    assert (cache / "refs" / "main").read_text() == sha2 and (cache / "refs" / "v1").read_text() == sha1
    for sha in (sha1, sha2):
        assert {p.name for p in (cache / "snapshots" / sha).iterdir()} == {CONFIG_NAME, WEIGHTS_NAME}
    no_partial_files(hub_cache())

    fake_hub.clear_requests()
    with hf_offline():
        assert_same_model(v2, load_model(REPO))
        assert_same_model(v1, load_model(REPO, revision="v1"))
        assert_same_model(v1, TutorialLayer.from_pretrained(REPO, revision=sha1))
    assert_same_model(v2, load_model(REPO, local_files_only=True))
    assert fake_hub.requests == []


def test_config_and_weights_come_from_one_commit(fake_hub, tmp_path, monkeypatch):
    """A push landing between the config.json and the model.safetensors downloads must not mix commits."""
    import huggingface_hub
    v1 = small(seed=1)
    publish(fake_hub, REPO, v1, tmp_path)
    real = huggingface_hub.hf_hub_download

    def download_then_someone_pushes(repo_id, filename, **kwargs):
        path = real(repo_id, filename, **kwargs)
        if filename == CONFIG_NAME:
            publish(fake_hub, REPO, small(seed=3, resolution=16), tmp_path)   # main moves on, other shapes
        return path

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download_then_someone_pushes)
    assert_same_model(v1, load_model(REPO))


def test_private_repo_needs_the_token(fake_hub, tmp_path):
    model = small()
    folder = saved(model, tmp_path / "w")
    fake_hub.add_repo("someone/secret", {n: (folder / n).read_bytes() for n in FILES}, private=True)
    refused(lambda: load_model("someone/secret"), "no model repo 'someone/secret'", "HF_TOKEN")
    assert_same_model(model, load_model("someone/secret", token=fake_hub.token))


# -- refusals: pickles ------------------------------------------------------------------------------------------
def test_pickle_only_folder_is_refused_unopened(tmp_path, bystander, no_unpickling):
    folder = tmp_path / "pickled"
    folder.mkdir()
    marker = tmp_path / "unpickled.txt"
    (folder / "pytorch_model.bin").write_bytes(pickle_bytes(marker))
    (folder / "optimizer.pt").write_bytes(b"not even read")
    (folder / CONFIG_NAME).write_text(json.dumps({"model_type": "tutorial", "resolution": 8}))
    for load in (load_model, TutorialLayer.from_pretrained, weights.resolve):
        refused(lambda: load(str(folder)), "pytorch_model.bin", "optimizer.pt", "only loads safetensors",
                "arbitrary code", "safetensors.torch.save_file", unchanged=[tmp_path])
    assert not marker.exists()


def test_pickle_only_repo_is_refused_and_never_downloaded(fake_hub, tmp_path, bystander, no_unpickling):
    marker = tmp_path / "unpickled.txt"
    config = json.dumps({"model_type": "tutorial", "resolution": 8})
    fake_hub.add_repo("someone/pickled", {CONFIG_NAME: config, "pytorch_model.bin": pickle_bytes(marker)})
    for load in (load_model, TutorialLayer.from_pretrained):
        refused(lambda: load("someone/pickled"), "'someone/pickled'", "pytorch_model.bin", "only loads safetensors")
    # Without config.json too: still the pickle refusal, the clearest reason.
    fake_hub.add_repo("someone/bare-pickle", {"pytorch_model.bin": pickle_bytes(marker)})
    refused(lambda: load_model("someone/bare-pickle"), "pytorch_model.bin", "only loads safetensors")

    asked = [p for m, p in fake_hub.requests if "pytorch_model.bin" in p]
    assert asked == []                                    # never even looked up (a listing named it)
    assert not [p for p in hub_cache().rglob("*") if "pytorch_model" in p.name]
    assert not marker.exists()
    no_partial_files(hub_cache())


# -- refusals: the Hub ------------------------------------------------------------------------------------------
def test_unknown_repo(fake_hub, bystander):
    message = refused(lambda: load_model("someone/no-such-model"), "no model repo 'someone/no-such-model'",
                      "no folder 'someone/no-such-model' here", "HF_TOKEN", unchanged=[hub_cache()])
    assert "revision" not in message


def test_repo_without_config(fake_hub, tmp_path, bystander):
    folder = saved(small(), tmp_path / "w")
    fake_hub.add_repo("someone/weights-only", {WEIGHTS_NAME: (folder / WEIGHTS_NAME).read_bytes()})
    refused(lambda: load_model("someone/weights-only"), "'someone/weights-only' has no config.json",
            "not a predistort model")
    assert not (hub_cache() / "models--someone--weights-only" / "blobs").exists()   # weights not fetched


def test_unknown_revision(fake_hub, tmp_path, bystander):
    publish(fake_hub, REPO, small(), tmp_path)
    load_model(REPO)                                      # cached at main: a bad revision must not fall back on it
    refused(lambda: load_model(REPO, revision="v9"), f"'{REPO}' has no revision 'v9'", "branch, tag or commit",
            unchanged=[hub_cache()])
    refused(lambda: load_model(REPO, revision="0" * 40), "has no revision", unchanged=[hub_cache()])


def test_offline_and_not_cached(fake_hub, hf_offline, tmp_path, bystander):
    publish(fake_hub, REPO, small(), tmp_path)
    with hf_offline():
        refused(lambda: load_model(REPO), "config.json", f"'{REPO}'", "HF_HUB_OFFLINE", "not in the Hugging Face cache",
                unchanged=[hub_cache()])
    refused(lambda: load_model(REPO, local_files_only=True), "local_files_only", unchanged=[hub_cache()])
    # Half cached (config.json only): offline, the missing weights are "not cached", not "not there".
    hf_hub_download(REPO, CONFIG_NAME)
    with hf_offline():
        message = refused(lambda: load_model(REPO), "model.safetensors", "HF_HUB_OFFLINE", "not in the Hugging "
                          "Face cache", unchanged=[hub_cache()])
    assert "pickle" not in message
    assert fake_hub.requests.count(("GET", f"/{REPO}/resolve/main/{CONFIG_NAME}")) == 1   # offline asked nothing
    assert not [p for m, p in fake_hub.requests if WEIGHTS_NAME in p]


def test_no_network(tmp_path, bystander, monkeypatch):
    """Nothing listens at the endpoint: the client retries (its sleeps skipped here), then a clear message."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                        # closed again: connections are refused
    sleeps = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    home = tmp_path / "hf-home"
    with use_fake_hub(f"http://127.0.0.1:{port}", home):
        message = refused(lambda: load_model(REPO), "cannot be reached", "no network", "not in the local cache",
                          "load a local folder", unchanged=[home])
    assert sleeps, "the client was expected to retry"
    assert "pickle" not in message and "not a predistort model" not in message


def test_corrupt_weights_from_the_hub(fake_hub, tmp_path, bystander):
    folder = saved(small(), tmp_path / "w")
    good = {n: (folder / n).read_bytes() for n in FILES}
    fake_hub.add_repo(REPO, {**good, WEIGHTS_NAME: good[WEIGHTS_NAME][:-100]})
    refused(lambda: load_model(REPO), "corrupt or truncated", "force_download=True")
    no_partial_files(hub_cache())
    fake_hub.add_repo(REPO, good)                         # fixed upstream: the next load gets the new commit
    load_model(REPO)


# -- refusals: local folders and names ------------------------------------------------------------------------------
def test_folder_without_config(tmp_path, bystander):
    folder = saved(small(), tmp_path / "w")
    (folder / CONFIG_NAME).unlink()
    refused(lambda: load_model(folder), "has no config.json", "save_pretrained", unchanged=[tmp_path])


@pytest.mark.parametrize("damage", ["truncated", "header-only", "garbage", "empty"])
def test_corrupt_safetensors(tmp_path, bystander, damage):
    folder = saved(small(), tmp_path / "w")
    path = folder / WEIGHTS_NAME
    data = path.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    path.write_bytes({"truncated": data[:len(data) // 2], "header-only": data[:header],
                      "garbage": os.urandom(len(data)), "empty": b""}[damage])
    refused(lambda: load_model(folder), "model.safetensors", "corrupt or truncated", "Save it again",
            unchanged=[tmp_path])


@pytest.mark.parametrize("config, fragments", [
    ("{not json", ["config.json", "cannot be read as JSON"]),
    ('["tutorial", 8]', ["has no model_type", "not saved by predistort"]),
    ('{"model_type": ["tutorial"], "resolution": 8}', ["has no model_type"]),
    ('{"model_type": "hypernet-9000", "resolution": 8}', ["'hypernet-9000' model", "does not know",
                                                          "tutorial", "Update predistort"]),
    ('{"model_type": "tutorial", "resolution": "eight"}', ["does not describe a valid 'tutorial' model"]),
])
def test_bad_config(tmp_path, bystander, config, fragments):
    folder = saved(small(), tmp_path / "w")
    (folder / CONFIG_NAME).write_text(config)
    refused(lambda: load_model(folder), *fragments, unchanged=[tmp_path])


def test_shapes_that_do_not_fit(tmp_path, bystander):
    folder = saved(small(), tmp_path / "w")
    big = saved(small(resolution=16), tmp_path / "w16")
    (folder / WEIGHTS_NAME).write_bytes((big / WEIGHTS_NAME).read_bytes())        # 16×16 weights, config says 8
    refused(lambda: load_model(folder), "do not fit the 'tutorial' model", '{"resolution": 8}',
            "layers.0.weight has shape [256, 256], the model needs [64, 64]", unchanged=[tmp_path])

    # A config claiming a huge model costs nothing: shapes are checked on the "meta" device first.
    config = json.loads((folder / CONFIG_NAME).read_text())
    (folder / CONFIG_NAME).write_text(json.dumps({**config, "resolution": 128}))   # 128⁴ weights: 1 GB
    refused(lambda: load_model(folder), "[16384, 16384]", unchanged=[tmp_path])
    # Beyond 128² the tutorial layer is refused by its constructor, before any shape is read.
    (folder / CONFIG_NAME).write_text(json.dumps({**config, "resolution": 512}))   # 512⁴ weights: 275 GB
    refused(lambda: load_model(folder), "does not describe a valid 'tutorial' model",
            "maps at most 128×128 textures", unchanged=[tmp_path])

    renamed = {("layers.1.weight" if k == "layers.0.weight" else k): v for k, v in small().state_dict().items()}
    save_file({k: v.contiguous() for k, v in renamed.items()}, str(folder / WEIGHTS_NAME))
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    refused(lambda: load_model(folder), "missing layers.0.weight", "unexpected layers.1.weight", unchanged=[tmp_path])


def test_another_type_than_asked_for_and_an_unknown_type(tmp_path, bystander, other_type):
    model = other_type(resolution=8)
    with torch.no_grad():
        model.scale.fill_(0.5)
    folder = saved(model, tmp_path / "w")
    loaded = load_model(folder)
    assert isinstance(loaded, other_type) and not any(t.is_meta for t in (*loaded.parameters(), *loaded.buffers()))
    assert torch.equal(outputs(loaded), outputs(model))
    refused(lambda: TutorialLayer.from_pretrained(folder), "holds a 'test-scale' model, not a 'tutorial' one",
            "load_model", unchanged=[tmp_path])
    del PredistortModel.registry["test-scale"]          # as a newer predistort's model looks to this one
    refused(lambda: load_model(folder), "'test-scale' model", "does not know", unchanged=[tmp_path])


def test_a_file_instead_of_a_folder(tmp_path, bystander):
    folder = saved(small(), tmp_path / "w")
    refused(lambda: load_model(folder / WEIGHTS_NAME), "is a file", "give the folder", str(folder),
            unchanged=[tmp_path])
    (tmp_path / "notes.txt").write_text("hello")
    refused(lambda: load_model(tmp_path / "notes.txt"), "is a file", unchanged=[tmp_path])


@pytest.mark.parametrize("name", ["", "  ", "a/b/c", "user/na me", "user/a..b", "user/a--b", "-user/x", "./nope",
                                  "user/", "user/naïve", "https://huggingface.co/user/name"])
def test_invalid_names(fake_hub, bystander, name):
    refused(lambda: load_model(name), unchanged=[hub_cache()])
    assert fake_hub.requests == []                       # refused before asking the Hub anything


def test_invalid_name_messages(fake_hub):
    refused(lambda: load_model(""), "No weights given", "'default'", "USER/NAME")
    refused(lambda: load_model("a/b/c"), "'a/b/c' is neither an existing folder nor a Hugging Face repo id")
    refused(lambda: load_model("user/a..b"), "neither an existing folder nor", "USER/NAME")
    refused(lambda: load_model("https://huggingface.co/user/name/tree/main"), "use the repo id 'user/name'")


def test_names_from_visitors_never_touch_the_file_system(fake_hub, tmp_path, monkeypatch):
    """allow_local=False (the web app, for names typed by visitors): a folder of that name is not looked at."""
    publish(fake_hub, REPO, small(seed=1), tmp_path)
    monkeypatch.chdir(tmp_path)
    saved(small(seed=2), tmp_path / REPO)                # a local folder spelled like the repo id
    assert_same_model(small(seed=2), load_model(REPO))   # folders win by default ...
    assert fake_hub.requests == []
    folder = weights.resolve(REPO, allow_local=False)    # ... but not for a visitor's name
    assert folder.is_relative_to(hub_cache())
    assert_same_model(small(seed=1), weights.load_folder(PredistortModel, folder))
    for name in ("./someone", str(tmp_path / REPO), "a/b/c", "user/a..b"):
        refused(lambda: weights.resolve(name, allow_local=False), "is not a Hugging Face model repo id")


# -- refusals: scene compatibility ----------------------------------------------------------------------------------
def test_weights_for_another_resolution_or_scene(tmp_path):
    model = load_model(saved(small(), tmp_path / "w"))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    weights.check_compatible(model, DEFAULT.replace(resolution=8))            # its own scene: fine
    with pytest.raises(WeightsError) as e:
        weights.check_compatible(model, DEFAULT)
    assert "8×8 textures" in str(e.value) and "128×128" in str(e.value) and "set the resolution to 8" in str(e.value)
    with pytest.raises(WeightsError) as e:
        weights.check_compatible(model, DEFAULT.replace(resolution=8, sphere_ior=1.3))
    assert "another scene" in str(e.value) and "sphere_ior 1.06 (now 1.3)" in str(e.value)
    assert "Retrain" in str(e.value)
    with pytest.raises(WeightsError, match=r"sphere_radius 0.45 \(now 0.3\)"):
        weights.check_compatible(model, DEFAULT.replace(resolution=8, sphere_radius=0.3))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    model.info = {}                                       # weights that do not record their scene: resolution only
    weights.check_compatible(model, DEFAULT.replace(resolution=8, sphere_ior=1.3))


# -- refusals: push --------------------------------------------------------------------------------------------------
def test_push_refusals_send_nothing(fake_hub, tmp_path):
    folder = saved(small(), tmp_path / "w")
    refused(lambda: weights.push(folder, "someone/x"), "needs a write token", "HF_TOKEN", "hf auth login",
            unchanged=[tmp_path])
    refused(lambda: weights.push(folder, "not a repo", token=fake_hub.token), "not a Hugging Face model repo id")
    refused(lambda: weights.push(folder, "a/b/c", token=fake_hub.token), "not a Hugging Face model repo id")
    refused(lambda: weights.push(tmp_path / "missing", "someone/x", token=fake_hub.token), "not there")
    refused(lambda: weights.push(folder / WEIGHTS_NAME, "someone/x", token=fake_hub.token), "is a file")
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"never read")
    refused(lambda: weights.push(tmp_path / "pickled", "someone/x", token=fake_hub.token), "only loads safetensors")
    (folder / WEIGHTS_NAME).write_bytes(b"broken")        # what does not load is not uploaded
    refused(lambda: weights.push(folder, "someone/x", token=fake_hub.token), "corrupt or truncated",
            unchanged=[tmp_path])
    assert fake_hub.requests == [] and not fake_hub.repo_exists("someone/x")


def test_push_with_a_bad_token_is_refused_by_the_hub(fake_hub, tmp_path):
    folder = saved(small(), tmp_path / "w")
    refused(lambda: weights.push(folder, "someone/x", token="hf_wrong"), "refused the upload", "401",
            "write access", unchanged=[tmp_path])
    assert not fake_hub.repo_exists("someone/x") and fake_hub.commit_payloads() == []
