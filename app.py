"""predistort web app (Gradio 6): layout and wiring only — what it does lives in predistort/ (the session:
predistort/service.py).

Run: ``python app.py`` (Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose where it listens; the
Docker Space sets 0.0.0.0:7860). Limits: the PREDISTORT_* variables of predistort.settings.Settings.

The API's endpoints and the page's events are the handlers of predistort/api.py (each named after its
endpoint; its docstring is the API page's and the MCP tool's description).
"""
import faulthandler
import signal
from dataclasses import dataclass

import gradio as gr

from predistort import backend, methods, resources, service
from predistort.api import (FILMS, advise, advised_distance, before_after, calibrate, chart, check, check_scene,
                            compare, correctability, describe_setup, estimate, export, first_view, lens_fov, load_pretrained,
                            material_ior, method_info, on_method, on_pictures, page_resolution, placement, predistort,
                            predistort_estimate, predistort_world, print_files, push_to_hub, stand_map, status, stop,
                            train, use_examples, use_setup, world_advise, world_calibrate, world_chart,
                            world_check, world_mesh_uploaded, world_setup)
from predistort.physical import LENSES, MAKER_DEFAULT, MATERIALS, PhysicalSetup
from predistort.scene import DEFAULT
from predistort.settings import SETTINGS, examples
from predistort.tolerance import PRESETS as TOLERANCE_PRESETS
from predistort.webio import TABLE_HEADERS, forget_session, install_sessions
from predistort.worldview import OBJECTS as WORLD_OBJECTS, PAPERS_MM

TITLE = "predistort · see your picture undistorted through a glass sphere"
INTRO = """# predistort
A glass sphere in front of a picture bends it. **predistort** learns how to *pre-distort* the picture so that,
seen through the sphere (rendered with the differentiable renderer [Mitsuba 3](https://mitsuba.readthedocs.io)),
it looks like the original again. Upload a picture (any common format and size: it is centre-cropped — or
resized — to the square resolution chosen below it, and the page says so), or pick an example, and press
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
SLIDER_HEIGHT = 420                    # pixels: the before/after slider
PATH_SPP = 64                          # the maker's path renders its before/after with less noise than a preview
FITS = [("crop: centre square, then resize", "crop"), ("resize: squash the whole picture", "resize")]
REFINE_SUMMARY = ("Refinement optimises this picture's own pixels through the renderer for the seconds you "
                  "choose, starting from the model's answer, and never returns anything that scores worse than "
                  "its start. It helps most when the model is far from this picture's optimum (the tutorial "
                  "layer); the generalising layer and the instant solve are usually at that optimum already, so "
                  "on them it rarely finds a gain.")


def leave(request: gr.Request):
    """A tab closed: its session's model, results and files are freed at once (API clients: the time-to-live)."""
    forget_session(demo, request.session_hash)


# -- layout: the page is a list of its tabs, each built and wired by a function of its own ---------------------
# preprocess=False (/predistort, /compare, /train): images.py reads uploads itself, and the service checks every
# value itself, so its messages name the parameter at fault ("spp must be a whole number from 1 to 256, got 0")
# where Gradio's own slider check says only "Value 0 is less than minimum value 1".
RENDER = dict(concurrency_id="render", concurrency_limit=SETTINGS.render_concurrency)
INSTANT = dict(concurrency_limit=None)                  # cheap: never waits behind a training


def private(fn):
    """Page-only events: named apart, so the API names stay exact."""
    return dict(api_visibility="private", api_name=f"page_{fn.__name__}", **INSTANT)


@dataclass
class Page:
    """What the tabs share: the page itself, the visitor's session, the status line, how pictures fit."""
    demo: gr.Blocks
    session: gr.State
    status_md: gr.Markdown
    fit: gr.Radio


def build_demo():
    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as demo:
        page = header(demo)
        predistort_tab(page)
        scene_inputs, scene_info = train_tab(page)
        glass_tab(page)
        load_tab(page, scene_inputs, scene_info)
        download_tab(page)
        demo.load(status, [page.session], [page.status_md], api_name="status", queue=False)
        demo.unload(leave)
    return demo


def header(demo):
    """The session, the introduction, the status line (and sign-in), and how non-square pictures fit."""
    session = gr.State(service.Session(), time_to_live=SETTINGS.session_ttl_s,
                       delete_callback=service.Session.close)
    gr.Markdown(INTRO)
    with gr.Row():
        status_md = gr.Markdown(label="Status", elem_id="status")
        if SETTINGS.signs_in:
            gr.LoginButton(elem_id="login", scale=0, min_width=220)
    fit = gr.Radio(FITS, value="crop", label="Pictures that are not square at the model's resolution")
    return Page(demo, session, status_md, fit)


