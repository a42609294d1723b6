"""predistort web app (Gradio 6): layout and wiring only — what it does lives in predistort/service.py.

Run: ``python app.py`` (Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose where it listens; the
Docker Space sets 0.0.0.0:7860). Limits: the PREDISTORT_* variables of predistort.service.Settings.

API (gradio_client; every endpoint has a stable name, see the README):
    /predistort       (texture, spp, fit)                 -> initial render, pre-distorted texture, final render,
                                                             metrics, input texture (as used), summary
    /compare          (textures, spp, fit)                -> comparison figures, metrics table, notes
    /train            (textures, method, iterations, spp, resolution, seed, sphere_ior, sphere_radius, fit)
                                                          -> weights zip, loss curve, metrics, figures, status,
                                                             progress (HTML); a generator: submit() streams them
    /stop             ()                                  -> message
    /load_pretrained  (repo id or "default")              -> status
    /export           ()                                  -> weights zip, comparison figure (file, image)
    /estimate         (textures, method, iterations, spp, resolution) -> estimate (Markdown)
    /status           ()                                  -> status (Markdown)
"""
import functools
import inspect

import gradio as gr

from predistort import service
from predistort.service import SETTINGS

TITLE = "predistort · see your picture undistorted through a glass sphere"
INTRO = """# predistort
A glass sphere in front of a picture bends it. **predistort** learns how to *pre-distort* the picture so that,
seen through the sphere (rendered with the differentiable renderer [Mitsuba 3](https://mitsuba.readthedocs.io)),
it looks like the original again. Upload a picture (any common format and size: it is centre-cropped — or
resized — to the model's square resolution, and the page says so), or pick an example, and press
**Pre-distort**. To fit your own pictures, train a model on them in *Several pictures · train*.
Your model and results belong to this browser tab only."""
CSS = """
.pixelated img { image-rendering: pixelated; object-fit: contain; width: 100%; height: 100%; }
#status { font-size: 0.95em; }
"""
THEME = gr.themes.Soft(primary_hue="indigo")
GALLERY_HEIGHT = 420
OUT_HEIGHT = 256                       # pixels: small textures are shown enlarged (pixelated, not blurred)
FITS = [("crop: centre square, then resize", "crop"), ("resize: squash the whole picture", "resize")]


