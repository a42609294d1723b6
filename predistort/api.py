"""The web app's endpoints: one handler per API name, each one call into the visitor's session.

Each public handler is named after its API endpoint, and its docstring's Args describe the endpoint's inputs:
Gradio shows both in the API page and serves them as Model Context Protocol tools (``mcp_server=True``).
``app.py`` lays out the page and wires these handlers to it; the session (:mod:`predistort.service`) does
the work. Handlers of page-only events (estimates, the setup's description) sit beside them.

API (gradio_client; every endpoint has a stable name, see the README):
    /predistort       (texture, spp, fit, refine, resolution) -> initial render, pre-distorted texture, final render,
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
    /push_to_hub      (name, private)                     -> where the model went (needs "Sign in with Hugging Face")
    /advise           (ior, ball_diameter_mm, print_distance_mm, camera_distance_mm, fov_deg, paper)
                                                          -> advice (Markdown), plot of the predicted error ratio
                                                             against the distance; paper "a4": one sheet's print
    /use_setup        (the same five numbers, camera_x_mm, camera_y_mm, aim_x_mm, aim_y_mm, film)
                                                          -> status, how to build the setup (Markdown)
    /correctability   ()                                  -> map of the error no texture can remove, one sentence
    /print_files      (paper)                             -> the last pre-distorted texture as PDF (on that paper:
                                                             one sheet or tiles; "": one page) and PNG at true size
    /placement        (preset)                            -> one sentence: how precisely the camera will be placed
    /stand_map        ()                                  -> map of the predicted ratio over camera offsets, one sentence
    /chart            ()                                  -> the calibration chart: PNG, PDF at the print's true size
    /calibrate        (photo)                             -> fitted render over the photo, fitted quantities (Markdown),
                                                             fitted scene (JSON); the session pre-distorts for it
    /check            (photo)                             -> error map, verdict (Markdown), corrected texture or none
    /predistort_world (setup, meshes, picture, resolution, fit) -> render printed plain, render pre-distorted,
                                                             target, pre-distorted texture, print PDF, metrics,
                                                             summary (Markdown), the setup in 3D (GLB): any object
    /world_setup      (object, diameter_mm, height_mm, paper, camera_height_mm, camera_distance_mm, fov_deg)
                                                          -> setup file (JSON), the setup in 3D (GLB), description
    /world_advise     (setup, meshes)                     -> the advised setup (JSON), advice (Markdown), the map
                                                             of the error no print removes (PNG)
    /world_chart      (setup, meshes)                     -> a mirror setup's calibration chart: PNG, PDF at true size
    /world_calibrate  (setup, meshes, photo)              -> the setup fitted to a photo of that chart (JSON), report
The same endpoints are Model Context Protocol tools (``/gradio_api/mcp/``, PREDISTORT_MCP), described by the
handlers' docstrings below.
"""
import itertools

import gradio as gr
from PIL import Image

from . import methods, report, resources
from .physical import LENSES, MATERIALS, PhysicalSetup, fov_from_lens
from .settings import SETTINGS, examples
from .webio import cached_png, figures, metrics_table, pil, upload_path, upload_paths, user_errors
from .worldview import world_glb


@user_errors
def predistort(session, texture, spp, fit, refine=0, resolution=0, progress=gr.Progress()):
    """Pre-distort one picture so that, seen through the glass sphere, it looks like the original; render the
    scene without and with the pre-distortion and measure both renders against the picture.

    Args:
        texture: the picture (PNG, JPEG, HEIC, WebP, BMP, GIF or TIFF, any size): it is centre-cropped or resized to the square resolution asked.
        spp: samples per pixel of the two renders (more: less noise, slower).
        fit: what to do with a picture that is not square at the model's resolution: "crop" (centre square, then resize) or "resize" (squash the whole picture).
        refine: seconds (0 = off) of per-picture refinement through the renderer after the model's answer; never returns worse than the model's.
        resolution: side in pixels of the pre-distorted texture (128, 256, 512 or 1024; 0 = the model's own). The page starts a new picture at 512, the largest that answers in about 2 s on a 2-core CPU (PREDISTORT_PICTURE_RESOLUTION). A resolution not used before is measured first (seconds, once); above 512 the renders use fewer samples per pixel (the metrics say how many).
    Returns:
        render without pre-distortion, pre-distorted texture, render of the pre-distorted texture (PNG files), metrics (L1 and PSNR of both renders), the picture as used (PNG), a summary (Markdown).
    """
    budget = float(refine) if isinstance(refine, (int, float)) and not isinstance(refine, bool) else 0.0

    def refined(step, loss, elapsed):
        if budget > 0:
            progress((min(elapsed, budget), budget), desc=f"Refining: step {step}, fixed-seed L1 {loss:.4f}",
                     unit="s")

    def probing(fraction, message):
        progress(fraction, desc=f"Measuring the light transport at this resolution (once): {message}")

    r = session.predistort(upload_path(texture), spp, fit, refine, progress=refined, resolution=resolution,
                           probe_progress=probing)
    c = r.comparison
    summary = report.metrics_markdown(r.metrics)
    if r.notes:
        summary += "\n\n" + report.notes_markdown([r])
    return (pil(c.initial, "render-initial"), pil(c.predistorted, "predistorted"), pil(c.final, "render-final"),
            r.metrics, pil(c.target, "input"), summary)