def predistort_tab(page):
    """One picture: pre-distort it at a resolution, see the four images, the before/after slider, download."""
    session, example_paths = page.session, examples()
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
                resolution_choice = gr.Dropdown(
                    [("the model's own", 0)] + [(f"{r}×{r}", r) for r in SETTINGS.resolutions()],
                    value=0,                          # the API's default; the page sets its own at load
                    label="Resolution of the pre-distorted texture", elem_id="resolution-choice")
                run = gr.Button("Pre-distort", variant="primary", elem_id="predistort-button")
                predistort_eta = gr.Markdown(elem_id="predistort-estimate")
            with gr.Column(scale=3):
                with gr.Row(equal_height=True):
                    initial = gr.Image(label="1 · Render without pre-distortion", format="png",
                                       elem_classes="pixelated", elem_id="out-initial", buttons=["download"],
                                       interactive=False, height=OUT_HEIGHT)
                    used = gr.Image(label="2 · Input texture (as used)", format="png", elem_classes="pixelated",
                                    elem_id="out-input", buttons=["download"], interactive=False, height=OUT_HEIGHT)
                    pre = gr.Image(label="3 · Pre-distorted texture", format="png", elem_classes="pixelated",
                                   elem_id="out-predistorted", buttons=["download"], interactive=False,
                                   height=OUT_HEIGHT)
                    final = gr.Image(label="4 · Render of the pre-distorted texture", format="png",
                                     elem_classes="pixelated", elem_id="out-final", buttons=["download"],
                                     interactive=False, height=OUT_HEIGHT)
                summary = gr.Markdown(label="Summary", elem_id="summary")
                slider = gr.ImageSlider(label="Through the sphere: without ◀ ▶ with pre-distortion", type="filepath",
                                        format="png", elem_id="before-after", elem_classes="pixelated",
                                        max_height=SLIDER_HEIGHT, interactive=False)
                download = gr.File(label="Pre-distorted texture at full resolution (lossless PNG)",
                                   interactive=False, elem_id="download-predistorted")
                with gr.Accordion("Metrics (JSON)", open=False):
                    metrics = gr.JSON(label="Metrics", elem_id="metrics")

    run.click(predistort, [session, texture, spp, page.fit, refine, resolution_choice],
              [initial, pre, final, metrics, used, summary], api_name="predistort", preprocess=False, **RENDER
              ).then(before_after, [initial, final, pre], [slider, download], preprocess=False,
                     **private(before_after)
                     ).then(predistort_estimate, [session, resolution_choice, spp], [predistort_eta],
                            **private(predistort_estimate))
    for control in (resolution_choice, spp):
        control.change(predistort_estimate, [session, resolution_choice, spp], [predistort_eta],
                       **private(predistort_estimate))
    page.demo.load(page_resolution, None, [resolution_choice], **private(page_resolution))
    # The first view: an example already pre-distorted (made at the server's warm-up; instant here).
    page.demo.load(first_view, [session], [initial, pre, final, metrics, used, summary, slider, download],
                   preprocess=False, **private(first_view))
    page.demo.load(predistort_estimate, [session, resolution_choice, spp], [predistort_eta],
                   **private(predistort_estimate))


