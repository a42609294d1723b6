"""Sign in with Hugging Face, in a real browser: a signed-in visitor loads their own private model and pushes a
model to their own account, with their own token — never the server's.

Outside a Space, Gradio imitates the sign-in: the login button signs the browser in as the user of the server's
own Hugging Face token, and the handlers receive the token string ``mock-oauth-token-for-local-dev``. Here the
fake Hub knows that string as a token of the user "visitor" (as a real OAuth token of theirs would be), and the
server holds a different token of its own in HF_TOKEN; every request made for the visitor must carry theirs.
"""
import pytest
from playwright import sync_api

from conftest import make_tiny_model, wait_for_the_status
from fake_hub import FakeHub
from predistort.appserver import launch_app

MOCK = "mock-oauth-token-for-local-dev"          # what Gradio hands the handlers after a local sign-in
SERVER = "hf_server_secret_token"                 # the Space owner's HF_TOKEN secret


@pytest.fixture(scope="module")
def signin_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("signin")
    model = make_tiny_model(tmp / "own16", 16, seed=2)
    files = {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}
    with FakeHub(tmp / "hub", tokens={SERVER: "visitor", MOCK: "visitor", "hf_owner": "owner"}) as hub:
        hub.add_repo("visitor/own16", files, private=True)
        hub.add_repo("owner/secret16", files, private=True)
        env = {**hub.client_env(tmp / "hf-home"), "HF_TOKEN": SERVER}
        default = make_tiny_model(tmp / "default16", 16)
        with launch_app(tmp, base_env=env, PREDISTORT_SIGN_IN="on", PREDISTORT_WARMUP="0",
                        PREDISTORT_DEFAULT_WEIGHTS=str(default)) as app:
            yield app, hub
    assert not hub.errors, hub.errors


def load(page, repo):
    """Type `repo` in the Load tab and press Load, once the box holds it (what the server is sent)."""
    box = page.locator("#repo textarea, #repo input")
    box.fill(repo)
    sync_api.expect(box).to_have_value(repo)
    page.get_by_role("button", name="Load", exact=True).click()


def carried(hub, repo, token):
    return [r for r in hub.recorded if repo in r.path and r.authorization == f"Bearer {token}"]


def test_a_signed_in_visitor_loads_their_private_model_and_pushes_to_their_account(browser, signin_app):
    app, hub = signin_app
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app.url, wait_until="load")
    page.wait_for_selector("#login", timeout=60_000)
    assert "Sign in" in page.inner_text("#login")
    # The page's own first status line must have arrived: it would overwrite the one of the loads below.
    wait_for_the_status(page)

    # Signed out: the private model is refused, as if it did not exist.
    page.get_by_role("tab", name="Load a model").click()
    load(page, "visitor/own16")
    page.wait_for_selector("text=that you can read", timeout=30_000)

    page.click("#login")                                          # the imitated sign-in, then back to the page
    page.wait_for_function("document.querySelector('#login') && "
                           "document.querySelector('#login').innerText.includes('visitor')", timeout=60_000)
    wait_for_the_status(page)
    page.get_by_role("tab", name="Load a model").click()
    load(page, "visitor/own16")
    try:
        page.wait_for_function("document.querySelector('#status').innerText.includes('visitor/own16')",
                               timeout=120_000)
    except sync_api.TimeoutError:
        # Seen twice under the full suite's load (never alone, 6 runs beside two busy loops): the load ran with
        # the box's first value, "default" (the load tab said the default model was loaded; the Hub was asked
        # nothing after the sign-in). Not understood; say what the page and server saw.
        raise AssertionError(f"the box holds {page.locator('#repo textarea, #repo input').input_value()!r}; "
                             f"status {page.inner_text('#status')!r}, load tab "
                             f"{page.inner_text('#load-message')!r}, Hub requests "
                             f"{[(r.path, r.authorization) for r in hub.recorded][-6:]}, server log end:\n"
                             f"{app.log.read_text()[-3000:]}") from None
    load(page, "owner/secret16")                                  # someone else's private model: still refused
    page.wait_for_selector("text=that you can read", timeout=30_000)

    page.get_by_role("tab", name="Download").click()
    page.fill("#push-name textarea, #push-name input", "pushed16")
    page.click("#push-button")
    page.wait_for_function("document.querySelector('#push-message').innerText.includes('visitor/pushed16')",
                           timeout=60_000)
    assert "model.safetensors" in hub.files("visitor/pushed16")
    for repo in ("visitor/own16", "visitor/pushed16"):
        assert carried(hub, repo, MOCK), repo                     # the visitor's own token ...
        assert not carried(hub, repo, SERVER), repo               # ... never the server's
    page.close()