FIRST_VIEW_WAIT_S = 60.0    # a page opened while the server warms up waits this long for its first view


def first_view(session):
    """The page's first view: the first example pre-distorted by the default model when the server started
    (:func:`predistort.resources.first_view`), as /predistort shows a result, with the before/after slider and
    the download; nothing changes until the warm-up has made it, nor once the visitor has a result of their own
    (a page opened during the warm-up may have pre-distorted before the first view came). The picture input is
    left as it is: a visitor's upload is never replaced."""
    from pathlib import Path
    from .report import Result
    made = resources.first_view(wait_s=FIRST_VIEW_WAIT_S)
    if made is None or session.results:
        return (gr.skip(),) * 8
    picture, c = made
    r = Result(Path(picture).name, c, [])
    images = pil(c.initial, "render-initial"), pil(c.predistorted, "predistorted"), pil(c.final, "render-final")
    summary = (f"*An example, pre-distorted by the model this page starts with when the server started "
               f"(renders: {r.metrics['spp']} samples per pixel). Upload your own picture or pick another.*\n\n"
               + report.metrics_markdown(r.metrics))
    return (*images, r.metrics, pil(c.target, "input"), summary, (images[0], images[2]), images[1])


def before_after(initial, final, predistorted):
    """The renders without and with pre-distortion that /predistort just showed (for the before/after slider),
    and its pre-distorted texture (for download at full resolution): the same PNG files, passed on as they are."""
    paths = [upload_path(p) for p in (initial, final, predistorted)]
    if None in paths:
        return None, None
    return (paths[0], paths[1]), paths[2]


def page_resolution():
    """The resolution the page offers a new picture: the largest that answers in about 2 s here (the API's own
    default stays 0, the model's resolution)."""
    return SETTINGS.page_resolution()


def predistort_estimate(session, resolution, spp):
    """About how long a pre-distortion at this resolution takes here (the page shows it before running)."""
    try:
        return session.predistort_estimate(resolution, spp)
    except ValueError as e:
        return f"⚠️ {e}"


@user_errors
def compare(session, textures, spp, fit):
    """Pre-distort several pictures with the current model and compare each one's renders without and with it.

    Args:
        textures: the pictures (image files, at most PREDISTORT_MAX_TEXTURES).
        spp: samples per pixel of the renders.
        fit: "crop" or "resize" for pictures that are not square at the model's resolution.
    Returns:
        one side-by-side figure per picture, a metrics table, notes on what was done to the pictures.
    """
    results = session.compare(upload_paths(textures), spp, fit)
    return figures(results), metrics_table(results), report.notes_markdown(results) or "Pictures used as they are."


@user_errors
def train(session, textures, method, iterations, spp, resolution, seed, sphere_ior, sphere_radius, fit,
          progress=gr.Progress()):
    """Get a model for these pictures and this glass sphere: train the generalising layer or the tutorial's layer
    through the differentiable renderer, or make the instant solve. Streams one update per iteration.

    Args:
        textures: the training pictures (image files).
        method: "unrolled" (the generalising layer, default), "solve" (the instant solve: no training) or "tutorial" (the tutorial's fully connected layer).
        iterations: training iterations (ignored by "solve").
        spp: samples per pixel of the training renders.
        resolution: texture and render side in pixels.
        seed: seed of the initial weights.
        sphere_ior: index of refraction of the glass sphere (the tutorial's: 1.06).
        sphere_radius: radius of the glass sphere (the tutorial's: 0.45).
        fit: "crop" or "resize" for pictures that are not square.
    Returns:
        the weights (zip), the loss curve, metrics, comparison figures, the session's status, a progress bar (HTML).
    """
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
def stop(session):
    """End this session's running training after its current iteration; what it learned is kept.

    Returns:
        a message saying whether a training was running.
    """
    return session.stop()


