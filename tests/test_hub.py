"""predistort.hub against the offline fake Hub: a visitor never borrows the server's token, loads are bounded
before they download, a signed-in visitor pushes to and loads from their own account only.

The fake Hub enforces namespaces as the Hub does (tests/fake_hub.py): the owner's token reads the owner's
private repos, a visitor's token the visitor's, and a private repo of someone else does not exist.
"""
import json
import re

import pytest
import torch

from common import run_python
from fake_hub import FakeHub, use_fake_hub
from predistort import hub, resources, weights
from predistort.layers import TutorialLayer, UnrolledInverse
from predistort.weights import CONFIG_NAME, WEIGHTS_NAME, WeightsError

OWNER, VISITOR = "hf_owner_secret_token", "hf_visitor_oauth_token"
BIG = 10**9                                                   # a limit no model here comes near


@pytest.fixture
def two_users(tmp_path, monkeypatch):
    """A Hub with the Space owner and a visitor; the server process holds the owner's token in HF_TOKEN."""
    with FakeHub(tmp_path / "hub", tokens={OWNER: "owner", VISITOR: "visitor"}) as fake, \
            use_fake_hub(fake, tmp_path / "hf-home"):
        monkeypatch.setenv("HF_TOKEN", OWNER)                 # as a Space with an HF_TOKEN secret
        yield fake
    assert not fake.errors, fake.errors


def model_files(tmp_path, resolution=8, seed=0):
    torch.manual_seed(seed)
    folder = tmp_path / f"model-{resolution}-{seed}"
    TutorialLayer(resolution).save_pretrained(folder)
    return folder, {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def refusal(call):
    with pytest.raises(WeightsError) as e:
        call()
    return str(e.value)


def carried(fake, token):
    return [r.path for r in fake.recorded if r.authorization == f"Bearer {token}"]


# -- a visitor never borrows the owner's token --------------------------------------------------------------------
def test_an_anonymous_visitor_cannot_load_the_owners_private_model(two_users, tmp_path):
    _, files = model_files(tmp_path)
    two_users.add_repo("owner/secret", files, private=True)
    # The test can fail: huggingface_hub's default (token=None) does send the owner's HF_TOKEN and reads it.
    assert weights.resolve("owner/secret").is_dir() and carried(two_users, OWNER)
    two_users.clear_requests()

    secret = refusal(lambda: hub.load_for_visitor("owner/secret", max_bytes=BIG))
    missing = refusal(lambda: hub.load_for_visitor("owner/no-such-model", max_bytes=BIG))
    assert secret == hub.not_found_message("owner/secret")
    assert secret.replace("owner/secret", "X") == missing.replace("owner/no-such-model", "X")   # no difference
    # The web app's path (resources.shared_model, used by /load_pretrained) says the same.
    assert refusal(lambda: resources.shared_model("owner/secret")) == secret
    assert carried(two_users, OWNER) == [] and two_users.recorded             # asked, never with the token
    assert not any("/resolve/" in r.path for r in two_users.recorded)        # and nothing downloaded


def test_a_signed_in_visitor_loads_their_own_private_model_only(two_users, tmp_path):
    from gradio import OAuthToken
    folder, files = model_files(tmp_path, seed=1)
    two_users.add_repo("visitor/mine", files, private=True)
    two_users.add_repo("owner/secret", model_files(tmp_path, seed=2)[1], private=True)
    token = OAuthToken(token=VISITOR, scope="openid profile read-repos", expires_at=2**31)

    remote = hub.inspect_remote("visitor/mine", token, max_bytes=BIG)
    assert remote.private and remote.commit == two_users.resolve("visitor/mine")
    assert remote.sizes == {CONFIG_NAME: len(files[CONFIG_NAME]), WEIGHTS_NAME: len(files[WEIGHTS_NAME])}
    model = hub.load_for_visitor("visitor/mine", token, max_bytes=BIG)
    assert torch.equal(model.state_dict()["layers.0.weight"], weights.load_folder(TutorialLayer, folder)
                       .state_dict()["layers.0.weight"])
    # Their token opens their repos, not the owner's: the same answer as for a repo that does not exist.
    assert refusal(lambda: hub.load_for_visitor("owner/secret", token, max_bytes=BIG)) == \
        hub.not_found_message("owner/secret")
    assert carried(two_users, OWNER) == []
    assert refusal(lambda: hub.load_for_visitor("visitor/mine", max_bytes=BIG)) == \
        hub.not_found_message("visitor/mine")                                # signed out: not theirs any more


def test_visitor_token_is_theirs_or_none():
    from gradio import OAuthToken
    assert hub.visitor_token(None) is False and hub.visitor_token("") is False and hub.visitor_token(" ") is False
    assert hub.visitor_token("hf_x") == "hf_x"
    assert hub.visitor_token(OAuthToken(token="hf_y", scope="openid", expires_at=0)) == "hf_y"


# -- bounded before it downloads -----------------------------------------------------------------------------------
def test_a_model_over_the_limit_is_refused_before_any_download(two_users, tmp_path):
    _, files = model_files(tmp_path, resolution=16)
    two_users.add_repo("owner/big", files)
    size = len(files[CONFIG_NAME]) + len(files[WEIGHTS_NAME])
    message = refusal(lambda: hub.load_for_visitor("owner/big", max_bytes=size - 1))
    assert f"is {size / 1e6:,.1f} MB" in message and "PREDISTORT_MAX_MODEL_MB" in message
    assert [r.path for r in two_users.recorded] == ["/api/models/owner/big"]   # the metadata, nothing else
    assert hub.load_for_visitor("owner/big", max_bytes=size).resolution == 16  # at the limit: loads


def test_the_default_limit_is_the_largest_model_type_at_the_largest_resolution():
    r = 128
    tutorial = (r * r) ** 2 * 4 + r * r * 4                    # the R⁴ float32 weights and R² biases
    assert hub.default_max_model_bytes(r) == hub.model_bytes("tutorial", resolution=r) == tutorial
    # The generalising layer: its sparse layer's entries (float32 value + int32 column), per pixel a 5×5
    # window along each of the 5 traced chains, plus R²+1 row pointers, R² environment terms, 3 numbers a layer.
    entries = 1024 * 1024 * 25 * 5
    unrolled = entries * 8 + (1024 * 1024 + 1) * 4 + 1024 * 1024 * 4 + 3 * 16 * 4
    assert hub.model_bytes("unrolled", **hub.largest_config("unrolled", 1024)) == unrolled
    assert hub.default_max_model_bytes({"tutorial": 32, "unrolled": 1024}) == unrolled
    assert hub.default_max_model_bytes({"unrolled": 128}) < tutorial
    # What predistort ships and trains fits: the bundled default model.
    bundled = sum((weights.bundled_dir() / n).stat().st_size for n in (CONFIG_NAME, WEIGHTS_NAME))
    assert bundled < hub.default_max_model_bytes(128)


def test_max_model_mb_setting():
    from predistort.settings import Settings
    for raw, limit in (("5", 5_000_000), ("0.5", 500_000), ("0", hub.default_max_model_bytes(128))):
        s = Settings.from_env({"PREDISTORT_MAX_MODEL_MB": raw})
        assert hub.max_model_bytes(s.max_resolution, s.max_model_mb) == limit
    assert hub.max_model_bytes(64) == hub.default_max_model_bytes(64)
    for bad in ("-3", "lots", "inf", "nan"):
        with pytest.raises(ValueError, match="PREDISTORT_MAX_MODEL_MB"):
            Settings.from_env({"PREDISTORT_MAX_MODEL_MB": bad})


def _with_config(folder, tmp_path, **changes):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / WEIGHTS_NAME).write_bytes((folder / WEIGHTS_NAME).read_bytes())
    config = {**json.loads((folder / CONFIG_NAME).read_text()), **changes}
    (bad / CONFIG_NAME).write_text(json.dumps(config))
    return bad


