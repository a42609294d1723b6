"""Command line: ``python -m predistort train | apply | push | advise | print | chart | calibrate | check``.

    train  --textures A.png B.png ... [--model tutorial|unrolled] --iterations N --out DIR
                                                                   learn a model, save it with its history
    apply  [--weights DIR|USER/NAME] --texture X.png --out-dir OUT  pre-distort a picture and compare renders
           [--method model|solve] [--refine SECONDS]               (bundled model, or instant solve; then refine)
           [--scene S.json]                                        (default: the scene the weights were made
                                                                    for; the bundled model on a scene it was not
                                                                    made for: the instant solve, said so)
           [--tolerance-mm T ...]                                  (one texture for the camera within ± T mm)
    push   --weights DIR --repo-id USER/NAME                       upload saved weights to the Hugging Face Hub
    advise [--scene S.json | --ior N --diameter-mm D ...] --out A.json  where to put the print (real units)
    print  --texture PREDISTORTED.png --scene S.json --out-dir DIR  the print at true size: PDF and PNG (≥ 300 dpi)
           | --picture PHOTO.jpg                                   (pre-distorted at the print's own resolution)
    chart  --scene S.json --out DIR                                the calibration chart: chart.png and chart.pdf
    calibrate --scene S.json --photo PHOTO --out FITTED.json       fit camera, ball, IOR, print distance from a
           [--report DIR] [--focal-mm F]                           photo of the chart (report.md, overlay.png)
    check  --scene FITTED.json --photo PHOTO2 --texture PICTURE    a photo of the printed pre-distortion: ratio,
           [--printed TEXTURE] [--out DIR]                         map, re-calibrate?, corrected texture

Every user error (unreadable image, wrong size, bad weights, unknown repo) prints one clear line and exits
with status 2; nothing is left half-written.
"""
import argparse
import signal
import sys
import threading

from . import backend, weights
from .images import ImageError
from .weights import WeightsError


def _scene(args, made_for=None):
    """The scene of ``--scene`` (else `made_for`: the scene of the weights in use, else the tutorial's), at
    ``--resolution`` when given."""
    from .scene import DEFAULT, SceneConfig
    scene = SceneConfig.load(args.scene) if args.scene else made_for or DEFAULT
    return scene.replace(resolution=args.resolution) if args.resolution else scene


def _textures(paths, resolution, fit):
    from .images import prepare_texture
    textures = []
    for path in paths:
        try:
            texture, notes = prepare_texture(path, resolution, fit=fit)
        except ImageError as e:
            hint = " (pass --fit crop or --fit resize to adapt it)" if fit == "exact" else ""
            raise ImageError(f"{path}: {e}{hint}") from None
        for note in notes:
            print(f"{path}: {note}", file=sys.stderr)
        textures.append(texture)
    return textures


def cmd_train(args):
    from tqdm import tqdm
    from .layers import PredistortModel
    from .methods import METHODS, TrainJob
    from .render import Renderer
    from .train import save_history

    backend.init()                       # fail fast (clear error) on a missing or too-old LLVM
    start = None
    if args.init:                        # train further: the method of the loaded model's type, on its scene
        start = PredistortModel.from_pretrained(args.init)
        if args.model and args.model != start.model_type:
            raise ValueError(f"--init {args.init} is a {start.model_type} model; leave out --model or give "
                             f"--model {start.model_type}.")
    scene = _scene(args, weights.scene_of(start) if start is not None else None)
    if start is not None:
        weights.check_compatible(start, scene)
    textures = _textures(args.textures, scene.resolution, args.fit)
    renderer = Renderer(scene)
    if start is not None:
        start.to(renderer.device)
    method = METHODS[start.model_type if start is not None else args.model or "tutorial"]
    iterations = (args.iterations or method.iterations) if method.iterative else 1
    lr = args.lr or method.lr

    # Ctrl-C ends training after the current iteration; what was learned is saved.
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: (stop.set(), print("\nStopping after this iteration...",
                                                                 file=sys.stderr)))
    bar = tqdm(total=iterations, desc=f"train {method.name}", unit="it")

    def progress(i, loss, elapsed):
        bar.set_postfix(loss=f"{loss:.4f}")
        bar.update(1)

    job = TrainJob(renderer, textures, iterations, args.spp, args.seed, lr, progress, stop, start=start)
    model, history = method.run(job)      # a new scene is probed first by the methods built on its transport
    bar.close()
    model.info = {"scene": scene.to_dict(),
                  "recipe": {"method": method.name, "iterations": iterations, "spp": args.spp, "lr": lr,
                             "seed": args.seed, "loss": "l1", "textures": [str(p) for p in args.textures],
                             "iterations_run": len(history), "init": args.init},
                  "metrics": {"final_train_loss": history[-1]["loss"] if history else None}}
    model.save_pretrained(args.out)
    save_history(history, args.out, title=f"{model.model_type} model, {len(textures)} texture(s)")
    print(f"Saved {model.model_type} weights, history.json and loss_curve.png to {args.out} "
          f"({len(history)} iterations, final loss {history[-1]['loss']:.4f}).")
    return 0