@user_errors
def load_pretrained(session, name, oauth_token: gr.OAuthToken | None = None):
    """Use a pretrained model in this session: the bundled default, or a predistort model from the Hugging Face Hub.

    Args:
        name: "default" (the bundled model) or a Hub model repo id USER/NAME, optionally USER/NAME@REVISION. Private repos load only for a visitor signed in with Hugging Face, with their own token.
    Returns:
        the session's status line (Markdown).
    """
    return session.load_pretrained(name, token=oauth_token), session


@user_errors
def push_to_hub(session, name, private, oauth_token: gr.OAuthToken | None = None):
    """Push this session's model (weights, config and model card) to your own Hugging Face account; needs sign-in.

    Args:
        name: the repo's name, NAME or YOUR_USER/NAME.
        private: make a new repo private.
    Returns:
        where the model went (Markdown).
    """
    return session.push(name, oauth_token, private=private)


@user_errors
def export(session):
    """Download this session's model and the comparison figure of its last results.

    Returns:
        the weights (zip: model.safetensors + config.json), the comparison figure (PNG file and image).
    """
    zip_path, figure = session.export()
    return zip_path, figure, figure


@user_errors
def estimate(textures, method, iterations, spp, resolution):
    """Estimate how long a training would take on this machine (and its memory), before starting it.

    Args:
        textures: the training pictures (only their number matters).
        method: "unrolled", "solve" or "tutorial".
        iterations: training iterations.
        spp: samples per pixel of the training renders.
        resolution: texture side in pixels.
    Returns:
        the estimate (Markdown), with a warning when the training is long for this machine.
    """
    return methods.estimate(method, resolution, len(textures or []) or 1, iterations, spp).message


# -- real glass -------------------------------------------------------------------------------------------------
FILMS = {"square": None, "4:3 (a phone held level)": (4, 3), "3:4 (a phone held upright)": (3, 4)}


def physical_setup(ior, ball_diameter_mm, print_distance_mm, camera_distance_mm, fov_deg, camera_x_mm=0.0,
                   camera_y_mm=0.0, aim_x_mm=0.0, aim_y_mm=0.0, film="square", resolution=None):
    """The page's (or a client's) numbers as a PhysicalSetup (which refuses non-numbers and impossible setups
    with a ValueError naming the field). `film` (a name of :data:`FILMS`) gives the camera's picture its long
    side at `resolution` texels (the session's; the square picture's when None)."""
    if film not in FILMS:
        raise ValueError(f"film must be one of {', '.join(map(repr, FILMS))}, got {film!r}")
    offsets = dict(camera_x_mm=camera_x_mm, camera_y_mm=camera_y_mm, aim_x_mm=aim_x_mm, aim_y_mm=aim_y_mm)
    if FILMS[film] and resolution:
        w, h = FILMS[film]
        long = int(resolution)
        offsets.update(film_width=long if w >= h else max(8, round(long * w / h)),
                       film_height=long if h > w else max(8, round(long * h / w)))
    return PhysicalSetup(**offsets, **_five(ior, ball_diameter_mm, print_distance_mm, camera_distance_mm, fov_deg))


def _five(ior, ball_diameter_mm, print_distance_mm, camera_distance_mm, fov_deg):
    return dict(ior=ior, ball_diameter_mm=ball_diameter_mm, print_distance_mm=print_distance_mm,
                camera_distance_mm=camera_distance_mm, fov_deg=fov_deg)