def train_tab(page):
    """Several pictures: compare them with the current model; train a model (estimate, progress, stop).
    Returns the scene's inputs and report, which loading a model refreshes too."""
    session, example_paths = page.session, examples()
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
                table = gr.Dataframe(headers=TABLE_HEADERS, label="Metrics against the input (L1: lower is "
                                     "better; PSNR: higher is better)", interactive=False)
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
                                       label="Iterations (generalising layer: "
                                             f"{methods.METHODS['unrolled'].iterations}; tutorial: "
                                             f"{methods.METHODS['tutorial'].iterations})")
                train_spp = gr.Slider(1, min(64, SETTINGS.max_spp), value=4, step=1,
                                      label="Samples per pixel while training (tutorial: 4)")
                resolution = gr.Slider(16, SETTINGS.max_resolution, value=min(128, SETTINGS.max_resolution),
                                       step=8, label="Resolution, pixels (tutorial: 128)")
                seed = gr.Number(0, precision=0, minimum=0, label="Seed of the initial weights (tutorial: 0)")
                with gr.Accordion("Scene: the glass sphere", open=False):
                    ior = gr.Slider(1.0, 2.0, value=DEFAULT.sphere_ior, step=0.01,
                                    label=f"Index of refraction (tutorial: {DEFAULT.sphere_ior:g})")
                    radius = gr.Slider(0.1, 0.95, value=DEFAULT.sphere_radius, step=0.01,
                                       label=f"Radius (tutorial: {DEFAULT.sphere_radius:g})")
                    scene_info = gr.Markdown(elem_id="scene-info")
                    gr.Markdown("A real ball, print and camera in millimetres, and where to put the print: the "
                                "*Real object · print* tab.")
                estimate_md = gr.Markdown(label="Estimate", elem_id="estimate")
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

    compare_btn.click(compare, [session, textures, compare_spp, page.fit], [gallery, table, notes],
                      api_name="compare", preprocess=False, **RENDER)
    scene_inputs = [session, ior, radius, resolution]
    train_btn.click(
        train, [session, textures, method, iterations, train_spp, resolution, seed, ior, radius, page.fit],
        [weights_file, loss, train_metrics, train_gallery, page.status_md, train_progress, session], api_name="train",
        preprocess=False, concurrency_id="train", concurrency_limit=SETTINGS.train_concurrency,
    ).then(status, [session], [page.status_md], **private(status)
           ).then(check_scene, scene_inputs, [scene_info], **private(check_scene))
    # Outside the queue: Stop and the status line must answer even when the queue is full (a full queue
    # refuses every queued event, cheap ones included: "Queue is full! Please try again.").
    stop_btn.click(stop, [session], [stop_msg], api_name="stop", queue=False)
    estimate_inputs = [textures, method, iterations, train_spp, resolution]
    textures.change(estimate, estimate_inputs, [estimate_md], api_name="estimate", **INSTANT)
    for control in (method, iterations, train_spp, resolution):
        control.change(estimate, estimate_inputs, [estimate_md], **private(estimate))
    method.change(on_method, [method], [method_text, iterations], **private(on_method))
    ior.change(check_scene, scene_inputs, [scene_info], api_name="check_scene", **INSTANT)
    for control in (radius, resolution):
        control.change(check_scene, scene_inputs, [scene_info], **private(check_scene))
    textures.change(on_pictures, [session, textures, page.fit], [notes], **private(on_pictures))
    examples_btn.click(use_examples, None, [textures], **private(use_examples))
    page.demo.load(estimate, estimate_inputs, [estimate_md], **private(estimate))
    page.demo.load(check_scene, scene_inputs, [scene_info], **private(check_scene))
    return scene_inputs, scene_info


PAPER_CHOICES = [("any size (one page as large as the print)", ""), ("A4", "a4"), ("Letter", "letter"),
                 ("A3", "a3"), ("Legal", "legal"), ("Tabloid", "tabloid")]
STEPS = ("1 · Object", "2 · Advise", "3 · Chart", "4 · Photo", "5 · Your picture", "6 · Print", "7 · Check")


def go_to(step):
    """A page-only event that opens step `step` of the maker's path."""
    def open_step():
        return gr.Walkthrough(selected=step)
    open_step.__name__ = f"step_{step}"
    return open_step


def step_buttons(walk, step, skip=None):
    """Back and Next (and a skip, ``(label, step)``) at the foot of a step."""
    with gr.Row():
        if step > 1:
            gr.Button(f"◀ Back: {STEPS[step - 2]}", size="sm", elem_id=f"step{step}-back").click(
                go_to(step - 1), None, walk, **private(go_to(step - 1)))
        if skip:
            gr.Button(skip[0], size="sm", elem_id=f"step{step}-skip").click(
                go_to(skip[1]), None, walk, **private(go_to(skip[1])))
        if step < len(STEPS):
            gr.Button(f"Next: {STEPS[step]} ▶", size="sm", variant="secondary", elem_id=f"step{step}-next").click(
                go_to(step + 1), None, walk, **private(go_to(step + 1)))


