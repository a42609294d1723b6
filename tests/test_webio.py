"""predistort.webio, without a browser: which paths an API call may make the app read, output PNGs written once,
and how failures reach a visitor."""
import os

import gradio as gr
import pytest
from PIL import Image

from predistort import webio
from predistort.settings import ServiceError, examples


@pytest.fixture
def upload_folder(tmp_path, monkeypatch):
    folder = tmp_path / "gradio-uploads"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


def test_only_uploads_and_the_apps_examples_may_be_read(upload_folder, tmp_path):
    uploaded = upload_folder / "abc" / "picture.png"
    uploaded.parent.mkdir()
    Image.new("RGB", (8, 8)).save(uploaded)
    assert webio.upload_path({"path": str(uploaded), "meta": {"_type": "gradio.FileData"}}) == str(uploaded)
    assert webio.upload_path(examples()[0]) == examples()[0]
    elsewhere = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(elsewhere)
    for path in (str(elsewhere), str(upload_folder / ".." / "secret.png"), "/etc/passwd"):
        with pytest.raises(ServiceError, match="was not uploaded to this app"):
            webio.upload_path({"path": path})
    assert webio.upload_path(None) is None and webio.upload_paths(None) is None
    with pytest.raises(ServiceError, match="Expected an uploaded file"):
        webio.upload_path({"path": 42})


def test_an_output_png_is_written_once_and_never_rewritten(upload_folder):
    image = Image.new("RGB", (16, 16), (200, 10, 10))
    first = webio.cached_png(image, "render")
    stamp = os.stat(first).st_mtime_ns
    assert webio.cached_png(image, "render") == first and os.stat(first).st_mtime_ns == stamp
    assert Image.open(first).getpixel((0, 0)) == (200, 10, 10)
    other = webio.cached_png(Image.new("RGB", (16, 16)), "render")
    assert other != first and not [p for p in upload_folder.rglob("*.part")]


def test_a_visitors_mistake_and_a_server_failure_both_reach_the_page_as_gradio_errors():
    @webio.user_errors
    def mistake():
        raise ServiceError("spp must be a whole number from 1 to 256, got 0.")

    @webio.user_errors
    def failure():
        raise RuntimeError("drjit: variable remains dirty")

    @webio.user_errors
    def stream():
        yield 1
        raise ValueError("the second picture is damaged")

    with pytest.raises(gr.Error, match="spp must be a whole number"):
        mistake()
    with pytest.raises(gr.Error, match="The server failed .*RuntimeError: drjit: variable remains dirty.*unchanged"):
        failure()
    events = stream()
    assert next(events) == 1
    with pytest.raises(gr.Error, match="the second picture is damaged"):
        next(events)
