"""predistort web app (Gradio 6): layout and wiring only — what it does lives in predistort/ (the session:
predistort/service.py).

Run: ``python app.py`` (Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose where it listens; the
Docker Space sets 0.0.0.0:7860). Limits: the PREDISTORT_* variables of predistort.settings.Settings.

API (gradio_client; every endpoint has a stable name, see the README):
    /predistort       (texture, spp, fit, refine)         -> initial render, pre-distorted texture, final render,
                                                             metrics, input texture (as used), summary
    /compare          (textures, spp, fit)                -> comparison figures, metrics table, notes
    /train            (textures, method, iterations, spp, resolution, seed, sphere_ior, sphere_radius, fit)
                                                          -> weights zip, loss curve, metrics, figures, status,
                                                             progress (HTML); a generator: submit() streams them
    /stop             ()                                  -> message
    /load_pretrained  (repo id or "default")              -> status
    /export           ()                                  -> weights zip, comparison figure (file, image)
    /estimate         (textures, method, iterations, spp, resolution) -> estimate (Markdown)
    /check_scene      (sphere_ior, sphere_radius, resolution) -> which methods apply to that scene (Markdown)
    /status           ()                                  -> status (Markdown)
"""
import functools
import hashlib
import inspect
import io
import os
import tempfile
from pathlib import Path

import gradio as gr

from predistort import methods, report, resources, service
from predistort.scene import DEFAULT
from predistort.settings import SETTINGS, ServiceError, examples

TITLE = "predistort · see your picture undistorted through a glass sphere"
INTRO = """# predistort
A glass sphere in front of a picture bends it. **predistort** learns how to *pre-distort* the picture so that,
seen through the sphere (rendered with the differentiable renderer [Mitsuba 3](https://mitsuba.readthedocs.io)),
it looks like the original again. Upload a picture (any common format and size: it is centre-cropped — or
resized — to the model's square resolution, and the page says so), or pick an example, and press
**Pre-distort**. The bundled model is a *generalising layer*: it was never trained on your picture and needs
no training for it. Refinement (below the picture) improves one picture further through the renderer; to
change the sphere or fit your own pictures, train in *Several pictures · train*.
Your model and results belong to this browser tab only."""
CSS = """
.pixelated img { image-rendering: pixelated; object-fit: contain; width: 100%; height: 100%; }
#status { font-size: 0.95em; }
"""
THEME = gr.themes.Soft(primary_hue="indigo")
# Gradio keeps every upload and every output file in its cache folder: each hour, files older than a day go
# (a long-running Space would otherwise fill its disk; a visitor's downloads stay available for a day).
DELETE_CACHE = (3600, 86400)
GALLERY_HEIGHT = 420
OUT_HEIGHT = 256                       # pixels: small textures are shown enlarged (pixelated, not blurred)
FITS = [("crop: centre square, then resize", "crop"), ("resize: squash the whole picture", "resize")]
REFINE_SUMMARY = ("Refinement optimises this picture's own pixels through the renderer for the seconds you "
                  "choose, starting from the model's answer, and never returns anything that scores worse than "
                  "its start. It helps most when the model is far from this picture's optimum (the tutorial "
                  "layer); the generalising layer and the instant solve are usually at that optimum already, so "
                  "on them it rarely finds a gain.")


def server_failure(e):
    """gr.Error for a failure that is not the visitor's mistake (a Dr.Jit / Mitsuba / torch error): it says what
    failed, that nothing of theirs was lost, and what to try; the traceback goes to the server's log."""
    lines = str(e).strip().splitlines()
    reason = lines[0] if lines else ""
    reason = reason if len(reason) <= 300 else reason[:297] + "..."
    what = type(e).__name__ + (f": {reason}" if reason else "")
    return gr.Error(f"The server failed while rendering or training ({what}). Your session and model are "
                    f"unchanged and the app keeps running: try again; fewer samples per pixel or a lower resolution "
                    f"may help.", print_exception=True)