# Loads a 16×16 tutorial layer's weights under a config.json that describes a 96×96 one (96⁴·4 B = 340 MB) and
# prints the process's peak memory before and after, in kB.
HUGE_CONFIG = """
import resource, sys
from predistort import weights
from predistort.layers import PredistortModel
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    weights.load_folder(PredistortModel, sys.argv[1])
except weights.WeightsError as e:
    print("refused:", e)
print("peak kB", before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_a_config_whose_shapes_disagree_with_its_weights_allocates_nothing(tmp_path):
    folder, _ = model_files(tmp_path, resolution=16)
    bad = _with_config(folder, tmp_path, resolution=96)
    assert hub.model_bytes("tutorial", resolution=96) > 300e6          # what building it for real would cost
    result = run_python(["-c", HUGE_CONFIG, str(bad)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused:" in result.stdout and "do not fit" in result.stdout and "has shape [256, 256]" in result.stdout
    before, after = map(int, re.search(r"peak kB (\d+) (\d+)", result.stdout).groups())
    assert after - before < 50_000, (before, after)                    # kB: far below the 340 MB


def test_a_config_cannot_make_even_the_construction_huge(tmp_path):
    """A depth of 10⁹ would build lists of 10⁹ numbers before any shape is compared: refused first."""
    from predistort import solve
    from predistort.scene import DEFAULT
    transport = solve.transport_for(DEFAULT.replace(resolution=8))
    folder = tmp_path / "unrolled"
    UnrolledInverse.from_transport(transport, depth=4).save_pretrained(folder)
    bad = _with_config(folder, tmp_path, depth=10**9)
    message = refusal(lambda: weights.load_folder(UnrolledInverse, bad))
    assert "asks for depth=1000000000" in message and "values its model.safetensors holds" in message


# -- pushing to the visitor's own account ---------------------------------------------------------------------------
def test_a_signed_in_visitor_pushes_to_their_own_account(two_users, tmp_path):
    from gradio import OAuthToken
    folder, files = model_files(tmp_path, seed=3)
    token = OAuthToken(token=VISITOR, scope="openid profile write-repos manage-repos", expires_at=2**31)
    repo_id, url = hub.push_for_visitor(folder, "my-lens", token)
    assert repo_id == "visitor/my-lens" and two_users.resolve(repo_id) in url
    pushed = two_users.files(repo_id)
    assert pushed[WEIGHTS_NAME] == files[WEIGHTS_NAME] and pushed[CONFIG_NAME] == files[CONFIG_NAME]
    assert b"visitor/my-lens" in pushed["README.md"] and b"USER/NAME" not in pushed["README.md"]
    assert carried(two_users, OWNER) == []
    # Private by default: the visitor loads it, nobody else does.
    assert hub.inspect_remote(repo_id, token, max_bytes=BIG).private
    assert hub.load_for_visitor(repo_id, token, max_bytes=BIG).resolution == 8
    assert refusal(lambda: hub.load_for_visitor(repo_id, max_bytes=BIG)) == hub.not_found_message(repo_id)
    # USER/NAME spelled out works too, and a public push is public.
    assert hub.push_for_visitor(folder, "visitor/open-lens", VISITOR, private=False)[0] == "visitor/open-lens"
    assert hub.load_for_visitor("visitor/open-lens", max_bytes=BIG).resolution == 8


def test_push_refusals(two_users, tmp_path):
    folder, _ = model_files(tmp_path, seed=4)
    two_users.clear_requests()
    assert "Sign in with Hugging Face first" in refusal(lambda: hub.push_for_visitor(folder, "x", None))
    assert [r.path for r in two_users.recorded] == []                  # not even asked: no token to ask with
    message = refusal(lambda: hub.push_for_visitor(folder, "owner/x", VISITOR))
    assert "signed in as 'visitor'" in message and "not to 'owner'" in message
    assert "not a Hugging Face model repo id" in refusal(lambda: hub.push_for_visitor(folder, "a b", VISITOR))
    assert "without '@'" in refusal(lambda: hub.push_for_visitor(folder, "x@v1", VISITOR))
    assert "does not accept your sign-in" in refusal(lambda: hub.push_for_visitor(folder, "x", "hf_expired"))
    assert not [r for r in two_users.recorded if r.method == "POST"]   # nothing was created or written
    assert not two_users.repo_exists("owner/x")


# -- one repo id check ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("user/name", ("user/name", None)), (" user/name ", ("user/name", None)),
    ("user/name@v2", ("user/name", "v2")), ("user/name@refs/pr/1", ("user/name", "refs/pr/1")),
    ("Org_1/model.v2-x", ("Org_1/model.v2-x", None)),
    ("user/name@" + "a" * 40, ("user/name", "a" * 40)),
])
def test_check_repo_id_accepts(text, expected):
    assert weights.check_repo_id(text) == expected


@pytest.mark.parametrize("text", ["", "name", "a/b/c", "user/", "/name", "user/a..b", "user/a--b", "user/naïve",
                                  "user/name.git", "../../etc", "/tmp", "user/na me", "x" * 300 + "/y",
                                  "user/name@", "user/name@../main", "user/name@v 2", None, 3])
def test_check_repo_id_refuses(text):
    message = refusal(lambda: weights.check_repo_id(text))
    assert "Hugging Face model repo id" in message and len(message) < 400


def test_check_repo_id_names_the_id_of_a_hub_url():
    message = refusal(lambda: weights.check_repo_id("https://huggingface.co/user/name/tree/main"))
    assert "use the repo id 'user/name'" in message


# -- the session's handlers with a visitor's token (what /load_pretrained and /push_to_hub call) ---------------------
def test_the_session_loads_and_pushes_with_the_visitors_token_only(two_users, tmp_path, monkeypatch):
    from gradio import OAuthToken
    from conftest import make_tiny_model
    from predistort.service import Session
    from predistort.settings import Settings
    settings = Settings(default_weights=str(make_tiny_model(tmp_path / "default16", 16)), preview_spp=4)
    _, files = model_files(tmp_path, resolution=16, seed=5)
    two_users.add_repo("visitor/own16", files, private=True)
    two_users.add_repo("owner/secret16", files, private=True)
    token = OAuthToken(token=VISITOR, scope="openid profile read-repos write-repos manage-repos", expires_at=2**31)
    signed_in, anonymous = Session(settings), Session(settings)
    assert "visitor/own16" in signed_in.load_pretrained("visitor/own16", token=token)
    assert refusal(lambda: anonymous.load_pretrained("visitor/own16")) == hub.not_found_message("visitor/own16")
    assert refusal(lambda: signed_in.load_pretrained("owner/secret16", token=token)) == \
        hub.not_found_message("owner/secret16")
    # A private model is the signed-in visitor's alone: another session asking for it still needs its own token.
    assert all(k[0] != "visitor/own16" for k in resources._models)
    message = signed_in.push("lens16", token)
    assert "visitor/lens16" in message and "private" in message
    assert two_users.files("visitor/lens16")[WEIGHTS_NAME] == files[WEIGHTS_NAME]
    assert refusal(lambda: anonymous.push("lens16", None)).startswith("Sign in with Hugging Face first")
    assert carried(two_users, OWNER) == []                        # the server's token was never sent