def cmd_apply(args):
    import time
    from .layers import PredistortModel, for_any_scene, for_scene, instant_model
    from .pipeline import predistort
    from .render import Renderer
    from .solve import transport_for

    if args.refine < 0:
        raise ValueError(f"--refine must be a number of seconds ≥ 0, got {args.refine}")
    tolerance = _tolerance(args)                       # bad values: one line before anything is probed
    backend.init()
    scene = _scene(args)
    if args.scene and not scene.is_ball_world:
        return _apply_world(args, scene, tolerance)
    model = None
    bundled = args.weights == weights.BUNDLED            # the default model adapts to any scene (see below)
    if args.method != "solve":
        model = PredistortModel.from_pretrained(args.weights, revision=args.revision)
        if not args.scene:                               # no --scene: the scene the weights were made for
            scene = _scene(args, weights.scene_of(model))
            if not bundled:
                print(f"Scene: the one {args.weights} was made for (its {weights.CONFIG_NAME}).", file=sys.stderr)
            if not scene.is_ball_world:
                return _apply_world(args, scene, tolerance)
        if not bundled:                                  # weights asked for by name: the same geometry only
            weights.check_compatible(model, scene.replace(resolution=model.resolution))
    (texture,) = _textures([args.texture], scene.resolution, args.fit)
    renderer = Renderer(scene)
    # The scene's light transport at this resolution (the instant solve; the generalising layer at another
    # resolution than its own): measured once, with a progress bar, then cached.
    start = time.perf_counter()
    progress, bar = _probe_bar()                       # a bar only if a probe really runs
    try:
        if not tolerance.exact:                        # every method: the robust solve on the box's views
            model = for_scene(model or instant_model(transport_for(scene, renderer=renderer, progress=progress)),
                              scene, renderer=renderer, progress=progress, tolerance=tolerance)
            print(model.info["note"], file=sys.stderr)
            how = "the robust solve over the setups within the tolerance"
        elif model is None:
            model = instant_model(transport_for(scene, renderer=renderer, progress=progress))
            how = "the instant solve on this scene's light transport"
        elif bundled:       # on a scene it was not made for: the instant solve (or the layer rebuilt), said so
            model, how = for_any_scene(model, scene, renderer=renderer, progress=progress)
        else:
            model = for_scene(model, scene, renderer=renderer, progress=progress)
            how = f"the {model.model_type} model of {args.weights}"
    finally:
        for b in bar:
            b.close()
    probe_seconds = time.perf_counter() - start if bar else 0.0
    model.to(renderer.device)

    def refine_progress(step, loss, elapsed):
        print(f"refine: step {step}, fixed-seed L1 {loss:.4f} after {elapsed:.1f} s", file=sys.stderr)

    result = predistort(renderer, texture, model, spp=args.spp, refine=args.refine,
                        progress=refine_progress if args.refine > 0 else None)
    result.metrics.update({"resolution": scene.resolution, "probe_seconds": round(probe_seconds, 3),
                           "texture": str(args.texture), "pre-distorted with": how})
    if scene.film_size != (scene.resolution, scene.resolution):
        result.metrics["film"] = list(scene.film_size)
    stand = _stand_map(scene, result, tolerance) if args.stand_map else None
    result.save(args.out_dir)
    if stand is not None:
        stand.image().save(f"{args.out_dir}/stand_map.png")
        print(stand.line())
    m = result.metrics
    print(f"Pre-distorted with {how}; scored against the {m['target']}.")
    print(f"{scene.resolution}×{scene.resolution}: L1 {m['l1_initial']:.4f} -> {m['l1_final']:.4f}, PSNR "
          f"{m['psnr_initial']:.2f} -> {m['psnr_final']:.2f} dB (probe {m['probe_seconds']:.1f} s, pre-distortion "
          f"{m['apply_seconds']:.2f} s); wrote predistorted.png, texture.png, render_initial.png, render_final.png, "
          f"comparison.png, metrics.json to {args.out_dir}")
    return 0


