"""The command line with Hub repo ids, each in a fresh process whose huggingface_hub finds the fake Hub
through HF_ENDPOINT (``FakeHub.client_env``), as a user's would find the real one:

* ``push --weights DIR --repo-id USER/NAME`` (token from HF_TOKEN) uploads exactly the weights files, and
  what it uploaded loads;
* ``train --init USER/NAME`` downloads the repo's weights and starts from them;
* ``apply --weights USER/NAME --revision v1`` with HF_HUB_OFFLINE=1 runs from the Hugging Face cache alone;
* a refused repo is one line on stderr, exit status 2, nothing written.

Refusals in detail, and push without a token, are tested in-process in test_weights.py.
"""
import base64
import json

import numpy as np
from PIL import Image

from common import run_python
from predistort import load_model
from predistort.weights import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME
from test_weights import FILES, REPO, assert_same_model, publish, saved, small


def picture(path, resolution=8, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)).save(path)
    return path


def test_push_command_uploads_the_weights_files_and_they_load(fake_hub, fake_hub_env, tmp_path):
    model = small(seed=4)
    folder = saved(model, tmp_path / "trained")
    extras = {"history.json": b'[{"iteration": 1, "loss": 0.5, "seconds": 1.0}]\n', "loss_curve.png": b"\x89PNG..."}
    for name, data in extras.items():
        (folder / name).write_bytes(data)
    (folder / "scratch.txt").write_text("not for the Hub")
    (folder / "optimizer.pt").write_bytes(b"not for the Hub either")
    card = (folder / CARD_NAME).read_text()

    repo_id = "fake-user/sphere-lens"
    env = {**fake_hub_env, "HF_TOKEN": fake_hub.token}
    result = run_python(["-m", "predistort", "push", "--weights", str(folder), "--repo-id", repo_id], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    sha = fake_hub.resolve(repo_id)
    assert f"Pushed {folder} to {repo_id}" in result.stdout and sha in result.stdout

    (payload,) = fake_hub.commit_payloads(repo_id)     # one commit, exactly these files, nothing from elsewhere
    assert payload[0]["key"] == "header"
    sent = {line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in payload[1:]}
    assert {line["key"] for line in payload[1:]} == {"file"}
    assert set(sent) == FILES | set(extras)
    for name in (WEIGHTS_NAME, CONFIG_NAME, *extras):
        assert sent[name] == (folder / name).read_bytes(), name
    assert sent[CARD_NAME].decode() == card.replace("USER/NAME", repo_id)   # the card names the repo
    assert f"load_model('{repo_id}')" in sent[CARD_NAME].decode()
    assert (folder / CARD_NAME).read_text() == card                       # the local folder is left as it was
    writes = [r for r in fake_hub.recorded if r.method == "POST" and "/commit/" in r.path]
    assert [r.authorization for r in writes] == [f"Bearer {fake_hub.token}"]

    assert_same_model(model, load_model(repo_id))


def test_apply_with_a_repo_id_offline_from_the_cache(fake_hub, fake_hub_env, tmp_path):
    """apply --weights USER/NAME --revision v1 in a fresh process with HF_HUB_OFFLINE=1: the Hugging Face
    cache (filled beforehand by a load in this process, same HF_HOME) is all it needs; no request at all."""
    from predistort.images import prepare_texture, to_pil
    from predistort.pipeline import apply_model
    v1, v2 = small(seed=1), small(seed=2)
    publish(fake_hub, REPO, v1, tmp_path)
    fake_hub.add_tag(REPO, "v1")
    publish(fake_hub, REPO, v2, tmp_path)
    load_model(REPO, revision="v1")
    fake_hub.clear_requests()

    texture = picture(tmp_path / "picture.png")
    out = tmp_path / "applied"
    result = run_python(["-m", "predistort", "apply", "--weights", REPO, "--revision", "v1", "--texture",
                         str(texture), "--out-dir", str(out), "--spp", "1"],
                        env={**fake_hub_env, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert fake_hub.requests == []
    for name in ("predistorted.png", "render_initial.png", "render_final.png", "comparison.png", "metrics.json"):
        assert (out / name).is_file(), name
    # The picture was pre-distorted by the repo's weights at tag v1 (not main's).
    tensor, _ = prepare_texture(texture, 8, fit="exact")
    got = np.asarray(Image.open(out / "predistorted.png"), dtype=int)
    for model, same in ((v1, True), (v2, False)):
        expected = np.asarray(to_pil(apply_model(model, tensor)), dtype=int)
        assert bool(np.abs(got - expected).max() <= 1) == same


def test_train_init_from_a_repo_id(fake_hub, fake_hub_env, tmp_path):
    init = small(seed=5)
    publish(fake_hub, REPO, init, tmp_path)
    out = tmp_path / "finetuned"
    result = run_python(["-m", "predistort", "train", "--init", REPO, "--textures", str(picture(tmp_path / "a.png")),
                         "--iterations", "1", "--resolution", "8", "--spp", "1", "--lr", "1e-3", "--out", str(out)],
                        env=fake_hub_env)
    assert result.returncode == 0, result.stderr[-3000:]
    fetched = {p.rsplit("/", 1)[-1] for m, p in fake_hub.requests if m == "GET" and "/resolve/" in p}
    assert fetched == {CONFIG_NAME} and [r.method for r in fake_hub.recorded if r.server == "cdn"] == ["GET"]
    config = json.loads((out / CONFIG_NAME).read_text())
    assert config["model_type"] == "tutorial" and config["recipe"]["init"] == REPO
    assert config["recipe"]["iterations_run"] == 1
    trained = load_model(out)
    # One Adam step of lr 1e-3 from the repo's weights: within ~1e-3 of them (a fresh init is ~0.1 away).
    for key, value in init.state_dict().items():
        step = (trained.state_dict()[key] - value).abs().max().item()
        assert 0 < step <= 1.5e-3, (key, step)


def test_a_refused_repo_on_the_command_line(fake_hub, fake_hub_env, tmp_path):
    """One clear line on stderr, exit status 2, and nothing written: the output folder does not appear."""
    out = tmp_path / "applied"
    result = run_python(["-m", "predistort", "apply", "--weights", "someone/no-such-model", "--texture",
                         str(picture(tmp_path / "a.png")), "--out-dir", str(out)], env=fake_hub_env)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "no model repo 'someone/no-such-model'" in lines[0] and "HF_TOKEN" in lines[0]
    assert not out.exists()