def glass_tab(page):
    """The maker's path for a real object, in seven steps: the setup, advice, the chart, the photo and the fit,
    the picture pre-distorted for it, the print on home paper, the check of a photo of the print."""
    session = page.session
    with gr.Tab("Real object · print", id="glass"):
        gr.Markdown("From your object to a checked print, in seven steps. Each step says what it needs and what it "
                    "gives; go back at any time (the step names above, or ◀ Back). Know your setup exactly? Skip "
                    "the chart and the photo (step 3). **Not a glass ball?** Open *Any object* in step 1.")
        with gr.Walkthrough(selected=1, elem_id="maker-path") as walk:
            with gr.Step(STEPS[0], id=1, elem_id="step-object"):
                gr.Markdown("**Needs:** your ball's size and glass, and where the print and the camera (your "
                            "phone) stand, in millimetres. **Gives:** the setup the next steps work on.")
                here = PhysicalSetup(**MAKER_DEFAULT)             # a setup the chart can calibrate
                with gr.Row():
                    with gr.Column(min_width=280):
                        material = gr.Dropdown(list(MATERIALS) + ["custom"], value=here.material(),
                                               label="Material", elem_id="material")
                        ball_ior = gr.Number(here.ior, label="Index of refraction (how strongly the glass bends "
                                             "light)", minimum=1.0, maximum=3.0, elem_id="ball-ior")
                        diameter = gr.Number(here.ball_diameter_mm, label="Ball diameter (mm)", elem_id="diameter")
                    with gr.Column(min_width=280):
                        print_distance = gr.Number(here.print_distance_mm, label="Ball centre → print (mm)",
                                                   elem_id="print-distance")
                        camera_distance = gr.Number(here.camera_distance_mm, label="Ball centre → camera lens (mm)",
                                                    elem_id="camera-distance")
                        lens = gr.Dropdown(list(LENSES) + ["another lens: its field of view below"],
                                           value="another lens: its field of view below", elem_id="lens",
                                           label="The camera's lens (a phone's, as its camera app names it)")
                        fov = gr.Number(here.fov_deg, label="Field of view across the square picture (°)",
                                        elem_id="fov")
                with gr.Accordion("The camera off the axis, aimed elsewhere, or taking a 4:3 picture (optional)",
                                  open=False, elem_id="camera-offset"):
                    with gr.Row():
                        camera_x = gr.Number(0, label="Camera to the right of the axis (mm)", elem_id="camera-x")
                        camera_y = gr.Number(0, label="Camera above the axis (mm)", elem_id="camera-y")
                        aim_x = gr.Number(0, label="Aimed right of the print's centre (mm)", elem_id="aim-x")
                        aim_y = gr.Number(0, label="Aimed above the print's centre (mm)", elem_id="aim-y")
                    film = gr.Radio(list(FILMS), value="square", label="The camera's picture", elem_id="film")
                setup_md = gr.Markdown(here.describe(), elem_id="setup")
                use_setup_btn = gr.Button("Use this setup", variant="primary", elem_id="use-setup-button")
                setup_status = gr.Markdown(elem_id="setup-status")
                world_step(page)
                step_buttons(walk, 1)
            with gr.Step(STEPS[1], id=2, elem_id="step-advise"):
                gr.Markdown("**Needs:** the setup of step 1. **Gives:** where the print should go for the lowest "
                            "error (with real glass the distance matters more than anything else), on the paper "
                            "you have; how precisely the camera must stand; where no print can help.")
                with gr.Row():
                    with gr.Column(min_width=280):
                        advise_paper = gr.Dropdown(PAPER_CHOICES, value="", label="Your paper (the print on one "
                                                   "sheet of it; or WxH in mm)", allow_custom_value=True,
                                                   elem_id="advise-paper")
                        advise_btn = gr.Button("Advise where to put the print", variant="primary",
                                               elem_id="advise-button")
                        use_advice_btn = gr.Button("Take the advised distance", size="sm")
                        precision = gr.Dropdown(list(TOLERANCE_PRESETS), value="exact spot (0 mm)",
                                                elem_id="placement", label="How precisely will you place the camera?")
                        precision_md = gr.Markdown(elem_id="placement-status")
                    with gr.Column(scale=2):
                        advice_md = gr.Markdown(elem_id="advice")
                        advice_plot = gr.Image(label="Predicted error ratio against the print's distance",
                                               format="png", interactive=False, elem_id="advice-plot")
                with gr.Row():
                    stand_btn = gr.Button("Where may I stand? (map of the last pre-distortion)",
                                          elem_id="stand-button")
                    map_btn = gr.Button("Where can it work? (correctability map)", elem_id="map-button")
                with gr.Row():
                    stand_image = gr.Image(label="Predicted ratio over camera offsets", format="png",
                                           interactive=False, elem_id="stand-map")
                    stand_md = gr.Markdown(elem_id="stand-line")
                    map_image = gr.Image(label="Error no print can remove", format="png", interactive=False,
                                         elem_id="map")
                    map_md = gr.Markdown(elem_id="map-advice")
                step_buttons(walk, 2)
            calibrate_steps(page, walk)
            with gr.Step(STEPS[5], id=6, elem_id="step-print"):
                gr.Markdown("**Needs:** a picture pre-distorted in step 5 (or the first tab). **Gives:** the print "
                            "at its true size: a PDF on your paper (one sheet, or tiles to glue with an assembly "
                            "sheet; every page has a 100 mm ruler: measure it) and a PNG with its DPI. Print at "
                            "100 %, never \"fit to page\".")
                with gr.Row():
                    print_paper = gr.Dropdown(PAPER_CHOICES, value="a4", label="Your paper (or WxH in mm)",
                                              allow_custom_value=True, elem_id="print-paper")
                    print_btn = gr.Button("Print: the last pre-distorted picture at true size (PDF + PNG)",
                                          variant="primary", elem_id="print-button")
                with gr.Row():
                    print_pdf = gr.File(label="PDF (print at 100 %)", elem_id="print-pdf", interactive=False)
                    print_png = gr.File(label="PNG (with its DPI)", elem_id="print-png", interactive=False)
                step_buttons(walk, 6)
            check_step(page, walk)

    glass_inputs = [ball_ior, diameter, print_distance, camera_distance, fov]
    camera_inputs = [camera_x, camera_y, aim_x, aim_y, film]
    material.change(material_ior, [material], [ball_ior], **private(material_ior))
    lens.change(lens_fov, [lens], [fov], **private(lens_fov))
    for control in glass_inputs + camera_inputs:
        control.change(describe_setup, glass_inputs + camera_inputs, [setup_md], **private(describe_setup))
    advise_btn.click(advise, [session, *glass_inputs, advise_paper], [advice_md, advice_plot], api_name="advise",
                     **RENDER)
    use_advice_btn.click(advised_distance, [session], [print_distance], **private(advised_distance))
    use_setup_btn.click(use_setup, [session, *glass_inputs, *camera_inputs], [setup_status, setup_md],
                        api_name="use_setup",
                        **RENDER).then(status, [session], [page.status_md], **private(status))
    precision.change(placement, [session, precision], [precision_md], api_name="placement", **INSTANT)
    stand_btn.click(stand_map, [session], [stand_image, stand_md], api_name="stand_map", **RENDER)
    map_btn.click(correctability, [session], [map_image, map_md], api_name="correctability", **RENDER)
    print_btn.click(print_files, [session, print_paper], [print_pdf, print_png], api_name="print_files", **RENDER)