def user_errors(fn):
    """Show a user's mistake (any ValueError: bad picture, option, repo id) as gr.Error; the server keeps running."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except ValueError as e:
                raise gr.Error(str(e), print_exception=False) from None
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None
    return call


def upload_path(payload):
    """The server path of an uploaded file, as Gradio hands it over without preprocessing (a FileData dict)."""
    if isinstance(payload, dict):
        return payload.get("path")
    return getattr(payload, "path", payload)


def pil(tensor):
    from predistort.images import to_pil
    return to_pil(tensor)


def figures(results):
    return [(r.figure(), r.name) for r in results]


TABLE_HEADERS = ["picture", "L1 without", "L1 with", "PSNR without (dB)", "PSNR with (dB)", "gain (dB)"]


def metrics_table(results):
    import pandas as pd
    rows = [[m["texture"], round(m["l1_initial"], 4), round(m["l1_final"], 4), round(m["psnr_initial"], 2),
             round(m["psnr_final"], 2), round(m["psnr_gain_db"], 2)] for m in (r.metrics for r in results)]
    return pd.DataFrame(rows, columns=TABLE_HEADERS)


# -- handlers: each one call into the session --------------------------------------------------------------
@user_errors
def on_predistort(session, texture, spp, fit):
    r = session.predistort(upload_path(texture), spp, fit)
    c = r.comparison
    summary = service.metrics_markdown(r.metrics)
    if r.notes:
        summary += "\n\n" + service.notes_markdown([r])
    return pil(c.initial), pil(c.predistorted), pil(c.final), r.metrics, pil(c.target), summary


@user_errors
def on_compare(session, textures, spp, fit):
    results = session.compare(textures, spp, fit)
    return figures(results), metrics_table(results), service.notes_markdown(results) or "Pictures used as they are."


@user_errors
def on_train(session, textures, method, iterations, spp, resolution, seed, sphere_ior, sphere_radius, fit,
             progress=gr.Progress()):
    try:
        est = service.estimate(method, resolution, len(textures or []) or 1, iterations, spp)
    except ValueError:
        est = None                                   # bad options: session.train says what is wrong
    if est is not None and est.long:
        gr.Warning(f"Long training: about {service.format_duration(est.total_seconds)} on this machine. "
                   f"Stop ends it early and keeps what was learned.")
    for ev in session.train(textures, method, iterations, spp, resolution, seed, sphere_ior, sphere_radius, fit=fit):
        progress((ev.iteration, ev.total) if ev.stage == "training" else None, desc=ev.description)
        if not ev.done:
            yield gr.skip(), service.history_table(ev.history), gr.skip(), gr.skip(), gr.skip(), ev.html(), session
        else:
            yield (ev.weights_zip, service.history_table(ev.history), ev.metrics, figures(ev.results),
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
    said = service.notes_markdown([(name, notes) for name, _, notes in prepared])
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
    return service.estimate(method, resolution, len(textures or []) or 1, iterations, spp).message


def on_method(method):
    m = service.METHODS.get(method)
    return f"**{method}** — {m.summary}" if m else ""


def on_status(session):
    return session.status()


def use_examples():
    return service.examples()[: SETTINGS.max_textures]


# -- layout ----------------------------------------------------------------------------------------------------
def build_demo():
    example_paths = service.examples()
    with gr.Blocks(title=TITLE) as demo:
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
                    method = gr.Dropdown(list(service.METHODS), value=service.DEFAULT_METHOD, label="Model type")
                    method_info = gr.Markdown(on_method(service.DEFAULT_METHOD))
                    iterations = gr.Slider(1, SETTINGS.max_iterations, value=min(100, SETTINGS.max_iterations), step=1,
                                           label="Iterations (tutorial: 100)")
                    train_spp = gr.Slider(1, min(64, SETTINGS.max_spp), value=4, step=1,
                                          label="Samples per pixel while training (tutorial: 4)")
                    resolution = gr.Slider(16, SETTINGS.max_resolution, value=min(128, SETTINGS.max_resolution),
                                           step=8, label="Resolution, pixels (tutorial: 128)")
                    seed = gr.Number(0, precision=0, minimum=0, label="Seed of the initial weights (tutorial: 0)")
                    with gr.Accordion("Scene: the glass sphere", open=False):
                        ior = gr.Slider(1.0, 2.0, value=service.DEFAULT.sphere_ior, step=0.01,
                                        label="Index of refraction (tutorial: 1.06)")
                        radius = gr.Slider(0.1, 0.95, value=service.DEFAULT.sphere_radius, step=0.01,
                                           label="Radius (tutorial: 0.45)")
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
        instant = dict(concurrency_limit=None)               # cheap: never waits behind a training
        private = dict(api_visibility="private", **instant)
        run.click(on_predistort, [session, texture, spp, fit], [initial, pre, final, metrics, used, summary],
                  api_name="predistort", preprocess=False, **render)   # images.py reads the upload itself
        compare_btn.click(on_compare, [session, textures, compare_spp, fit], [gallery, table, notes],
                          api_name="compare", **render)
        train_btn.click(
            on_train, [session, textures, method, iterations, train_spp, resolution, seed, ior, radius, fit],
            [weights_file, loss, train_metrics, train_gallery, status, train_progress, session], api_name="train",
            concurrency_id="train", concurrency_limit=SETTINGS.train_concurrency,
        ).then(on_status, [session], [status], **private)
        stop_btn.click(on_stop, [session], [stop_msg], api_name="stop", **instant)
        load_btn.click(on_load, [session, repo], [load_msg, session], api_name="load_pretrained",
                       concurrency_id="load", concurrency_limit=1).then(on_status, [session], [status], **private)
        export_btn.click(on_export, [session], [export_weights, export_figure, export_image], api_name="export",
                         **render)
        estimate_inputs = [textures, method, iterations, train_spp, resolution]
        textures.change(on_estimate, estimate_inputs, [estimate], api_name="estimate", **instant)
        for control in (method, iterations, train_spp, resolution):
            control.change(on_estimate, estimate_inputs, [estimate], **private)
        method.change(on_method, [method], [method_info], **private)
        textures.change(on_pictures, [session, textures, fit], [notes], **private)
        examples_btn.click(use_examples, None, [textures], **private)
        demo.load(on_status, [session], [status], api_name="status", **instant)
        demo.load(on_estimate, estimate_inputs, [estimate], **private)
    return demo


demo = build_demo()


def main():
    service.warm_up(render=SETTINGS.warmup)          # the default model is loaded before the first visitor
    demo.queue(default_concurrency_limit=1, max_size=SETTINGS.queue_size)
    demo.launch(theme=THEME, css=CSS, max_file_size=int(SETTINGS.max_upload_mb * 1e6), show_error=True)


if __name__ == "__main__":
    main()