@user_errors
def advise(session, ior, ball_diameter_mm, print_distance_mm, camera_distance_mm, fov_deg, paper="",
           progress=gr.Progress()):
    """Where to put the print behind a real ball: search the distance from the ball to the print for the lowest
    error the scene's measured light transport predicts (the camera stays where it is; no renders).

    Args:
        ior: index of refraction of the ball (tutorial 1.06, water 1.33, acrylic 1.49, crown glass 1.52).
        ball_diameter_mm: the ball's diameter in millimetres.
        print_distance_mm: the current distance from the ball's centre to the print, millimetres.
        camera_distance_mm: the distance from the ball's centre to the camera's lens, millimetres.
        fov_deg: the camera's field of view across the square picture, degrees.
        paper: "" (any size) or a paper ("a4", "letter", "a3", "legal", "tabloid", "WxH" in mm): only distances whose print fits one sheet of it.
    Returns:
        the advice (Markdown: the best distance, predicted error ratios at the current and the advised distance), a plot of the predicted ratio against the distance (PNG).
    """
    setup = physical_setup(ior, ball_diameter_mm, print_distance_mm, camera_distance_mm, fov_deg)

    def probed(done, planned, distance, ratio):
        progress((done, planned), desc=f"Probed {distance:g} mm: predicted ratio {ratio:.3f}", unit="probes")

    advice = session.advise(setup, progress=probed, paper=paper)
    return advice.markdown(), cached_png(advice.plot(), "advice")


def advised_distance(session):
    """The print distance the last advice gives (for the page's "use it" button)."""
    return session.advice.best.print_distance_mm if session.advice is not None else gr.skip()


@user_errors
def use_setup(session, ior, ball_diameter_mm, print_distance_mm, camera_distance_mm, fov_deg, camera_x_mm=0.0,
              camera_y_mm=0.0, aim_x_mm=0.0, aim_y_mm=0.0, film="square"):
    """Pre-distort for this physical setup from now on: the scene is measured (once) and the instant solve runs
    on it; the bundled model is used when the setup is the tutorial's.

    Args:
        ior: index of refraction of the ball.
        ball_diameter_mm: the ball's diameter in millimetres.
        print_distance_mm: the distance from the ball's centre to the print, millimetres.
        camera_distance_mm: the distance from the ball's centre to the camera's lens, millimetres.
        fov_deg: the camera's field of view across the square picture, degrees.
        camera_x_mm: the camera off the axis through the ball's centre, to the right as it sees the print (mm, 0: on it).
        camera_y_mm: the same, upwards (mm).
        aim_x_mm: where the camera looks: that far right of the print's centre, on the print (mm, 0: its centre).
        aim_y_mm: the same, upwards (mm).
        film: the camera's picture: "square", "4:3 (a phone held level)" or "3:4 (a phone held upright)".
    Returns:
        the session's status line (Markdown) and how to build the setup (Markdown).
    """
    setup = physical_setup(ior, ball_diameter_mm, print_distance_mm, camera_distance_mm, fov_deg, camera_x_mm,
                           camera_y_mm, aim_x_mm, aim_y_mm, film, resolution=session.resolution)
    return session.use_setup(setup), setup.replace(resolution=session.resolution).describe()


@user_errors
def correctability(session):
    """Where in the picture no texture can remove the error, for this session's scene, and what to change.

    Returns:
        a map of the error left after the best pre-distortion, over the render (PNG), and one sentence on what to change (Markdown).
    """
    image, sentence = session.correctability()
    return cached_png(image, "correctability"), sentence


@user_errors
def print_files(session, paper=""):
    """The last pre-distorted texture, ready to print at the true size of this session's setup.

    Args:
        paper: "" (one page of the print's own size) or the paper you have ("a4", "letter", "a3", "legal", "tabloid", "WxH" in mm): one sheet when the print fits, else tiles with overlap, marks, labels and an assembly sheet; every page has a 100 mm ruler.
    Returns:
        a PDF (the print at its real size, the setup written in the margin) and a PNG whose DPI prints it at that size.
    """
    return session.print_files(paper)


@user_errors
def placement(session, preset):
    """How precisely you will place the camera: pre-distortions from now on hold within that many millimetres.

    Args:
        preset: "exact spot (0 mm)", "calibrated / tripod (1 mm)", "careful (3 mm)" or "by hand (10 mm)".
    Returns:
        one sentence (Markdown).
    """
    return session.set_placement(preset)


@user_errors
def stand_map(session):
    """Where you may stand: the predicted error ratio of the last pre-distortion over camera offsets.

    Returns:
        the map (PNG) and one sentence with its worst and mean (Markdown).
    """
    image, line = session.stand_map()
    return cached_png(image, "stand_map"), line