def world_step(page):
    """Any optical object: pick one (or upload a setup file and its meshes), see it in 3D, pre-distort a picture
    for it, get the renders and the print."""
    session = page.session
    with gr.Accordion("Any object: a cylinder or cone mirror, a glass rod, your own mesh", open=False,
                      elem_id="world-step") as step:
        gr.Markdown("**1 · Describe the setup**: pick the object and give its size, the paper and where the camera "
                    "stands (or upload a setup file: a world in millimetres, see the README, with its OBJ, PLY or "
                    "STL meshes). **2 · Pre-distort** your picture for it: the renders show it printed plain and "
                    "pre-distorted, as the camera sees it. **3 · Print** the PDF at 100 % and stand the object on "
                    "its outline.")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                kind = gr.Dropdown(list(WORLD_OBJECTS), value="cylinder mirror", label="Object", elem_id="world-kind")
                with gr.Row():
                    diameter = gr.Number(60, label="Diameter (mm)", minimum=1, elem_id="world-diameter")
                    height = gr.Number(100, label="Height (mm)", minimum=1, elem_id="world-height")
                paper = gr.Dropdown(list(PAPERS_MM), value="A3", label="Paper (landscape)", elem_id="world-paper")
                with gr.Row():
                    cam_height = gr.Number(300, label="Camera above the print (mm)", elem_id="world-camera-height")
                    cam_distance = gr.Number(300, label="Camera from the object (mm)",
                                             elem_id="world-camera-distance")
                with gr.Row():
                    world_lens = gr.Dropdown(list(LENSES) + ["another lens: its field of view beside"],
                                             value="another lens: its field of view beside",
                                             label="The camera's lens (a phone's, as its camera app names it)",
                                             elem_id="world-lens")
                    cam_fov = gr.Number(20, label="Camera's field of view across its picture (°)", elem_id="world-fov")
                setup = gr.File(label="Setup file (JSON): made from the numbers above, or upload your own",
                                file_types=[".json"], elem_id="world-setup")
                meshes = gr.File(label="Its mesh files (OBJ, PLY, STL, in mm), if any: your own mesh goes here",
                                 file_count="multiple",
                                 file_types=[".obj", ".ply", ".stl"], elem_id="world-meshes")
                picture = gr.Image(label="Your picture", type="filepath", sources=["upload", "clipboard"],
                                   height=200, elem_id="world-picture")
                resolution = gr.Dropdown([256, 512, 1024], value=512, label="Print's long side (pixels)",
                                         elem_id="world-resolution")
                fit = gr.Radio(["crop", "resize"], value="crop", label="Fit the picture", elem_id="world-fit")
                tolerance = gr.Number(0, label="Camera placed by hand within ± (mm; 0: exactly, slower above 0)",
                                      minimum=0, maximum=20, elem_id="world-tolerance")
                go = gr.Button("Pre-distort for this setup", variant="primary", elem_id="world-button")
                pdf = gr.File(label="Print (PDF, at 100 %)", interactive=False, elem_id="world-pdf")
            with gr.Column(scale=2):
                described = gr.Markdown(elem_id="world-described")
                view = gr.Model3D(label="The setup in 3D (print, object, camera)", interactive=False,
                                  elem_id="world-3d", height=360)
                summary = gr.Markdown(elem_id="world-summary")
                with gr.Row():
                    plain = gr.Image(label="Printed plain, seen by the camera", format="png", interactive=False)
                    final = gr.Image(label="Pre-distorted, seen by the camera", format="png", interactive=False,
                                     elem_id="world-render")
                with gr.Row():
                    target = gr.Image(label="What the camera should see", format="png", interactive=False)
                    texture = gr.Image(label="The print (pre-distorted)", format="png", interactive=False,
                                       elem_id="world-texture")
                metrics = gr.JSON(label="Metrics", visible=False)
        with gr.Row():
            with gr.Column(min_width=280):
                advise_btn = gr.Button("Advise: where the camera (a mirror) or the print (glass) should go",
                                       elem_id="world-advise-button")
                advice_md = gr.Markdown(elem_id="world-advice")
            map_image = gr.Image(label="Error no print can remove (the advised setup)", format="png",
                                 interactive=False, elem_id="world-map", height=240)
        gr.Markdown("**Calibrate from one photo** (a mirror standing on the print, or a glass object other than "
                    "the ball): print the **chart** at 100 %, put the object on its outline, photograph it from where "
                    "the camera goes, **Calibrate**: the setup file above becomes the fitted one, and *Pre-distort* "
                    "uses it. A glass object is fitted by rendering the chart through it: a minute or two.")
        with gr.Row():
            with gr.Column(min_width=280):
                chart_btn = gr.Button("Chart for this setup (PDF + PNG)", elem_id="world-chart-button")
                with gr.Row():
                    chart_pdf = gr.File(label="Chart PDF (print at 100 %)", interactive=False,
                                        elem_id="world-chart-pdf", height=120)
                    chart_png = gr.File(label="Chart PNG", interactive=False, elem_id="world-chart-png", height=120)
            with gr.Column(min_width=280):
                photo = gr.Image(label="Your photo of the chart and the object", type="filepath",
                                 sources=["upload", "clipboard"], height=220, elem_id="world-photo")
                calibrate_btn = gr.Button("Calibrate", variant="primary", elem_id="world-calibrate-button")
                fitted_md = gr.Markdown(elem_id="world-fit-report")
        gr.Markdown("**Check the print**: photograph the printed pre-distortion with the object on it, from where "
                    "the camera stands: how close the view is to your picture, and whether to calibrate again.")
        with gr.Row():
            with gr.Column(min_width=280):
                check_photo = gr.Image(label="Your photo of the print and the object", type="filepath",
                                       sources=["upload", "clipboard"], height=220, elem_id="world-check-photo")
                check_btn = gr.Button("Check", elem_id="world-check-button")
                verdict = gr.Markdown(elem_id="world-check-verdict")
                corrected = gr.Image(label="Corrected print (when the error is systematic)", format="png",
                                     interactive=False, height=160)
            check_map = gr.Image(label="Error left, over the view", format="png", interactive=False,
                                 elem_id="world-check-map", height=240)
    picker = [kind, diameter, height, paper, cam_height, cam_distance, cam_fov]
    advise_btn.click(world_advise, [session, setup, meshes], [setup, advice_md, map_image], api_name="world_advise",
                     preprocess=False, **RENDER)
    chart_btn.click(world_chart, [session, setup, meshes], [chart_png, chart_pdf], api_name="world_chart",
                    preprocess=False, **RENDER)
    calibrate_btn.click(world_calibrate, [session, setup, meshes, photo], [setup, fitted_md],
                        api_name="world_calibrate", preprocess=False, **RENDER)
    check_btn.click(world_check, [session, setup, meshes, picture, texture, check_photo], [check_map, verdict, corrected],
                    api_name="world_check", preprocess=False, **RENDER)
    for control in picker:
        control.change(world_setup, [session, *picker, meshes], [setup, view, described], **private(world_setup))
    meshes.upload(world_mesh_uploaded, [session, *picker, meshes], [setup, view, described],
                  **private(world_mesh_uploaded))
    world_lens.change(lens_fov, [world_lens], [cam_fov], **private(lens_fov))
    go.click(predistort_world, [session, setup, meshes, picture, resolution, fit, tolerance],
             [plain, final, target, texture, pdf, metrics, summary, view], api_name="predistort_world",
             preprocess=False, **RENDER)
    # Made when the step is opened, not at every page load (a visitor who never opens it costs nothing).
    step.expand(world_setup, [session, *picker, meshes], [setup, view, described], api_name="world_setup", **INSTANT)