def _probe_bar():
    """A ``progress(fraction, message)`` that opens a tqdm bar on stderr at its first call (a probe that
    really runs), and the list of bars to close."""
    from .probe import tqdm_progress
    bar = []

    def progress(fraction, message):
        if not bar:
            bar.append(tqdm_progress(desc="probe", file=sys.stderr))
        bar[0](fraction, message)
    return progress, bar


def _apply_world(args, scene, tolerance):
    """``apply`` on a world other than the tutorial's ball: the instant solve over the pixels that show the
    target (:mod:`predistort.worldsolve`)."""
    from .worldsolve import load_picture, predistort_world
    if args.method != "solve" and args.weights != weights.BUNDLED:
        raise ValueError("Trained weights exist for the glass ball only: pre-distort this setup with --method solve.")
    if tolerance.ball_mm or tolerance.print_mm or tolerance.ior or args.refine:
        raise ValueError("On this setup only the camera's tolerance (--tolerance-mm) works; --ball-tolerance-mm, "
                         "--print-tolerance-mm, --ior-tolerance and --refine are the glass ball's: leave them out.")
    if args.fit == "exact":
        raise ValueError("--fit exact needs a square texture; for this setup use --fit crop (the centre) or resize.")
    progress, bar = _probe_bar()
    try:
        result = predistort_world(load_picture(args.texture), scene, fit=args.fit, spp=args.spp, progress=progress,
                                  tolerance_mm=tolerance.camera_mm)
    finally:
        for b in bar:
            b.close()
    result.metrics.update({"texture_file": str(args.texture), "pre-distorted with": "the instant solve"})
    result.save(args.out_dir)
    m = result.metrics
    w, h = m["texture"]
    mirror = (f"; the mirror's error {m['mirror_error']:.4f} (printed plain: {m['mirror_error_plain']:.4f})"
              if "mirror_error" in m else "")
    if "tolerance" in m:
        mirror += (f"; within ±{tolerance.camera_mm:g} mm of the camera's place the predicted score is at worst "
                   f"{m['tolerance']['worst_predicted']:.4f}")
    print(f"Pre-distorted for {m['world']}: a {w}×{h} print texture. L1 over the target {m['l1_initial']:.4f} -> "
          f"{m['l1_final']:.4f} (ratio {m['l1_ratio']:.3f}; over the objects {m['silhouette']['l1_ratio']:.3f})"
          f"{mirror}. Probe {m['probe_seconds']:.1f} s, solve {m['solve_seconds']:.2f} s. Wrote predistorted.png, "
          f"texture.png, target.png, render_initial.png, render_final.png, comparison.png, metrics.json to "
          f"{args.out_dir}; print it with: python -m predistort print --scene {args.scene} --texture "
          f"{args.out_dir}/predistorted.png --out-dir PRINT")
    return 0


def _tolerance(args):
    """The :class:`predistort.tolerance.Tolerance` of apply's / advise's flags (ValueError naming the flag)."""
    from .tolerance import Tolerance
    return Tolerance(camera_mm=args.tolerance_mm, ball_mm=getattr(args, "ball_tolerance_mm", 0.0),
                     print_mm=getattr(args, "print_tolerance_mm", 0.0), ior=getattr(args, "ior_tolerance", 0.0))


def _stand_map(scene, result, tolerance):
    """Where one may stand with `result`'s texture: the predicted ratio over camera offsets within the
    tolerance's box (or ±MAP_BOX_MM for the exact spot), into ``metrics['tolerance']``. None (and the
    reason in metrics.json) where the map cannot be made."""
    from .standmap import MAP_BOX_MM, stand_map
    box = tolerance.camera_mm or MAP_BOX_MM
    try:
        stand = stand_map(scene, result.predistorted[None], result.target[None], box_mm=box)
    except ValueError as e:                            # no map: the reason in metrics.json
        result.metrics["tolerance"] = {"asked": tolerance.to_dict(), "map": None, "why": str(e)}
        return None
    result.metrics["tolerance"] = {"asked": tolerance.to_dict(), **stand.summary()}
    return stand


def cmd_push(args):
    from .layers import PredistortModel
    url = weights.push(args.weights, args.repo_id, token=args.token, private=args.private,
                       model_class=PredistortModel)
    print(f"Pushed {args.weights} to {args.repo_id}: {url}")
    return 0