@user_errors
def chart(session):
    """The calibration chart of this session's setup: print it in place of the picture, at 100 %, and photograph
    it through the ball (markers beside the ball, a smooth colour field behind it).

    Returns:
        the chart as a PNG (the texture) and as a PDF at the print's true size.
    """
    return session.chart_files()


@user_errors
def calibrate(session, photo, progress=gr.Progress()):
    """Fit where the camera, the ball and the print really are from one photo of the printed chart through the
    ball, and pre-distort for the fitted setup from now on (with the placement's tolerance).

    Args:
        photo: the photo (JPEG or PNG from a phone, any size and aspect; EXIF orientation and focal length are used).
    Returns:
        the fitted render over the photo (PNG), the fitted quantities against the nominal ones with uncertainties and the residual (Markdown), the fitted scene (JSON, for `python -m predistort apply --scene`).
    """
    def fitting(fraction, message):
        progress(fraction, desc=f"Calibrating: {message}")

    fitted = session.calibrate(upload_path(photo), progress=fitting)
    return (cached_png(Image.fromarray(fitted.overlay), "calibration"), fitted.to_markdown(),
            session.fitted_scene_file())


@user_errors
def check(session, photo):
    """Close the loop: from a photo of the printed pre-distortion through the ball, taken where the calibration
    photo was, how close the view is to the picture, whether to re-calibrate, and a corrected texture when the
    error left is systematic.

    Args:
        photo: the photo of the print through the ball (JPEG or PNG).
    Returns:
        the error map (PNG), the verdict (Markdown: ratio against printing the picture itself, re-calibrate or not), the corrected texture (PNG) or nothing.
    """
    result = session.check_print(upload_path(photo))
    corrected = pil(result.corrected, "corrected") if result.corrected is not None else None
    return cached_png(Image.fromarray(result.map_image()), "check"), result.to_markdown(), corrected


def describe_setup(ior, ball_diameter_mm, print_distance_mm, camera_distance_mm, fov_deg, camera_x_mm=0.0,
                   camera_y_mm=0.0, aim_x_mm=0.0, aim_y_mm=0.0, film="square"):
    """How to build the setup in the panel (or what is wrong with its numbers)."""
    try:
        return physical_setup(ior, ball_diameter_mm, print_distance_mm, camera_distance_mm, fov_deg, camera_x_mm,
                              camera_y_mm, aim_x_mm, aim_y_mm, film, resolution=128).describe()
    except ValueError as e:
        return f"⚠️ {e}"


def material_ior(material):
    return MATERIALS.get(material, gr.skip())


def lens_fov(lens):
    """The field of view across the square picture (°, rounded to 0.1) of a lens preset of
    :data:`predistort.physical.LENSES` (its 35 mm-equivalent focal length across the frame's 24 mm side)."""
    return round(fov_from_lens(LENSES[lens]), 1) if lens in LENSES else gr.skip()


def method_info(method):
    m = methods.METHODS.get(method)
    return f"**{m.label}** — {m.summary}" if m else ""


def on_method(method):
    """The method's trade-off, and its default iteration count in the slider."""
    m = methods.METHODS.get(method)
    return method_info(method), (gr.update(value=min(m.iterations, SETTINGS.max_iterations)) if m else gr.skip())


@user_errors
def check_scene(session, sphere_ior, sphere_radius, resolution):
    """Say which ways of pre-distorting still apply to a scene with this glass sphere, and what each needs first.

    Args:
        sphere_ior: index of refraction of the glass sphere.
        sphere_radius: radius of the glass sphere.
        resolution: texture side in pixels.
    Returns:
        for the current model and each method: whether it applies, or what it needs (Markdown).
    """
    return session.scene_report(sphere_ior, sphere_radius, resolution)


def status(session):
    """This session's model, the scene it is made for, and which renderer runs.

    Returns:
        the status line (Markdown).
    """
    return session.status()


def use_examples():
    return examples()[: SETTINGS.max_textures]


