"""predistort: pre-distort a picture so that, seen through an optical object (glass or mirror), it looks right.

Modules, one job each (imports go one way: an arrow of this list never points back up):
    version     the package's version
    backend     choose the Mitsuba variant, refuse an LLVM that would crash, the render lock, torch threads
    objects     the optical objects of a world: sphere, cylinder, cone, mesh; mirror or glass; safe mesh files
    worldview   a world in 3D (GLB) for the page, and a world from a maker's few numbers (object, paper, camera)
    scenecheck  the scene's checks: what keeps a world from rendering as intended, each sentence naming the field
    scene       the one scene type, a world in millimetres (print, objects, camera, target), and its Mitsuba dict
    render      the differentiable renderer: texture -> image through dr.wrap(source='torch', target='drjit')
    images      load any uploaded picture as a texture; save, compare, measure (L1, PSNR)
    encoding    how a photo's pixels were encoded: the sRGB curve, and its JPEG's tables to repeat what it did
    procedural  generated training pictures, never a photograph
    weights     save / load / push: safetensors + config.json, local folder or Hugging Face Hub repo
    physical    a real setup in millimetres (ball, material, distances, field of view) <-> the scene config
    target      what a camera should see: the print as that camera sees it with the ball removed
    probe       measure a scene's light transport render(T) = A·T + b once, by tracing the camera's rays
    probe_cache keep measured transports per scene, in memory and on disk, within byte budgets
    solve       solve a picture on a measured transport: the instant pre-distortion, no rendering
    worldaim    what a world's solve aims at (target, pixels, start), the instant solve, the predicted score
    worldtolerance  any world's camera tolerance, where one may stand, where no print can help
    worldsolve  pre-distort for any world: its target, the solve over the pixels that show it, renders and scores
    worldadvise where to stand or put the print for any world: one quantity searched on predicted errors
    paper       a print on home paper: one sheet when it fits, else tiles with overlap, marks, labels, a ruler
    tolerance   one texture for a range of setups: views around the nominal, their stacked solve, the ratio map
    standmap    where you may stand: the predicted ratio of a pre-distortion over camera offsets around its place
    advise      where to put the print: the distance with the lowest error the transport predicts
    correctability  where no texture can help: per-pixel error map and one sentence on what to change
    printout    the pre-distorted texture as a PDF and a PNG at the print's true size
    trace       where each camera ray lands on the print, through the ball or past it: analytic, differentiable
    chart       the calibration chart: ArUco markers beside the ball, a smooth colour field behind it
    printview   the print seen beside the ball aligned to the chart (ECC): the markers' corners to a few hundredths of a pixel
    photofit    the photo's model and its fit: predicted colours and corners, Levenberg–Marquardt along the valley
    fitreport   the calibration's answer: its table, warnings first, report files and overlay
    lens        the photo's residual radial lens distortion (k1): found where the print aligns as one homography
    calibrate   fit the camera, the ball's centre and IOR, the print's distance from one photo of the chart
    renderfit   fit an object's place (and glass's IOR) by rendering the chart through it and comparing with the photo
    mirrorrefine  a mirror's fine fit: the camera from the markers' edges, a cylinder from its cap's rim (0.1 px)
    mirrorfit   calibrate a mirror on its print from one photo: the camera from markers, the mirror from its outline
    glassfit    calibrate any other glass object from one photo: the camera from markers, its place and IOR by render and compare
    check       from a photo of the printed pre-distortion: how close, whether to re-calibrate, a correction
    layers      the model types: the tutorial's layer, the generalising (unrolled) layer, the instant solve
    hub         what a web visitor may do on the Hub: load with their own token or none, bounded; push to their own
    train       the training loop (the tutorial's recipe, for any model)
    refine      optimise one picture's texels through the renderer within a time budget
    pipeline    apply a model -> refine -> render before and after, with metrics
    report      how results read: Markdown, figures, progress HTML, durations
    settings    the app's limits, from PREDISTORT_* environment variables
    methods     the ways to get a model, in one table: defaults, how each is made, cost estimates
    resources   what the app's sessions share: renderers, pretrained models, training slots, warm-up
    glass       the Real object tab's side of a session: setup, advice, placement, stand map, print, calibration
    trainer     a session's training in a thread of its own: options, a server slot, progress, the model adopted
    keep        what a session keeps between requests: results on disk, the server's budget over idle sessions
    service     one visitor's session of the web app (model, scene, results, training), without Gradio
    webio       what crosses the page's boundary: uploads, output files, visitors' errors, sessions' lifetimes
    api         the web app's endpoints: one handler per API name, each one call into the visitor's session
    appserver   start app.py on a free port, for tests and benchmarks
    cli         python -m predistort train | apply | push | advise | print | chart | calibrate | check
"""
from .version import __version__  # noqa: F401


def load_model(name_or_path="default", **hub_kwargs):
    """Load any predistort model from a local folder, "default" or a Hub repo id (see predistort.weights)."""
    from .layers import PredistortModel
    return PredistortModel.from_pretrained(name_or_path, **hub_kwargs)