def _setup(args):
    """The physical setup of `args` (advise, print): the scene file's, then the millimetres given."""
    from .physical import MATERIALS, PhysicalSetup, fov_from_lens
    from .scene import DEFAULT, SceneConfig
    setup = PhysicalSetup.from_scene(SceneConfig.load(args.scene) if args.scene else DEFAULT)
    changes = {k: v for k, v in {"ball_diameter_mm": getattr(args, "diameter_mm", None),
                                 "print_distance_mm": getattr(args, "print_distance_mm", None),
                                 "camera_distance_mm": getattr(args, "camera_distance_mm", None),
                                 "fov_deg": getattr(args, "fov_deg", None),
                                 "resolution": getattr(args, "resolution", None)}.items() if v is not None}
    if getattr(args, "material", None):
        changes["ior"] = MATERIALS[next(m for m in MATERIALS if m.startswith(args.material.replace("-", " ")))]
    if getattr(args, "ior", None) is not None:
        changes["ior"] = args.ior
    if getattr(args, "focal_mm", None) is not None:
        changes["fov_deg"] = fov_from_lens(args.focal_mm, args.sensor_side_mm)
    return setup.replace(**changes)


def _advise_world(args, scene):
    """``advise`` for a world: the camera's elevation (a mirror) or the print's distance (glass), predicted."""
    import json
    from pathlib import Path
    from .worldadvise import advise_world
    backend.init()
    advice = advise_world(scene, progress=lambda i, n, value, score: print(
        f"  {i}/{n}: {value:g} -> predicted {score:.4f}", file=sys.stderr))
    data = {"_comment": f"Advised by predistort.worldadvise: {advice.sentence()}", **advice.scene.to_dict()}
    Path(args.out).write_text(json.dumps(data, indent=2) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(advice.to_dict(), indent=2) + "\n")
    if args.map:                                         # where no print can help, in the advised world
        from matplotlib import pyplot
        from .procedural import dataset
        from .worldtolerance import correctability
        error, sentence = correctability(advice.scene, dataset(4, 256, seed=4242))
        pyplot.imsave(args.map, error, cmap="magma", vmin=0, vmax=max(0.2, float(error.max())))
        print(f"Correctability map: {args.map}. {sentence}")
    print(f"{advice.sentence()} Wrote {args.out} ({advice.seconds:.0f} s). Pre-distort for it with: python -m "
          f"predistort apply --method solve --scene {args.out} --texture PICTURE --fit crop --out-dir OUT")
    return 0


def cmd_advise(args):
    if args.scene:
        from .scene import SceneConfig
        scene = SceneConfig.load(args.scene)
        if not scene.is_ball_world:
            return _advise_world(args, scene)
    import json
    from .advise import advise
    from .correctability import correctability
    from .solve import transport_for

    _tolerance(args)                                   # bad values: one line before anything is probed
    if args.paper:
        from .paper import paper_size
        paper_size(args.paper)
    backend.init()
    setup = _setup(args)
    print(f"Searching the print's distance for a {setup.ball_diameter_mm:g} mm ball of IOR {setup.ior:g} "
          f"(camera {setup.camera_distance_mm:g} mm from its centre) ...", file=sys.stderr)
    progress = lambda i, n, d, r: print(f"  {i}/{n}: print at {d:g} mm -> predicted ratio {r:.3f}",  # noqa: E731
                                        file=sys.stderr)
    if args.paper:                                     # one sheet's print, and what tiles would gain
        from .advise import advise_on_paper
        advice, _ = advise_on_paper(setup, args.paper, grid_points=args.grid, progress=progress,
                                        placement=_tolerance(args))
    else:
        advice = advise(setup, max_print_mm=args.max_print_mm, grid_points=args.grid,
                        placement=_tolerance(args), progress=progress)
    advice.save_scene(args.out)
    written = [args.out]
    if args.plot:
        advice.plot().save(args.plot)
        written.append(args.plot)
    if args.map:    # the correctability map of the setup as it is, with the advice in its sentence
        image, sentence = correctability(transport_for(setup.to_scene()), advice=advice)
        image.save(args.map)
        written.append(args.map)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(advice.to_dict(), f, indent=1)
        written.append(args.json)
    print(advice.markdown().replace("**", ""))
    if args.map:
        print(f"\nWhere the print is now: {sentence}")
    print(f"\nWrote {', '.join(map(str, written))}. Pre-distort for it with: python -m predistort apply "
          f"--method solve --scene {args.out} --texture PICTURE --fit crop --out-dir OUT")
    return 0