@user_errors
def predistort_world(session, setup, meshes, picture, resolution=512, fit="crop", tolerance_mm=0.0,
                     progress=gr.Progress()):
    """Pre-distort a picture for any optical object described by a setup file (a world in millimetres: the print,
    mirrors or glass objects, the camera), render it, and give the print at its true size.

    Args:
        setup: the setup file (JSON: units, print, objects, camera, optional target; see the README).
        meshes: the mesh files (OBJ, PLY or STL) the setup's objects name, if any; each under the name its setup gives.
        picture: the picture (PNG, JPEG, WebP, ...), fitted to the target's aspect.
        resolution: pixels on the print's long side (64 to 2048).
        fit: "crop" (the picture's centre, nothing squashed) or "resize" (the whole picture, squashed).
        tolerance_mm: 0, or one print for the camera anywhere within ± this many millimetres of its place (up to
            20; seven views, each measured once), with where you may stand in the summary.
    Returns:
        the render of the picture printed plain, the render of the pre-distorted print, the target (what the camera should see), the pre-distorted texture (PNG files), the print as a PDF at true size, the metrics, a summary (Markdown; with a tolerance, the predicted score where the camera may stand), the setup in 3D with the print on it (GLB).
    """
    from .images import to_pil
    from .printout import write_world_print
    from .worldsolve import load_picture, predistort_world as solve_world
    if not isinstance(resolution, (int, float)) or not 64 <= int(resolution) <= 2048:
        raise ValueError(f"resolution must be from 64 to 2048 pixels on the print's long side, got {resolution!r}")
    if fit not in ("crop", "resize"):
        raise ValueError(f'fit must be "crop" or "resize", got {fit!r}')
    tolerance_mm = 0.0 if tolerance_mm in (None, "") else tolerance_mm
    if not isinstance(tolerance_mm, (int, float)) or not 0 <= tolerance_mm <= 20:
        raise ValueError(f"tolerance_mm must be from 0 to 20 millimetres (0: the camera exactly at its place), "
                         f"got {tolerance_mm!r}")
    source = upload_path(picture)
    if source is None:
        raise ValueError("Upload the picture to pre-distort.")
    world, folder = _uploaded_world(session, setup, meshes)
    world = world.replace(resolution=int(resolution))

    def probing(fraction, message):
        progress(fraction, desc=f"Measuring the light transport (once per setup): {message}")
    r = solve_world(load_picture(source), world, fit=fit, spp=32, progress=probing, tolerance_mm=float(tolerance_mm))
    r.save(folder)
    pdf, _ = write_world_print(r.predistorted, world, folder)
    glb = world_glb(world, folder / "setup.glb", texture=to_pil(r.predistorted))
    m = r.metrics
    mirror = (f" In the mirror: error **{m['mirror_error']:.4f}** (printed plain: {m['mirror_error_plain']:.4f})."
              if "mirror_error" in m else "")
    summary = (f"**{m['world']}**, a {m['texture'][0]}×{m['texture'][1]} print: L1 over the target "
               f"{m['l1_initial']:.4f} → **{m['l1_final']:.4f}** (ratio {m['l1_ratio']:.3f}; over the objects "
               f"{m['silhouette']['l1_ratio']:.3f}).{mirror} Print the PDF at 100 %, stand each object on its "
               f"outline.")
    if tolerance_mm:
        from .worldtolerance import stand_table
        t = m["tolerance"]
        summary += (f"\n\nOne print for the camera anywhere within ±{tolerance_mm:g} mm. **Where you may stand** "
                    f"(the predicted {'error in the mirror' if 'mirror_error' in m else 'error ratio'}, lower is "
                    f"better; worst {t['worst_predicted']:.3f}):\n\n" + stand_table(t["offsets_mm"], t["map"]))
    return (pil(r.render_plain, "render-plain"), pil(r.render_final, "render-world"), pil(r.target, "target"),
            pil(r.predistorted, "predistorted-world"), str(pdf), m, summary, str(glb))