def user_errors(fn):
    """Show a user's mistake (any ValueError: bad picture, option, repo id) as gr.Error, and any other failure as
    a gr.Error that says so (:func:`server_failure`); either way the server keeps running."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except ValueError as e:
                raise gr.Error(str(e), print_exception=False) from None
            except gr.Error:
                raise
            except Exception as e:
                raise server_failure(e) from e
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as e:
            raise server_failure(e) from e
    return call


def upload_path(payload):
    """The server path of an uploaded file, as Gradio hands it over without preprocessing (a FileData dict).

    Only files in Gradio's upload folder (uploads, and the examples Gradio copied there) or the example
    pictures themselves are accepted: without preprocessing Gradio does not check a path that comes without
    ``meta``, and a raw API call could otherwise make the app read any picture on the server's disk.
    """
    path = payload.get("path") if isinstance(payload, dict) else getattr(payload, "path", payload)
    if path is None or path == "":
        return None
    if not isinstance(path, str):
        raise ServiceError(f"Expected an uploaded file, got {type(path).__name__}: upload the picture.")
    from gradio.utils import get_upload_folder
    resolved = Path(path).resolve()
    if not (resolved.is_relative_to(Path(get_upload_folder()).resolve())
            or any(resolved == Path(p).resolve() for p in examples())):
        raise ServiceError(f"{Path(path).name}: this file was not uploaded to this app; upload the picture.")
    return path


def upload_paths(payloads):
    """:func:`upload_path` of each file of a multiple-file input (None stays None)."""
    if payloads is None:
        return None
    if not isinstance(payloads, (list, tuple)):
        payloads = [payloads]
    return [upload_path(p) for p in payloads]


def cached_png(image, name="image"):
    """A PIL image as a PNG file in Gradio's cache, written atomically; returns its path (for an output).

    Why not return the PIL image: Gradio names the file it saves after the image's content and rewrites it in
    place on every request, so when two visitors get the same image at once (the same example picture, say),
    one of them can download it while the other's request is rewriting it, and gets an empty, broken image
    (seen under concurrent load: tests/test_robustness.py repeats it). Here an existing file is never
    rewritten, and a new one appears under its final name only when complete. The folder is named by
    Gradio's own content hash, so Gradio finds the file in place and does not copy it again.
    """
    from gradio import processing_utils
    from gradio.utils import get_upload_folder
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    digest = getattr(processing_utils, "hash_bytes", lambda b: hashlib.sha256(b).hexdigest())(data)
    folder = Path(get_upload_folder()) / digest
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    if not path.exists():
        fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(staging, path)
    return str(path)


def pil(tensor, name="image"):
    from predistort.images import to_pil
    return cached_png(to_pil(tensor), name)


def figures(results):
    return [(cached_png(r.figure(), "comparison"), r.name) for r in results]


TABLE_HEADERS = ["picture", "L1 without", "L1 with", "PSNR without (dB)", "PSNR with (dB)", "gain (dB)"]


def metrics_table(results):
    import pandas as pd
    rows = [[m["texture"], round(m["l1_initial"], 4), round(m["l1_final"], 4), round(m["psnr_initial"], 2),
             round(m["psnr_final"], 2), round(m["psnr_gain_db"], 2)] for m in (r.metrics for r in results)]
    return pd.DataFrame(rows, columns=TABLE_HEADERS)


# -- handlers: each one call into the session --------------------------------------------------------------
@user_errors
def on_predistort(session, texture, spp, fit, refine=0):
    r = session.predistort(upload_path(texture), spp, fit, refine)
    c = r.comparison
    summary = report.metrics_markdown(r.metrics)
    if r.notes:
        summary += "\n\n" + report.notes_markdown([r])
    return (pil(c.initial, "render-initial"), pil(c.predistorted, "predistorted"), pil(c.final, "render-final"),
            r.metrics, pil(c.target, "input"), summary)


@user_errors
def on_compare(session, textures, spp, fit):
    results = session.compare(upload_paths(textures), spp, fit)
    return figures(results), metrics_table(results), report.notes_markdown(results) or "Pictures used as they are."


@user_errors
def on_train(session, textures, method, iterations, spp, resolution, seed, sphere_ior, sphere_radius, fit,
             progress=gr.Progress()):
    textures = upload_paths(textures)        # unprocessed (preprocess=False): the service checks every value
    try:
        est = methods.estimate(method, resolution, len(textures or []) or 1, iterations, spp)
    except ValueError:
        est = None                                   # bad options: session.train says what is wrong
    if est is not None and est.long:
        gr.Warning(f"Long training: about {report.format_duration(est.total_seconds)} on this machine. "
                   f"Stop ends it early and keeps what was learned.")
    for ev in session.train(textures, method, iterations, spp, resolution, seed, sphere_ior, sphere_radius, fit=fit):
        progress((ev.iteration, ev.total) if ev.stage == "training" else None, desc=ev.description)
        if not ev.done:
            yield gr.skip(), report.history_table(ev.history), gr.skip(), gr.skip(), gr.skip(), ev.html(), session
        else:
            yield (ev.weights_zip, report.history_table(ev.history), ev.metrics, figures(ev.results),
                   session.status(), ev.html(), session)


def on_pictures(session, textures, fit):
    """What will be done to the uploaded pictures (crop, resize, ...), said as soon as they are uploaded."""
    if not textures:
        return ""
    try:
        prepared = session.prepare(textures, fit=fit)
    except ValueError as e:
        return f"⚠️ {e}"
    r = session.resolution
    said = report.notes_markdown([(name, notes) for name, _, notes in prepared])
    return f"At the current model's resolution ({r}×{r}):\n\n" + (said or "all pictures are used as they are.")


@user_errors
def on_stop(session):
    return session.stop()


@user_errors
def on_load(session, name):
    return session.load_pretrained(name), session


@user_errors
def on_export(session):
    zip_path, figure = session.export()
    return zip_path, figure, figure


@user_errors
def on_estimate(textures, method, iterations, spp, resolution):
    return methods.estimate(method, resolution, len(textures or []) or 1, iterations, spp).message


def method_info(method):
    m = methods.METHODS.get(method)
    return f"**{m.label}** — {m.summary}" if m else ""


def on_method(method):
    """The method's trade-off, and its default iteration count in the slider."""
    m = methods.METHODS.get(method)
    return method_info(method), (gr.update(value=min(m.iterations, SETTINGS.max_iterations)) if m else gr.skip())