def calibrate_steps(page, walk):
    """Steps 3-5 of the maker's path: the chart, the photo and the fit, the visitor's picture pre-distorted for
    the fitted setup (and the placement of step 2)."""
    session = page.session
    with gr.Step(STEPS[2], id=3, elem_id="step-chart"):
        gr.Markdown("**Needs:** the setup of step 1. **Gives:** the calibration chart of that setup: print it at "
                    "100 % in place of the picture, with the ball and the camera where the setup says.")
        chart_btn = gr.Button("Download the chart (PDF + PNG)", variant="primary", elem_id="chart-button")
        with gr.Row():
            chart_pdf = gr.File(label="Chart PDF (print at 100 %)", elem_id="chart-pdf", interactive=False)
            chart_png = gr.File(label="Chart PNG", elem_id="chart-png", interactive=False)
        step_buttons(walk, 3, skip=("I know my setup exactly: skip to my picture ▶▶", 5))
    with gr.Step(STEPS[3], id=4, elem_id="step-photo"):
        gr.Markdown("**Needs:** one photo through the ball of the printed chart, from where you will look at the "
                    "print, the markers around the ball in it (a phone photo as it comes: JPEG, HEIC, PNG, any size). **Gives:** where the camera, the "
                    "ball and the print really are; pre-distortions from now on are made for that.")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                photo = gr.Image(label="Your photo of the chart through the ball", type="filepath",
                                 sources=["upload", "clipboard"], height=260, elem_id="calibration-photo")
                calibrate_btn = gr.Button("Calibrate", variant="primary", elem_id="calibrate-button")
                fitted_json = gr.File(label="Fitted setup (JSON, for apply --scene)", elem_id="fitted-scene",
                                      interactive=False)
            with gr.Column(scale=2):
                overlay = gr.Image(label="The fitted setup's render over your photo", format="png",
                                   interactive=False, elem_id="calibration-overlay")
                fitted_md = gr.Markdown(elem_id="calibration-report")
        step_buttons(walk, 4)
    with gr.Step(STEPS[4], id=5, elem_id="step-picture"):
        gr.Markdown("**Needs:** your picture; the setup (step 1, or fitted in step 4). **Gives:** the picture "
                    "pre-distorted for that setup, and how it will look through the ball, printed plain and "
                    "pre-distorted (renders by the same light simulation).")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                picture = gr.Image(label="Your picture", type="filepath", sources=["upload", "clipboard"],
                                   height=240, elem_id="path-picture")
                go = gr.Button("Pre-distort for this setup", variant="primary", elem_id="path-predistort")
                summary = gr.Markdown(elem_id="path-summary")
            with gr.Column(scale=2):
                with gr.Row():
                    plain = gr.Image(label="Printed plain, through the ball", format="png", interactive=False,
                                     elem_id="path-plain")
                    seen = gr.Image(label="Pre-distorted, through the ball", format="png", interactive=False,
                                    elem_id="path-final")
                    texture = gr.Image(label="The pre-distorted picture (goes to print)", format="png",
                                       interactive=False, elem_id="path-texture")
                metrics, used = gr.State(), gr.State()                   # what the first tab shows besides
                spp, refine, resolution = gr.State(PATH_SPP), gr.State(0), gr.State(0)
        step_buttons(walk, 5)
    chart_btn.click(chart, [session], [chart_png, chart_pdf], api_name="chart", **RENDER)
    calibrate_btn.click(calibrate, [session, photo], [overlay, fitted_md, fitted_json], api_name="calibrate",
                        preprocess=False, **RENDER).then(status, [session], [page.status_md], **private(status))
    go.click(predistort, [session, picture, spp, page.fit, refine, resolution],
             [plain, texture, seen, metrics, used, summary], preprocess=False, api_visibility="private",
             api_name="page_path_predistort", **RENDER)