def _print_world(args, scene):
    """``print`` for a world: its texture (or a picture pre-distorted at 300 dpi) at the print's true size."""
    import numpy as np
    from .images import load_image
    from .printout import MIN_DPI, texture_resolution_for, write_world_print
    if args.picture:
        from .worldsolve import load_picture, predistort_world
        backend.init()
        side = texture_resolution_for(max(scene.plane.size) * scene.units_mm, MIN_DPI)
        progress, bar = _probe_bar()
        try:
            texture = predistort_world(load_picture(args.picture, longest=side), scene.replace(resolution=side),
                                       progress=progress).predistorted.numpy()
        finally:
            for b in bar:
                b.close()
    else:
        texture = np.asarray(load_image(args.texture), dtype=np.float32) / 255.0
    if args.paper:
        from .paper import paper_size
        paper_size(args.paper)                           # a bad name: one line before anything is made
    pdf, png = write_world_print(texture, scene, args.out_dir, paper=args.paper)
    w, h = (s * scene.units_mm for s in scene.plane.size)
    print(f"Wrote {pdf} and {png}: a {w:.0f} × {h:.0f} mm print with each object's outline"
          + (f", on {_paper_words(args.paper, (w, h))}" if args.paper else "") + ". Print at 100 %.")
    return 0


def _paper_words(paper, print_mm):
    from .paper import layout
    plan = layout(print_mm, paper)
    if plan.rows * plan.cols == 1:
        return f"one {paper} sheet"
    return f"{plan.rows} × {plan.cols} {paper} tiles and an assembly sheet ({plan.pages} pages)"


def cmd_print(args):
    import numpy as np
    from .images import load_image
    from .printout import MIN_DPI, predistort_for_print, print_image, write_print

    if args.scene:
        from .scene import SceneConfig
        scene = SceneConfig.load(args.scene)
        if not scene.is_ball_world:
            return _print_world(args, scene)
    setup = _setup(args)
    if args.picture:      # pre-distort at the print's own resolution, on the camera's film
        backend.init()
        progress, bar = _probe_bar()
        try:
            texture, scene = predistort_for_print(args.picture, setup, progress=progress)
        finally:
            for b in bar:
                b.close()
        width, height = scene.film_size
        print(f"Pre-distorted {args.picture} at {scene.resolution}×{scene.resolution} (the print's resolution) "
              f"for a {width}×{height} camera picture (the instant solve).")
        texture = texture.numpy()
    else:
        texture = np.asarray(load_image(args.texture), dtype=np.float32) / 255.0
        if texture.shape[0] != texture.shape[1]:
            raise ValueError(f"{args.texture}: a pre-distorted texture is square, this one is "
                             f"{texture.shape[1]}×{texture.shape[0]}")
    texel_dpi = texture.shape[0] / (setup.print_size_mm / 25.4)
    if args.paper:
        from .paper import paper_size
        paper_size(args.paper)
    pdf, png = write_print(texture, setup, args.out_dir, paper=args.paper)
    if args.paper:
        print(f"On {_paper_words(args.paper, (setup.print_size_mm,) * 2)}.")
    dpi = print_image(texture, setup)[1]
    print(f"Wrote {pdf} and {png}: a {setup.print_size_mm:.1f} mm square print at {dpi:.0f} dpi "
          f"({texture.shape[0]} px texture: {texel_dpi:.0f} dpi of its own"
          + (f"; upsampled to at least {MIN_DPI}: pass --picture for detail at the print's resolution)"
             if texel_dpi < MIN_DPI else ")") + ". Print at 100 %.")
    width, height = setup.film_size                  # the camera's picture stays; the print has the texture's pixels
    printed = setup.replace(resolution=int(texture.shape[0]), film_width=int(width), film_height=int(height))
    print(printed.describe().replace("**", ""))
    return 0


def cmd_chart(args):
    from .chart import write_chart
    from .physical import ball_frame, is_lone_ball
    from .scene import SceneConfig
    world = SceneConfig.load(args.scene)
    if world.has_mirror:                                 # a mirror on its print: markers around it
        from .mirrorfit import write_mirror_chart
        png, pdf = write_mirror_chart(world, args.out)
        print(f"Wrote {png} and {pdf}: print chart.pdf at 100 %, stand the mirror on its circle, photograph it "
              f"from where the camera goes, and run python -m predistort calibrate.")
        return 0
    if not is_lone_ball(world):                          # any other glass object: markers around it
        from .glassfit import write_glass_chart
        png, pdf = write_glass_chart(world, args.out)
        print(f"Wrote {png} and {pdf}: print chart.pdf at 100 %, put the object on its outline, photograph it "
              f"from where the camera goes, and run python -m predistort calibrate.")
        return 0
    from .chart import framing_note
    png, pdf = write_chart(ball_frame(world), args.out)
    print(f"Wrote {png} and {pdf}: print chart.pdf at 100 % in place of the picture, then photograph it through "
          f"the ball from where you will look at the print and run python -m predistort calibrate.")
    note = framing_note(ball_frame(world))
    if note:
        print(note)
    return 0