@user_errors
def world_setup(session, kind, diameter_mm, height_mm, paper, camera_height_mm, camera_distance_mm, fov_deg,
                meshes=None):
    """Describe a setup with a few numbers: an object standing on a paper, a camera above it; get its setup file
    and a 3D view of it.

    Args:
        kind: the object: "glass ball", "cylinder mirror", "cone mirror", "glass rod", "glass of water", "your own mesh (glass)" or "your own mesh (mirror)".
        diameter_mm: the object's diameter in millimetres (your own mesh: its own size is used).
        height_mm: its height in millimetres (a ball, your own mesh: ignored).
        paper: the print's paper, landscape: "A4", "A3", "Letter" or "Tabloid".
        camera_height_mm: the camera's lens above the print, in millimetres.
        camera_distance_mm: the lens's distance from the object's axis, along the print, in millimetres.
        fov_deg: the camera's field of view across its picture's width, in degrees.
        meshes: your own mesh (one OBJ, PLY or STL file in millimetres, z up), for the "your own mesh" kinds.
    Returns:
        the setup file (JSON, for /predistort_world and apply --scene), the setup in 3D (GLB), a description (Markdown).
    """
    import json
    from .scene import SceneConfig
    from .worldsolve import copy_meshes
    from .worldview import MESH_KINDS, maker_world
    numbers = [diameter_mm, height_mm, camera_height_mm, camera_distance_mm, fov_deg]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        raise ValueError("Give every size as a number of millimetres (and the field of view in degrees).")
    folder = session.folder / f"world-{next(_worlds)}"
    folder.mkdir(parents=True, exist_ok=True)
    mesh = None
    if kind in MESH_KINDS:
        files = copy_meshes(upload_paths(meshes), folder)
        if len(files) != 1:
            raise ValueError(f"For {kind}, upload one mesh file (OBJ, PLY or STL, in millimetres) under 'Its mesh "
                             f"files'; got {len(files)}.")
        mesh = files[0]
    data = maker_world(kind, float(diameter_mm), float(height_mm), paper, float(camera_height_mm),
                       float(camera_distance_mm), float(fov_deg), mesh_file=mesh)
    (folder / "setup.json").write_text(json.dumps(data, indent=2) + "\n")
    world = SceneConfig.load(folder / "setup.json")        # the scene's checks: one sentence naming the field
    glb = world_glb(world, folder / "setup.glb")
    return (str(folder / "setup.json"), str(glb),
            f"**{world.describe_objects()}** on {paper} paper; the camera {camera_height_mm:g} mm above the print, "
            f"{camera_distance_mm:g} mm from the object, {fov_deg:g}° across its picture.")


def world_mesh_uploaded(session, kind, diameter_mm, height_mm, paper, camera_height_mm, camera_distance_mm, fov_deg,
                        meshes=None):
    """The page's picker when mesh files are uploaded: a new setup for "your own mesh" kinds, nothing otherwise
    (a setup file uploaded with its meshes stays as it is)."""
    from .worldview import MESH_KINDS
    if kind not in MESH_KINDS or not meshes:
        return gr.skip(), gr.skip(), gr.skip()
    return world_setup(session, kind, diameter_mm, height_mm, paper, camera_height_mm, camera_distance_mm, fov_deg,
                       meshes)


_worlds = itertools.count(1)          # each world a visitor uploads gets a folder of its own in their session


def _uploaded_world(session, setup, meshes):
    """The world of an uploaded setup file and its meshes, in a fresh folder of the visitor's session."""
    from .worldsolve import world_from_uploads
    folder = session.folder / f"world-{next(_worlds)}"
    return world_from_uploads(upload_path(setup), upload_paths(meshes), folder), folder


@user_errors
def world_chart(session, setup, meshes=None):
    """The calibration chart of a setup with one mirror (a cylinder or a cone standing on the print) or one glass
    object (a rod, a glass of water, your own mesh): markers where the camera sees the print directly, a colour
    wheel where the object reflects or refracts it. Print it at 100 % in place of the picture, put the object on
    its outline, photograph it from where the camera goes.

    Args:
        setup: the setup file (JSON: units, print, objects, camera; see the README).
        meshes: the mesh files its objects name, if any.
    Returns:
        the chart as a PNG and as a PDF at the print's true size (the object's outline marked).
    """
    from .glassfit import write_glass_chart
    from .mirrorfit import write_mirror_chart
    from .physical import is_lone_ball
    world, folder = _uploaded_world(session, setup, meshes)
    if is_lone_ball(world):
        raise ValueError("For a glass ball before its print use the path's steps 3 and 4 (Use this setup, then the "
                         "chart): its chart and fit are the ball's own.")
    png, pdf = (write_mirror_chart if world.has_mirror else write_glass_chart)(world, folder / "chart")
    return str(png), str(pdf)