@user_errors
def on_scene(session, sphere_ior, sphere_radius, resolution):
    return session.scene_report(sphere_ior, sphere_radius, resolution)


def on_status(session):
    return session.status()


def use_examples():
    return examples()[: SETTINGS.max_textures]


# -- layout ----------------------------------------------------------------------------------------------------
def build_demo():
    example_paths = examples()
    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as demo:
        session = gr.State(service.Session(), time_to_live=SETTINGS.session_ttl_s,
                           delete_callback=service.Session.close)
        gr.Markdown(INTRO)
        status = gr.Markdown(label="Status", elem_id="status")
        fit = gr.Radio(FITS, value="crop", label="Pictures that are not square at the model's resolution")

        with gr.Tab("Pre-distort a picture", id="predistort"):
            with gr.Row():
                with gr.Column(scale=1, min_width=260):
                    texture = gr.Image(label="Your picture", type="filepath", sources=["upload", "clipboard"],
                                       height=260, elem_id="texture")
                    if example_paths:
                        gr.Examples([[p] for p in example_paths], inputs=[texture], label="…or pick an example",
                                    examples_per_page=12)
                    else:
                        gr.Markdown("*(No example pictures are installed: upload one.)*")
                    spp = gr.Slider(1, SETTINGS.max_spp, value=SETTINGS.preview_spp, step=1,
                                    label="Samples per pixel of the renders (more: less noise, slower)")
                    refine = gr.Slider(0, SETTINGS.max_refine_s, value=0, step=1, elem_id="refine",
                                       label="Refine through the renderer, seconds (0: off)",
                                       info=REFINE_SUMMARY, visible=SETTINGS.max_refine_s > 0)
                    run = gr.Button("Pre-distort", variant="primary", elem_id="predistort-button")
                with gr.Column(scale=3):
                    with gr.Row(equal_height=True):
                        initial = gr.Image(label="1 · Render without pre-distortion", format="png",
                                           elem_classes="pixelated", elem_id="out-initial", buttons=["download"],
                                         height=OUT_HEIGHT)
                        used = gr.Image(label="2 · Input texture (as used)", format="png", elem_classes="pixelated",
                                        elem_id="out-input", buttons=["download"],
                                         height=OUT_HEIGHT)
                        pre = gr.Image(label="3 · Pre-distorted texture", format="png", elem_classes="pixelated",
                                       elem_id="out-predistorted", buttons=["download"],
                                         height=OUT_HEIGHT)
                        final = gr.Image(label="4 · Render of the pre-distorted texture", format="png",
                                         elem_classes="pixelated", elem_id="out-final", buttons=["download"],
                                         height=OUT_HEIGHT)
                    summary = gr.Markdown(label="Summary", elem_id="summary")
                    with gr.Accordion("Metrics (JSON)", open=False):
                        metrics = gr.JSON(label="Metrics", elem_id="metrics")

        with gr.Tab("Several pictures · train", id="train"):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    textures = gr.File(label=f"Your pictures (up to {SETTINGS.max_textures})", file_count="multiple",
                                       file_types=["image"], elem_id="textures")
                    examples_btn = gr.Button("Use the example pictures", size="sm",
                                             visible=bool(example_paths))
                    compare_spp = gr.Slider(1, SETTINGS.max_spp, value=SETTINGS.preview_spp, step=1,
                                            label="Samples per pixel of the comparison renders")
                    compare_btn = gr.Button("Pre-distort all with the current model", variant="primary")
                with gr.Column(scale=3):
                    gallery = gr.Gallery(label="For each picture: render without · input · pre-distorted · render "
                                               "with pre-distortion", columns=1, height=GALLERY_HEIGHT,
                                         object_fit="contain", format="png")
                    table = gr.Dataframe(headers=TABLE_HEADERS, label="Metrics against the input (L1: lower is better; PSNR: higher is "
                                               "better)", interactive=False)
                    notes = gr.Markdown(label="Notes")
            gr.Markdown("### Train a model on these pictures")
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    method = gr.Dropdown([(m.label, m.name) for m in methods.METHODS.values()],
                                         value=methods.DEFAULT_METHOD, label="Model type", elem_id="method")
                    method_text = gr.Markdown(method_info(methods.DEFAULT_METHOD), elem_id="method-info")
                    default_iterations = methods.METHODS[methods.DEFAULT_METHOD].iterations
                    iterations = gr.Slider(1, SETTINGS.max_iterations,
                                           value=min(default_iterations, SETTINGS.max_iterations), step=1,
                                           label="Iterations (generalising layer: 30; tutorial: 100)")
                    train_spp = gr.Slider(1, min(64, SETTINGS.max_spp), value=4, step=1,
                                          label="Samples per pixel while training (tutorial: 4)")
                    resolution = gr.Slider(16, SETTINGS.max_resolution, value=min(128, SETTINGS.max_resolution),
                                           step=8, label="Resolution, pixels (tutorial: 128)")
                    seed = gr.Number(0, precision=0, minimum=0, label="Seed of the initial weights (tutorial: 0)")
                    with gr.Accordion("Scene: the glass sphere", open=False):
                        ior = gr.Slider(1.0, 2.0, value=DEFAULT.sphere_ior, step=0.01,
                                        label="Index of refraction (tutorial: 1.06)")
                        radius = gr.Slider(0.1, 0.95, value=DEFAULT.sphere_radius, step=0.01,
                                           label="Radius (tutorial: 0.45)")
                        scene_info = gr.Markdown(elem_id="scene-info")
                    estimate = gr.Markdown(label="Estimate", elem_id="estimate")
                    with gr.Row():
                        train_btn = gr.Button("Train", variant="primary", elem_id="train-button")
                        stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-button")
                    stop_msg = gr.Markdown(label="Stop")
                    train_progress = gr.HTML(label="Progress", elem_id="train-progress")
                with gr.Column(scale=3):
                    loss = gr.LinePlot(x="iteration", y="loss", title="Training loss (L1, sum over pictures)",
                                       height=260, label="Loss curve", elem_id="loss-plot")
                    weights_file = gr.File(label="Trained weights (model.safetensors + config.json, zipped)")
                    train_gallery = gr.Gallery(label="Trained model on the training pictures", columns=1,
                                               height=GALLERY_HEIGHT, object_fit="contain", format="png")
                    with gr.Accordion("Training metrics (JSON)", open=False):
                        train_metrics = gr.JSON(label="Training metrics")

        with gr.Tab("Load a model", id="load"):
            repo = gr.Textbox(label="Hugging Face model repo (USER/NAME or USER/NAME@REVISION), or 'default'",
                              value="default", elem_id="repo")
            load_btn = gr.Button("Load", variant="primary")
            load_msg = gr.Markdown(label="Status")

        with gr.Tab("Download", id="download"):
            gr.Markdown("Download this tab's model (safetensors + config.json, zipped: load it with "
                        "`predistort.load_model(folder)`) and the side-by-side figure of the last results.")
            export_btn = gr.Button("Prepare downloads", variant="primary")
            with gr.Row():
                export_weights = gr.File(label="Weights (.zip)")
                export_figure = gr.File(label="Comparison figure (.png)")
            export_image = gr.Image(label="Comparison figure", format="png", interactive=False)

        # -- events -------------------------------------------------------------------------------------
        render = dict(concurrency_id="render", concurrency_limit=SETTINGS.render_concurrency)
        scene_inputs = [session, ior, radius, resolution]
        instant = dict(concurrency_limit=None)               # cheap: never waits behind a training
        private = dict(api_visibility="private", **instant)
        run.click(on_predistort, [session, texture, spp, fit, refine], [initial, pre, final, metrics, used, summary],
                  api_name="predistort", preprocess=False, **render)   # images.py reads the upload itself
        # preprocess=False (here, /predistort and /train): the service checks every value itself and its messages
        # name the parameter at fault ("spp must be a whole number from 1 to 256, got 0"), where Gradio's own
        # slider check says only "Value 0 is less than minimum value 1".
        compare_btn.click(on_compare, [session, textures, compare_spp, fit], [gallery, table, notes],
                          api_name="compare", preprocess=False, **render)
        train_btn.click(
            on_train, [session, textures, method, iterations, train_spp, resolution, seed, ior, radius, fit],
            [weights_file, loss, train_metrics, train_gallery, status, train_progress, session], api_name="train",
            preprocess=False, concurrency_id="train", concurrency_limit=SETTINGS.train_concurrency,
        ).then(on_status, [session], [status], **private).then(on_scene, scene_inputs, [scene_info], **private)
        # Outside the queue: Stop and the status line must answer even when the queue is full (a full queue
        # refuses every queued event, cheap ones included: "Queue is full! Please try again.").
        stop_btn.click(on_stop, [session], [stop_msg], api_name="stop", queue=False)
        load_btn.click(on_load, [session, repo], [load_msg, session], api_name="load_pretrained",
                       concurrency_id="load", concurrency_limit=1).then(on_status, [session], [status], **private
                                                                         ).then(on_scene, scene_inputs, [scene_info],
                                                                                **private)
        export_btn.click(on_export, [session], [export_weights, export_figure, export_image], api_name="export",
                         **render)
        estimate_inputs = [textures, method, iterations, train_spp, resolution]
        textures.change(on_estimate, estimate_inputs, [estimate], api_name="estimate", **instant)
        for control in (method, iterations, train_spp, resolution):
            control.change(on_estimate, estimate_inputs, [estimate], **private)
        method.change(on_method, [method], [method_text, iterations], **private)
        ior.change(on_scene, scene_inputs, [scene_info], api_name="check_scene", **instant)
        for control in (radius, resolution):
            control.change(on_scene, scene_inputs, [scene_info], **private)
        textures.change(on_pictures, [session, textures, fit], [notes], **private)
        examples_btn.click(use_examples, None, [textures], **private)
        demo.load(on_status, [session], [status], api_name="status", queue=False)
        demo.load(on_estimate, estimate_inputs, [estimate], **private)
        demo.load(on_scene, scene_inputs, [scene_info], **private)
    return demo


demo = build_demo()


def main():
    resources.warm_up(render=SETTINGS.warmup)          # the default model is loaded before the first visitor
    demo.queue(default_concurrency_limit=1, max_size=SETTINGS.queue_size)
    demo.launch(theme=THEME, css=CSS, max_file_size=int(SETTINGS.max_upload_mb * 1e6), show_error=True)


if __name__ == "__main__":
    main()