def cmd_calibrate(args):
    from .calibrate import calibrate
    from .fitreport import write_report
    from .physical import ball_frame, from_ball_frame, is_lone_ball
    from .scene import SceneConfig
    world = SceneConfig.load(args.scene)                 # a world is fitted in the ball's frame, written in its own
    if world.has_mirror or not is_lone_ball(world):
        if world.has_mirror:
            from .mirrorfit import calibrate_mirror
            fit = calibrate_mirror(world, args.photo, focal_mm=args.focal_mm)
        else:
            from .glassfit import calibrate_glass
            fit = calibrate_glass(world, args.photo, focal_mm=args.focal_mm, progress=lambda fraction, message:
                                  print(f"  {fraction:4.0%} {message}", file=sys.stderr))
        from .glassfit import save_with_meshes
        for warning in fit.warnings:                     # as for the ball: first, and exit 3 (below)
            print(f"Warning: {warning}", file=sys.stderr)
        save_with_meshes(fit.scene, args.out)
        print(fit.to_markdown())
        if fit.warnings:
            print(f"Wrote {args.out}, but check it before printing for it (the warning above says what).")
            return 3
        print(f"Wrote {args.out}. Pre-distort for it with: python -m predistort apply --method solve --scene "
              f"{args.out} --texture PICTURE --fit crop --out-dir OUT")
        return 0
    result = calibrate(ball_frame(world), args.photo, focal_mm=args.focal_mm,
                       progress=lambda fraction, message: print(f"  {fraction:4.0%} {message}", file=sys.stderr))
    # A fit that did not explain the photo: its warning comes first (stdout's first line, the report's), the
    # setup is still written (to look at, and for the report's overlay), and the command says again, last,
    # not to print for it, and exits 3.
    for warning in result.warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    from_ball_frame(world, result.scene).save(args.out)
    written = [args.out]
    if args.report:
        written += [str(p) for p in write_report(result, args.report)]
    print(result.to_markdown())
    if result.warnings:
        print(f"Wrote {', '.join(map(str, written))}, but this setup does not explain the photo: do not print "
              f"for it (the warning above says what to check).")
        return 3
    print(f"Wrote {', '.join(map(str, written))}. Pre-distort for it with: python -m predistort apply --method "
          f"solve --scene {args.out} --texture PICTURE --out-dir OUT")
    return 0