@user_errors
def world_calibrate(session, setup, meshes, photo, progress=gr.Progress()):
    """Fit where the camera and the object really are from one photo of the printed chart of /world_chart: the
    camera from the markers seen directly; a mirror's base and radius from its black cap's rim; a glass object's
    place and IOR by rendering the chart through it and comparing with the photo (about a minute or two).

    Args:
        setup: the setup file the chart was made for (JSON).
        meshes: the mesh files its objects name, if any.
        photo: the photo (JPEG, HEIC, PNG or WebP, as the phone stores it; all of the chart's markers it can see).
    Returns:
        the fitted setup file (JSON, the same schema: pre-distort for it with /predistort_world; a mesh's place is its `offset`) and the fit's report (Markdown).
    """
    from .glassfit import calibrate_glass
    from .mirrorfit import calibrate_mirror
    from .physical import is_lone_ball
    world, folder = _uploaded_world(session, setup, meshes)
    if is_lone_ball(world):
        raise ValueError("For a glass ball before its print use the path's steps 3 and 4: its fit is the ball's own.")
    source = upload_path(photo)
    if source is None:
        raise ValueError("Upload the photo of the chart.")
    if world.has_mirror:
        fit = calibrate_mirror(world, source)
    else:
        fit = calibrate_glass(world, source, progress=lambda fraction, message: progress(
            fraction, desc=f"Calibrating: {message}"))
    path = folder / "fitted-setup.json"
    fit.scene.save(path)
    return str(path), fit.to_markdown()


@user_errors
def world_check(session, setup, meshes, picture, printed, photo):
    """Close the loop for any object: from a photo of the printed pre-distortion, taken where the camera of the
    (fitted) setup stands, how close the view is to the picture, whether to calibrate again, and a corrected
    texture when the error left is systematic.

    Args:
        setup: the setup file the print was made for (JSON; after /world_calibrate, the fitted one).
        meshes: the mesh files its objects name, if any.
        picture: the picture that was pre-distorted.
        printed: the pre-distorted texture that was printed (the PNG /predistort_world gave).
        photo: the photo of the print with the object on it (JPEG, HEIC, PNG or WebP).
    Returns:
        the error map (PNG), the verdict (Markdown: ratio against printing the picture itself, calibrate again or not), the corrected texture (PNG) or nothing.
    """
    from .check import check as check_photo
    from .worldsolve import load_picture, load_printed
    world, _ = _uploaded_world(session, setup, meshes)
    sources = [upload_path(picture), upload_path(printed), upload_path(photo)]
    for source, what in zip(sources, ("the picture that was pre-distorted", "the pre-distorted texture that was "
                                      "printed", "the photo of the print")):
        if source is None:
            raise ValueError(f"Upload {what}.")
    result = check_photo(world, sources[2], load_picture(sources[0]), load_printed(sources[1], world))
    corrected = pil(result.corrected, "corrected-world") if result.corrected is not None else None
    return cached_png(Image.fromarray(result.map_image()), "world-check"), result.to_markdown(), corrected


@user_errors
def world_advise(session, setup, meshes=None, progress=gr.Progress()):
    """Advice for any object's setup: for a mirror, how high the camera should stand (its angle above the print);
    for glass, how far the print should be; predicted by the setup's measured light transport, no renders. Then
    where, in the advised setup, no print can help (the correctability map).

    Args:
        setup: the setup file (JSON: units, print, objects, camera).
        meshes: the mesh files its objects name, if any.
    Returns:
        the advised setup file (JSON, the same schema), the advice (Markdown), the correctability map (PNG: the error no print removes, over the camera's view).
    """
    import json
    from matplotlib import pyplot
    from .procedural import dataset
    from .worldadvise import advise_world
    from .worldtolerance import correctability
    world, folder = _uploaded_world(session, setup, meshes)

    def searched(done, planned, value, score):
        progress((done, planned), desc=f"Tried {value:g}: predicted {score:.4f}", unit="setups")
    advice = advise_world(world, progress=searched)
    path = folder / "advised-setup.json"
    path.write_text(json.dumps({"_comment": f"Advised by predistort.worldadvise: {advice.sentence()}",
                                **advice.scene.to_dict()}, indent=2) + "\n")
    error, sentence = correctability(advice.scene, dataset(4, 256, seed=4242))
    image = Image.fromarray((pyplot.get_cmap("magma")(error / max(0.2, float(error.max())))[..., :3] * 255)
                            .astype("uint8"))
    return str(path), f"{advice.sentence()}\n\nWhere it can work: {sentence}", cached_png(image, "world-map")
