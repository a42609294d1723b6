"""The fake Hub (tests/fake_hub.py) against the real huggingface_hub client, no predistort code."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from fake_hub import DEFAULT_USER, FakeHub, git_blob_sha1

REPO = "someone/tiny-model"
CONFIG = b'{"width": 8}\n'
WEIGHTS = bytes(range(256)) * 4  # ".safetensors" => served LFS-style through the fake CDN


@pytest.fixture
def repo(fake_hub: FakeHub) -> str:
    return fake_hub.add_repo(REPO, {"config.json": CONFIG, "model.safetensors": WEIGHTS, "sub/notes.txt": "hi"})


def test_hf_hub_download_then_cache_offline_and_local_files_only(fake_hub, repo, hf_offline):
    path = hf_hub_download(REPO, "config.json")
    assert Path(path).read_bytes() == CONFIG
    # The real cache layout: snapshots/<commit>/..., blob named by the ETag (git blob sha1), refs/main.
    assert Path(path).parent.name == repo
    assert Path(path).resolve().name == git_blob_sha1(CONFIG)
    assert ("HEAD", f"/{REPO}/resolve/main/config.json") in fake_hub.requests
    assert ("GET", f"/{REPO}/resolve/main/config.json") in fake_hub.requests

    fake_hub.clear_requests()
    with hf_offline():
        assert hf_hub_download(REPO, "config.json") == path
        with pytest.raises(LocalEntryNotFoundError):
            hf_hub_download(REPO, "sub/notes.txt")  # never downloaded
    assert hf_hub_download(REPO, "config.json", local_files_only=True) == path
    assert fake_hub.requests == []  # neither offline mode nor local_files_only touched the server


def test_lfs_style_file_goes_through_cdn_without_token(fake_hub, repo):
    path = hf_hub_download(REPO, "model.safetensors", token=fake_hub.token)
    assert Path(path).read_bytes() == WEIGHTS
    cdn = [r for r in fake_hub.recorded if r.server == "cdn"]
    assert [r.method for r in cdn] == ["GET"]
    assert cdn[0].authorization is None  # the client drops the token when leaving the Hub's origin
    head = next(r for r in fake_hub.recorded if r.method == "HEAD")
    assert head.authorization == f"Bearer {fake_hub.token}"


def test_revision_tag_and_commit(fake_hub, repo):
    fake_hub.add_tag(REPO, "v1")
    second = fake_hub.add_repo(REPO, {"config.json": b'{"width": 16}\n'})  # main moves on
    dev = fake_hub.add_repo(REPO, {"config.json": b"{}"}, revision="dev")
    assert Path(hf_hub_download(REPO, "config.json")).read_bytes() == b'{"width": 16}\n'
    assert Path(hf_hub_download(REPO, "config.json", revision="v1")).read_bytes() == CONFIG
    assert Path(hf_hub_download(REPO, "config.json", revision=repo)).read_bytes() == CONFIG
    assert Path(hf_hub_download(REPO, "config.json", revision=repo[:10])).read_bytes() == CONFIG
    assert Path(hf_hub_download(REPO, "config.json", revision="dev")).read_bytes() == b"{}"
    assert (fake_hub.resolve(REPO), fake_hub.resolve(REPO, "dev"), fake_hub.resolve(REPO, "v1")) == (second, dev, repo)
    # add_repo replaces the whole tree of the branch
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "sub/notes.txt")
    refs = HfApi().list_repo_refs(REPO)
    assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1"]


def test_errors_map_to_client_exceptions(fake_hub, repo):
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("someone/missing", "config.json")
    with pytest.raises(EntryNotFoundError):  # RemoteEntryNotFoundError
        hf_hub_download(REPO, "pytorch_model.bin")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("someone/missing")
    with pytest.raises(RevisionNotFoundError):
        HfApi().model_info(REPO, revision="v9")


def test_private_repo_needs_token(fake_hub):
    fake_hub.add_repo("someone/secret", {"config.json": CONFIG}, private=True)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("someone/secret", "config.json")
    assert Path(hf_hub_download("someone/secret", "config.json", token=fake_hub.token)).read_bytes() == CONFIG


def test_snapshot_download_and_model_info(fake_hub, repo, tmp_path):
    info = HfApi().model_info(REPO, files_metadata=True)
    assert info.sha == repo
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == {"config.json", "model.safetensors", "sub/notes.txt"}
    assert siblings["model.safetensors"].lfs.size == len(WEIGHTS)
    assert siblings["config.json"].blob_id == git_blob_sha1(CONFIG) and siblings["config.json"].lfs is None

    folder = Path(snapshot_download(REPO))
    assert folder.name == repo
    got = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert got == fake_hub.files(REPO)

    local = Path(snapshot_download(REPO, local_dir=tmp_path / "local", allow_patterns=["*.json"]))
    assert (local / "config.json").read_bytes() == CONFIG
    assert not (local / "model.safetensors").exists()


def test_create_repo_upload_folder_and_download(fake_hub, tmp_path):
    api = HfApi(token=fake_hub.token)
    url = api.create_repo("pushed")  # no namespace: the token's user
    repo_id = f"{DEFAULT_USER}/pushed"
    assert url.repo_id == repo_id
    assert set(fake_hub.files(repo_id)) == {".gitattributes"}  # the Hub's initial commit
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(repo_id)
    assert exc.value.response.status_code == 409
    assert api.create_repo(repo_id, exist_ok=True).repo_id == repo_id

    folder = tmp_path / "to-upload"
    (folder / "nested").mkdir(parents=True)
    (folder / "config.json").write_bytes(CONFIG)
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    (folder / "nested" / "a.txt").write_text("a")
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# pushed\n")
    info = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="first upload")
    assert info.oid == fake_hub.resolve(repo_id)

    # What went over the wire: header line + base64 regular files, no LFS.
    (payload,) = fake_hub.commit_payloads(repo_id)
    assert payload[0] == {"key": "header", "value": {"summary": "first upload", "description": ""}}
    assert sorted(line["value"]["path"] for line in payload[1:]) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "nested/a.txt",
    ]
    assert {line["key"] for line in payload[1:]} == {"file"}
    for method, path in [
        ("POST", "/api/repos/create"),
        ("POST", "/api/validate-yaml"),
        ("POST", f"/api/models/{repo_id}/preupload/main"),
        ("POST", f"/api/models/{repo_id}/commit/main"),
    ]:
        assert (method, path) in fake_hub.requests
    commit = next(r for r in fake_hub.recorded if r.path.endswith("/commit/main"))
    assert commit.authorization == f"Bearer {fake_hub.token}"
    assert commit.headers["content-type"] == "application/x-ndjson"

    assert Path(hf_hub_download(repo_id, "model.safetensors")).read_bytes() == WEIGHTS
    assert Path(hf_hub_download(repo_id, "nested/a.txt")).read_text() == "a"

    # Re-uploading unchanged files is a no-op commit-wise (preupload returns the remote oids).
    before = fake_hub.resolve(repo_id)
    api.upload_folder(repo_id=repo_id, folder_path=folder)
    assert fake_hub.resolve(repo_id) == before and len(fake_hub.commit_payloads(repo_id)) == 1

    # A change plus a deletion, then a pull request on refs/pr/1.
    (folder / "config.json").write_bytes(b"{}")
    (folder / "nested" / "a.txt").unlink()
    api.upload_folder(repo_id=repo_id, folder_path=folder, delete_patterns=["nested/*"])
    assert "nested/a.txt" not in fake_hub.files(repo_id) and fake_hub.files(repo_id)["config.json"] == b"{}"
    pr = api.upload_file(repo_id=repo_id, path_or_fileobj=b"x", path_in_repo="x.txt", create_pr=True)
    assert pr.pr_revision == "refs/pr/1"
    assert Path(hf_hub_download(repo_id, "x.txt", revision="refs/pr/1")).read_bytes() == b"x"
    assert "x.txt" not in fake_hub.files(repo_id)


def test_writes_without_valid_token_are_refused(fake_hub, repo, tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "config.json").write_bytes(b"{}")
    for api in (HfApi(), HfApi(token="hf_not_a_real_token")):
        with pytest.raises(HfHubHTTPError) as exc:
            api.create_repo("someone/new-repo")
        assert exc.value.response.status_code == 401
        with pytest.raises(HfHubHTTPError) as exc:
            api.upload_folder(repo_id=REPO, folder_path=folder)
        assert exc.value.response.status_code == 401
    assert not fake_hub.repo_exists("someone/new-repo")
    assert fake_hub.resolve(REPO) == repo and fake_hub.commit_payloads() == []


def test_module_level_functions_and_fresh_process_use_the_fake_hub(fake_hub, repo, fake_hub_env):
    # Module-level helpers are bound to `huggingface_hub.hf_api.api`, built at import time.
    assert huggingface_hub.model_info(REPO).sha == repo
    # A fresh interpreter configured only through environment variables (the production route).
    code = textwrap.dedent(
        f"""
        import json, huggingface_hub
        from huggingface_hub import constants, hf_hub_download
        path = hf_hub_download({REPO!r}, "config.json")
        print(json.dumps({{"endpoint": constants.ENDPOINT, "path": path, "data": open(path).read()}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], env=fake_hub_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["endpoint"] == fake_hub.endpoint
    assert result["data"].encode() == CONFIG
    assert result["path"].startswith(fake_hub_env["HF_HUB_CACHE"])


def test_storage_persists_across_restarts(tmp_path):
    with FakeHub(tmp_path / "store") as hub:
        sha = hub.add_repo(REPO, {"config.json": CONFIG})
    with FakeHub(tmp_path / "store") as hub:
        assert hub.resolve(REPO) == sha and hub.files(REPO) == {"config.json": CONFIG}


def test_pytorch_model_hub_mixin_push_and_from_pretrained(fake_hub):
    """What the weights code relies on: push_to_hub / from_pretrained through the fixture, as is."""
    import torch
    from huggingface_hub import PyTorchModelHubMixin
    from safetensors.torch import save

    class Net(torch.nn.Module, PyTorchModelHubMixin):
        def __init__(self, width: int = 4):
            super().__init__()
            self.lin = torch.nn.Linear(width, 2)

    net = Net(width=3)
    net.push_to_hub("someone/net", token=fake_hub.token)
    assert set(fake_hub.files("someone/net")) == {".gitattributes", "README.md", "config.json", "model.safetensors"}
    assert json.loads(fake_hub.files("someone/net")["config.json"]) == {"width": 3}
    loaded = Net.from_pretrained("someone/net")
    assert loaded.lin.in_features == 3 and torch.equal(loaded.lin.weight, net.lin.weight)

    # huggingface_hub 2.4.0 gotchas, pinned here so a client upgrade that changes them is noticed:
    # 1. no model.safetensors => falls back to pytorch_model.bin, read with torch.load(weights_only=True).
    buffer = io.BytesIO()
    torch.save(Net(width=5).state_dict(), buffer)
    fake_hub.add_repo("someone/legacy", {"config.json": b'{"width": 5}', "pytorch_model.bin": buffer.getvalue()})
    assert Net.from_pretrained("someone/legacy").lin.in_features == 5
    asked = [p.rsplit("/", 1)[-1] for m, p in fake_hub.requests if m == "HEAD" and "/someone/legacy/" in p]
    assert asked == ["config.json", "model.safetensors", "pytorch_model.bin"]
    # 2. strict=False by default: a checkpoint whose keys match nothing loads without a word.
    fake_hub.add_repo("someone/wrong", {"config.json": b'{"width": 3}', "model.safetensors": save({"x": torch.zeros(1)})})
    Net.from_pretrained("someone/wrong")
    with pytest.raises(RuntimeError):
        Net.from_pretrained("someone/wrong", strict=True)


def test_namespaces_as_on_the_hub(tmp_path):
    """A token reads private repos and writes only in its user's namespace and organisations."""
    from fake_hub import use_fake_hub

    tokens = {"hf_alice": "alice", "hf_bob": "bob"}
    with FakeHub(tmp_path / "hub", tokens=tokens, orgs={"alice": ["lab"]}) as hub, \
            use_fake_hub(hub, tmp_path / "hf-home"):
        hub.add_repo("alice/secret", {"config.json": CONFIG}, private=True)
        hub.add_repo("lab/secret", {"config.json": CONFIG}, private=True)
        hub.add_repo("alice/public", {"config.json": CONFIG})
        alice, bob = HfApi(token="hf_alice"), HfApi(token="hf_bob")
        assert alice.model_info("alice/secret").private and alice.model_info("lab/secret").private
        # Someone else's private repo does not exist, for a stranger as for anonymous visitors: 404 / 401.
        for api, status in ((bob, 404), (HfApi(token=False), 401)):
            for repo_id in ("alice/secret", "lab/secret", "alice/missing"):
                with pytest.raises(RepositoryNotFoundError) as exc:
                    api.model_info(repo_id)
                assert exc.value.response.status_code == (404 if repo_id == "alice/missing" else status)
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("alice/secret", "config.json", token="hf_bob")
        # Writes: own namespace and organisations only.
        assert bob.create_repo("mine").repo_id == "bob/mine"
        assert alice.create_repo("lab/new").repo_id == "lab/new"
        for repo_id in ("alice/from-bob", "lab/from-bob"):
            with pytest.raises(HfHubHTTPError) as exc:
                bob.create_repo(repo_id)
            assert exc.value.response.status_code == 403
        folder = tmp_path / "f"
        folder.mkdir()
        (folder / "x.txt").write_text("from bob")
        with pytest.raises(HfHubHTTPError) as exc:             # a public repo of alice's: visible, not writable
            bob.upload_folder(repo_id="alice/public", folder_path=folder)
        assert exc.value.response.status_code == 403
        with pytest.raises(RepositoryNotFoundError):           # a private one: not even there
            bob.upload_folder(repo_id="alice/secret", folder_path=folder)
        assert set(hub.files("alice/public")) == {"config.json"} and not hub.repo_exists("alice/from-bob")
        assert bob.whoami()["name"] == "bob" and [o["name"] for o in alice.whoami()["orgs"]] == ["lab"]