def cmd_check(args):
    import json
    from pathlib import Path
    from .check import check
    from .images import prepare_texture, save_png
    from .scene import SceneConfig
    world = SceneConfig.load(args.scene)
    backend.init()
    if world.is_ball_world:
        scene = world
        picture, _ = prepare_texture(args.texture, scene.resolution, fit="crop")
        printed = prepare_texture(args.printed, scene.resolution, fit="exact")[0] if args.printed else None
    else:                                   # any other world: the picture fitted to its target, a rectangular print
        from .worldsolve import load_picture, load_printed
        scene, picture = world, load_picture(args.texture)
        printed = load_printed(args.printed, world) if args.printed else None
    result = check(scene, args.photo, picture, printed)
    print(result.to_markdown())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        from PIL import Image
        Image.fromarray(result.map_image()).save(out / "error_map.png")
        (out / "check.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
        written = ["error_map.png", "check.json"]
        if result.corrected is not None:
            save_png(result.corrected, out / "corrected.png")
            written.append("corrected.png")
        print(f"Wrote {', '.join(written)} to {out}.")
    return 0


def parser():
    from .methods import METHODS
    p = argparse.ArgumentParser(prog="python -m predistort", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def scene_args(s, fit="exact"):
        s.add_argument("--scene", help="scene JSON (default: the scene the weights of --weights or --init were "
                                       "made for, as their config.json records it; else scenes/tutorial.json, the "
                                       "tutorial's scene)")
        s.add_argument("--resolution", type=int,
                       help="texture side in pixels, 8 to 4096 (the film: the scene's, which must state one above "
                            "1024; default: the model's, or the scene's: 128)")
        s.add_argument("--fit", choices=["exact", "crop", "resize"], default=fit,
                       help=f"pictures of another size: refuse (exact), centre-crop then resize (crop), or resize "
                            f"(default: {fit})")

    def tolerance_args(s, ranks):
        s.add_argument("--tolerance-mm", type=float, default=0.0, metavar="T",
                       help=("rank distances by the predicted ratio of a texture made for the camera anywhere "
                             "within ± T mm (x, y, z)" if ranks else
                             "one texture for the camera anywhere within ± T mm of its place in x, y and z (the "
                             "robust solve on views around it; 0: the exact spot)"))

    t = sub.add_parser("train", help="train a pre-distortion model through the differentiable renderer")
    t.add_argument("--textures", nargs="+", required=True, help="training pictures (targets)")
    t.add_argument("--iterations", type=int, help="training iterations (default: the method's: " +
                   ", ".join(f"{m.name} {m.iterations}" for m in METHODS.values() if m.iterative) + ")")
    t.add_argument("--out", required=True, help="folder for the weights, history.json and loss_curve.png")
    t.add_argument("--model", choices=list(METHODS),
                   help="; ".join(f"{m.name}: {m.label}" for m in METHODS.values()) +
                        " (default: tutorial, or the type of --init)")
    t.add_argument("--init", help="start from these weights (folder or Hub repo id) instead of random ones")
    t.add_argument("--spp", type=int, default=4, help="samples per pixel of training renders")
    t.add_argument("--lr", type=float, help="Adam learning rate (default: the method's: " +
                   ", ".join(f"{m.name} {m.lr:g}" for m in METHODS.values() if m.iterative) + ")")
    t.add_argument("--seed", type=int, default=0, help="torch seed for the initial weights")
    scene_args(t)
    t.set_defaults(run=cmd_train)

    a = sub.add_parser("apply", help="pre-distort a picture and render it before/after")
    a.add_argument("--weights", default=weights.BUNDLED, help="folder or Hub repo id (default: bundled weights)")
    a.add_argument("--revision", help="Hub branch, tag or commit")
    a.add_argument("--texture", required=True)
    a.add_argument("--out-dir", required=True)
    a.add_argument("--spp", type=int, default=256, help="samples per pixel of the before/after renders")
    a.add_argument("--method", choices=["model", "solve"], default="model",
                   help="model: the weights of --weights (default: the bundled generalising layer); solve: the "
                        "instant solve with the scene's measured light transport (probed once per scene, cached)")
    a.add_argument("--refine", type=float, default=0.0, metavar="SECONDS",
                   help="then refine the result through the renderer for up to SECONDS (it is kept only where "
                        "a fixed-seed render improves by at least 1%%)")
    tolerance_args(a, ranks=False)
    a.add_argument("--ball-tolerance-mm", type=float, default=0.0, help="and the ball within ± this sideways")
    a.add_argument("--print-tolerance-mm", type=float, default=0.0, help="and the print's distance within ± this")
    a.add_argument("--ior-tolerance", type=float, default=0.0, help="and the ball's IOR within ± this")
    a.add_argument("--no-stand-map", dest="stand_map", action="store_false",
                   help="skip where one may stand (the predicted ratio over camera offsets around the place: "
                        "ten more probes the first time per scene; default: in metrics.json, stand_map.png and "
                        "one line)")
    scene_args(a, fit="crop")
    a.set_defaults(run=cmd_apply)

    u = sub.add_parser("push", help="upload saved weights to the Hugging Face Hub")
    u.add_argument("--weights", required=True, help="folder written by train")
    u.add_argument("--repo-id", required=True, help="USER/NAME")
    u.add_argument("--token", help="Hub token (default: HF_TOKEN or `hf auth login`)")
    u.add_argument("--private", action="store_true")
    u.set_defaults(run=cmd_push)

    from .advise import GRID_POINTS
    from .physical import MATERIALS
    materials = [m.split(" (")[0].replace(" ", "-") for m in MATERIALS]

    def setup_args(s):
        s.add_argument("--scene", help="start from this scene JSON (default: the tutorial's; a 90 mm ball)")
        s.add_argument("--material", choices=materials, help="the ball's material (sets its IOR)")
        s.add_argument("--ior", type=float, help="the ball's index of refraction (1.0-3.0; overrides --material)")
        s.add_argument("--diameter-mm", type=float, help="the ball's diameter")
        s.add_argument("--print-distance-mm", type=float, help="from the ball's centre to the print (now)")
        s.add_argument("--camera-distance-mm", type=float, help="from the ball's centre to the camera's lens")
        s.add_argument("--fov-deg", type=float, help="the camera's field of view across the square picture")
        s.add_argument("--focal-mm", type=float, help="or the lens's focal length (with --sensor-side-mm)")
        s.add_argument("--sensor-side-mm", type=float, default=24.0,
                       help="the sensor's short side (default 24: a 35 mm-equivalent focal length)")

    v = sub.add_parser("advise", help="where to put the print for a ball and camera (predicted, no renders)")
    setup_args(v)
    v.add_argument("--resolution", type=int, help="texture/film side in pixels (default: the scene's, 128)")
    v.add_argument("--max-print-mm", type=float, help="only distances whose print is at most this wide")
    v.add_argument("--paper", help="a4, letter, a3, legal, tabloid or WxH mm: the best print that fits one sheet, "
                                   "and what tiles would gain")
    v.add_argument("--grid", type=int, default=GRID_POINTS,
                   help=f"distances on the search's coarse grid (default {GRID_POINTS}; fewer: faster, coarser)")
    v.add_argument("--out", required=True, help="the advised scene JSON (for apply --scene and the app)")
    v.add_argument("--plot", help="PNG: predicted error ratio against the print's distance")
    v.add_argument("--map", help="PNG: correctability map where the print is now (probes that scene: seconds)")
    v.add_argument("--json", help="the search's numbers as JSON")
    tolerance_args(v, ranks=True)
    v.set_defaults(run=cmd_advise)

    r = sub.add_parser("print", help="a pre-distorted texture as a PDF and PNG at the print's true size")
    setup_args(r)
    what = r.add_mutually_exclusive_group(required=True)
    what.add_argument("--texture", help="the pre-distorted texture (apply's predistorted.png), printed as it is")
    what.add_argument("--picture", help="a picture to pre-distort at the print's resolution (300 dpi, up to "
                                        "4096 px) for the camera's own picture size, then print")
    r.add_argument("--out-dir", required=True, help="folder for print.pdf and print.png")
    r.add_argument("--paper", help="the PDF on this paper: a4, letter, a3, legal, tabloid or WxH (mm); a print "
                                   "larger than the sheet becomes tiles with overlap, marks, labels and an assembly "
                                   "sheet; every page carries a 100 mm ruler (default: one page of the print's size)")
    r.set_defaults(run=cmd_print)

    c = sub.add_parser("chart", help="the calibration chart for a scene: chart.png and chart.pdf at true size")
    c.add_argument("--scene", required=True, help="the scene JSON (as measured: ball, distances, camera)")
    c.add_argument("--out", required=True, help="folder for chart.png and chart.pdf")
    c.set_defaults(run=cmd_chart)

    k = sub.add_parser("calibrate", help="fit the camera, the ball and its IOR from one photo of the chart")
    k.add_argument("--scene", required=True, help="the scene JSON the chart was made for")
    k.add_argument("--photo", required=True, help="photo of the chart through the ball (JPEG or PNG)")
    k.add_argument("--out", required=True, help="the fitted scene JSON (for apply --scene)")
    k.add_argument("--report", help="folder for report.md, overlay.png and report.json")
    k.add_argument("--focal-mm", type=float, help="the lens's 35 mm-equivalent focal length (default: EXIF, "
                                                 "else fitted)")
    k.set_defaults(run=cmd_calibrate)

    h = sub.add_parser("check", help="a photo of the printed pre-distortion: how close, re-calibrate?, corrected")
    h.add_argument("--scene", required=True, help="the fitted setup JSON (calibrate --out): a glass ball or any world")
    h.add_argument("--photo", required=True, help="photo of the printed pre-distortion through the object")
    h.add_argument("--texture", required=True, help="the picture that was pre-distorted")
    h.add_argument("--printed", help="the pre-distorted texture that was printed (default: the instant solve)")
    h.add_argument("--out", help="folder for error_map.png, check.json and corrected.png")
    h.set_defaults(run=cmd_check)
    return p


def main(argv=None):
    from .backend import BackendError
    args = parser().parse_args(argv)
    for name in ("iterations", "spp"):
        if getattr(args, name, 1) is not None and getattr(args, name, 1) < 1:
            parser().error(f"--{name} must be at least 1")
    if getattr(args, "lr", None) is not None and not args.lr > 0:
        parser().error("--lr must be positive")
    try:
        return args.run(args)
    except (ImageError, WeightsError, BackendError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