def check_step(page, walk):
    """Step 7: a photo of the printed pre-distortion through the ball: how close it is, what to do."""
    session = page.session
    with gr.Step(STEPS[6], id=7, elem_id="step-check"):
        gr.Markdown("**Needs:** a photo of your print through the ball, taken where the calibration photo was. "
                    "**Gives:** how close the view is to your picture, whether to calibrate again, and a corrected "
                    "picture to print when the error left is systematic.")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                check_photo = gr.Image(label="Your photo of the print through the ball", type="filepath",
                                       sources=["upload", "clipboard"], height=200, elem_id="check-photo")
                check_btn = gr.Button("Check", variant="primary", elem_id="check-button")
                corrected = gr.Image(label="Corrected picture", format="png", interactive=False,
                                     elem_id="check-corrected")
            with gr.Column(scale=2):
                check_map = gr.Image(label="Error left in your photo", format="png", interactive=False,
                                     elem_id="check-map")
                check_md = gr.Markdown(elem_id="check-report")
        step_buttons(walk, 7)
    check_btn.click(check, [session, check_photo], [check_map, check_md, corrected], api_name="check",
                    preprocess=False, **RENDER)


def load_tab(page, scene_inputs, scene_info):
    """A pretrained model: the bundled default or a Hugging Face repo (the visitor's own, signed in)."""
    session = page.session
    with gr.Tab("Load a model", id="load"):
        repo = gr.Textbox(label="Hugging Face model repo (USER/NAME or USER/NAME@REVISION), or 'default'",
                          value="default", elem_id="repo")
        if SETTINGS.signs_in:
            gr.Markdown("Signed in with Hugging Face, you can also load your own private models.")
        load_btn = gr.Button("Load", variant="primary")
        load_msg = gr.Markdown(label="Status", elem_id="load-message")

    load_btn.click(load_pretrained, [session, repo], [load_msg, session], api_name="load_pretrained",
                   concurrency_id="load", concurrency_limit=1
                   ).then(status, [session], [page.status_md], **private(status)
                          ).then(check_scene, scene_inputs, [scene_info], **private(check_scene))


def download_tab(page):
    """This tab's model and figure to download; the model pushed to the visitor's own Hub account."""
    session = page.session
    with gr.Tab("Download", id="download"):
        gr.Markdown("Download this tab's model (safetensors + config.json, zipped: load it with "
                    "`predistort.load_model(folder)`) and the side-by-side figure of the last results.")
        export_btn = gr.Button("Prepare downloads", variant="primary")
        with gr.Row():
            export_weights = gr.File(label="Weights (.zip)", interactive=False)
            export_figure = gr.File(label="Comparison figure (.png)", interactive=False)
        export_image = gr.Image(label="Comparison figure", format="png", interactive=False)
        with gr.Group(visible=SETTINGS.signs_in):
            gr.Markdown("#### Push this model to your Hugging Face account (sign in first)")
            with gr.Row():
                push_name = gr.Textbox(label="Repo name (NAME or YOUR_USER/NAME)", value="predistort-model",
                                       elem_id="push-name")
                push_private = gr.Checkbox(value=True, label="Private")
            push_btn = gr.Button("Push to my account", elem_id="push-button")
            push_msg = gr.Markdown(elem_id="push-message")

    export_btn.click(export, [session], [export_weights, export_figure, export_image], api_name="export", **RENDER)
    push_btn.click(push_to_hub, [session, push_name, push_private], [push_msg], api_name="push_to_hub",
                   concurrency_id="load", concurrency_limit=1)


demo = build_demo()


def main():
    faulthandler.register(signal.SIGUSR1, all_threads=True)   # `kill -USR1 <pid>`: every thread's stack, to the log
    backend.limit_heap_arenas()                         # before any worker thread: memory stays flat per visitor
    resources.warm_up(render=SETTINGS.warmup)          # the default model is loaded before the first visitor
    demo.queue(default_concurrency_limit=1, max_size=SETTINGS.queue_size)
    demo.launch(theme=THEME, css=CSS, max_file_size=int(SETTINGS.max_upload_mb * 1e6), show_error=True,
                mcp_server=SETTINGS.mcp, prevent_thread_lock=True)
    install_sessions(demo, SETTINGS.session_ttl_s)  # sessions that free what they hold (predistort.webio)
    demo.block_thread()


if __name__ == "__main__":
    main()
