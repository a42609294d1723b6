"""Pre-distortion at 128² to 1024²: today's path against the new one, in one run — probe, apply, memory, quality.

    python bench/scale.py                          # 128, 256, 512, 1024; 4 unseen photos; spp 64 (~25 min, 2 cores)
    python bench/scale.py --resolutions 512 1024   # a subset
    python bench/scale.py --quick                  # CI size: 32 and 64, 2 photos, spp 16 (about a minute)

For every resolution R, two fresh Python processes (so that each one's peak memory is its own) run a path
from nothing — no probe cache — on the same unseen photographs (:func:`datasets.unseen_photos`, resized to
R×R):

- **old**: today's path, the code of ``bench/scale_baseline.py`` (predistort/solve.py before issue 13,
  frozen): its probe, then its instant solve (100 FISTA iterations on int64 CSR tensors) per photo;
- **new**: :func:`predistort.probe.probe`, then per photo the instant solve (:func:`predistort.solve.solve`,
  its default schedule at R) and the generalising layer: the bundled weights' per-layer scalars on this
  transport (:func:`predistort.layers.for_resolution`).

Each child reports the probe's seconds, the seconds per photo of each apply (median over the photos; the
transport in memory, as the app and the CLI have it once a resolution was probed; the new path's also on
two solver threads, ``PREDISTORT_SOLVE_THREADS=2``) and its peak RSS. Then
this process renders every pre-distorted texture and every plain photo at R with Mitsuba, spp ``--spp``, one
seed for all (renders of more than 2^24 samples are made in equal passes of distinct seeds and averaged, so
that the scoring fits in memory), and scores each against its photo: the quality is the mean per-photo
ratio L1(render of the pre-distortion) / L1(render of the plain photo) (< 1: it helps). The table gives the
new path's figures with their ratio to the old path's measured in the same run; the machine may be shared,
so absolute seconds vary between runs — the ratios much less. Written to ``bench/results/scale.md``/``.json``.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common
from common import RESULTS, Timer, markdown_table, run_child, write_result
from datasets import PHOTOS, unseen_photos

import torch

FULL_RESOLUTIONS = (128, 256, 512, 1024)
QUICK_RESOLUTIONS = (32, 64)
MAX_SAMPLES_PER_RENDER = 1 << 24      # a scoring render above this many samples is split into passes
EVAL_SEED = 1_000_003                 # the seed of every scoring render (far from any training seed)


# -- children: one path, from scratch ------------------------------------------------------------------------
def child(path, resolution, photos, textures_out, result):
    """Run one path (``old`` or ``new``) at `resolution` on the first `photos` unseen photographs; write the
    pre-distorted textures to `textures_out` and the timings (with peak memory) to `result`."""
    from predistort import backend
    from predistort.scene import DEFAULT
    backend.init()
    config = DEFAULT.replace(resolution=resolution)
    images = unseen_photos(resolution, PHOTOS[:photos])
    outputs, info = {}, {}
    if path == "old":
        import scale_baseline as old
        with Timer() as probe_time:
            transport = old.probe(config)
        outputs["instant solve"], seconds = _apply(lambda image: old.solve(image, transport), images)
        info["apply_seconds"] = {"instant solve": seconds}
        info["schedule"] = {"instant solve": f"{old.ITERATIONS} iterations ({old.L2_ITERATIONS} squared error)"}
    else:
        import predistort
        from predistort import layers, probe, solve
        stages = []
        with Timer() as probe_time:
            transport = probe.probe(config, progress=lambda fraction, message: stages.append(
                (round(fraction, 3), message.split(" (")[0], round(time.perf_counter(), 3))))
        info["probe_stages"] = _stage_seconds(stages, probe_time)
        bundled = predistort.load_model("default")
        with Timer() as build:
            layer = layers.for_resolution(bundled, transport)
        outputs["instant solve"], instant = _apply(lambda image: solve.solve(image, transport), images)
        outputs["generalising layer"], layer_seconds = _apply(layer, images)
        info["apply_seconds"] = {"instant solve": instant, "generalising layer": layer_seconds}
        # The same applies again on two solver threads (PREDISTORT_SOLVE_THREADS=2): faster only when the
        # machine is otherwise idle, so it is measured beside the default, not instead of it.
        threads = os.environ.get("PREDISTORT_SOLVE_THREADS")
        os.environ["PREDISTORT_SOLVE_THREADS"] = "2"
        info["apply_seconds_2_threads"] = {
            "instant solve": _apply(lambda image: solve.solve(image, transport), images)[1],
            "generalising layer": _apply(layer, images)[1]}
        if threads is None:
            del os.environ["PREDISTORT_SOLVE_THREADS"]
        else:
            os.environ["PREDISTORT_SOLVE_THREADS"] = threads
        iterations, l2 = solve.iterations_for(resolution)
        info["schedule"] = {"instant solve": f"{iterations} iterations ({l2} squared error)",
                            "generalising layer": f"{layer.depth} layers, the bundled {bundled.resolution}² "
                                                  f"model's scalars, built in {build.seconds:.3f} s"}
        info["solve_threads"] = backend.solve_threads()
    info["probe_seconds"] = probe_time.seconds
    info["nnz_per_pixel"] = transport.nnz / resolution ** 2
    info["probe_info"] = transport.info
    torch.save(outputs, textures_out)
    write_result(result, {"path": path, "resolution": resolution, **info})


def _apply(method, images):
    """``(outputs, median seconds per image)`` of `method` on every image, without gradients."""
    outputs, seconds = [], []
    with torch.no_grad():
        for image in images:
            start = time.perf_counter()
            outputs.append(method(image).clamp(0, 1).float().cpu())
            seconds.append(time.perf_counter() - start)
    return outputs, statistics.median(seconds)


def _stage_seconds(stages, timer):
    """Seconds per probe stage from the progress callback's ``(fraction, stage, time)`` reports."""
    out, starts = {}, {}
    for _, stage, at in stages:
        starts.setdefault(stage, at)
    names = list(starts)
    ends = [starts[n] for n in names[1:]] + [timer.start + timer.seconds]
    for name, end in zip(names, ends):
        out[name] = round(end - starts[name], 2)
    return out


# -- parent: run both paths per resolution, score, report ----------------------------------------------------
def render_averaged(renderer, texture, spp, seed):
    """A render at `spp`, in passes of at most :data:`MAX_SAMPLES_PER_RENDER` samples (seeds seed, seed+1, ...)."""
    passes = 1
    while renderer.resolution ** 2 * spp / passes > MAX_SAMPLES_PER_RENDER and spp % (2 * passes) == 0:
        passes *= 2
    image = sum(renderer.render(texture, spp=spp // passes, seed=seed + k).cpu() for k in range(passes))
    return image / passes


def run(resolutions, photos, spp, log=None):
    """Both paths at every resolution, scored; returns ``{resolution: {"old": ..., "new": ..., "scores": ...}}``."""
    from predistort.render import Renderer
    from predistort.scene import DEFAULT
    results = {}
    for res in resolutions:
        results[res] = {}
        with tempfile.TemporaryDirectory() as tmp:
            textures = {}
            for path in ("old", "new"):
                print(f"[scale] {res}²: {path} path ...", file=sys.stderr, flush=True)
                out = Path(tmp) / f"{path}.pt"
                load = os.getloadavg()[0]
                r = run_child(__file__, ["--child", path, "--resolution", res, "--photos", photos,
                                         "--textures-out", out], log=log)
                r["load_average_before"] = load
                results[res][path] = r
                textures[path] = torch.load(out)
                print(f"[scale] {res}²: {path}: probe {r['probe_seconds']:.1f} s, apply "
                      + ", ".join(f"{k} {v:.3f} s" for k, v in r["apply_seconds"].items())
                      + f", peak {r['peak_rss_gb']:.2f} GB", file=sys.stderr, flush=True)
            # Score after both children are done, so that neither is timed while this process renders.
            renderer = Renderer(DEFAULT.replace(resolution=res))
            targets = unseen_photos(res, PHOTOS[:photos])
            l1 = {"none": [common.l1(render_averaged(renderer, t, spp, EVAL_SEED), t) for t in targets]}
            for path, methods in textures.items():
                for method, outs in methods.items():
                    l1[f"{path}: {method}"] = [common.l1(render_averaged(renderer, o, spp, EVAL_SEED), t)
                                               for o, t in zip(outs, targets)]
            results[res]["l1"] = l1
            results[res]["ratio"] = {k: statistics.mean(a / b for a, b in zip(v, l1["none"]))
                                     for k, v in l1.items()}
    return results


def table(results):
    """The markdown table: per resolution, the new path's figures and their ratio to the old path's."""
    rows = []
    for res, r in results.items():
        old, new, q = r["old"], r["new"], r["ratio"]
        old_apply = old["apply_seconds"]["instant solve"]
        solve_s, layer_s = new["apply_seconds"]["instant solve"], new["apply_seconds"]["generalising layer"]
        rows.append([
            f"{res}²",
            f"{new['probe_seconds']:.1f} ({new['probe_seconds'] / old['probe_seconds']:.2f}× of "
            f"{old['probe_seconds']:.1f})",
            f"{solve_s:.3f} ({solve_s / old_apply:.2f}× of {old_apply:.3f})",
            f"{layer_s:.3f} ({layer_s / old_apply:.2f}×)",
            " / ".join(f"{new['apply_seconds_2_threads'][m]:.3f}" for m in ("instant solve", "generalising layer")),
            f"{new['peak_rss_gb']:.2f} ({new['peak_rss_gb'] / old['peak_rss_gb']:.2f}× of {old['peak_rss_gb']:.2f})",
            f"{q['old: instant solve']:.3f}",
            f"{q['new: instant solve']:.3f} ({q['new: instant solve'] / q['old: instant solve']:.2f}×)",
            f"{q['new: generalising layer']:.3f} ({q['new: generalising layer'] / q['old: instant solve']:.2f}×)",
        ])
    headers = ["resolution", "probe s, new (÷ old)", "apply s/picture, instant solve, new (÷ old)",
               "apply s/picture, generalising layer (÷ old solve)", "apply s, 2 solver threads: solve / layer",
               "peak GB, new path (÷ old path)",
               "L1 ratio, old solve", "L1 ratio, new solve (÷ old)", "L1 ratio, generalising layer (÷ old)"]
    return markdown_table(headers, rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI size: 32 and 64, 2 photos, spp 16")
    p.add_argument("--resolutions", type=int, nargs="+", help=f"default {' '.join(map(str, FULL_RESOLUTIONS))}")
    p.add_argument("--photos", type=int, help="how many unseen photos (the first of datasets.PHOTOS; default 4, "
                                              "--quick 2)")
    p.add_argument("--spp", type=int, help="samples per pixel of the scoring renders (default 64, --quick 16)")
    p.add_argument("--out", type=Path, help="folder for scale.md/.json/.log (default bench/results, "
                                            "bench/results/quick with --quick)")
    p.add_argument("--child", choices=["old", "new"], help=argparse.SUPPRESS)
    p.add_argument("--resolution", type=int, help=argparse.SUPPRESS)
    p.add_argument("--textures-out", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child, args.resolution, args.photos, args.textures_out, args.result)

    resolutions = args.resolutions or (QUICK_RESOLUTIONS if args.quick else FULL_RESOLUTIONS)
    photos = args.photos or (2 if args.quick else 4)
    spp = args.spp or (16 if args.quick else 64)
    out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    command = "python bench/scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    start_load = os.getloadavg()
    with open(out / "scale.log", "w") as log:
        results = run(resolutions, photos, spp, log=log)
    end_load = os.getloadavg()
    new = next(iter(results.values()))["new"]
    md = "\n".join([
        "## Pre-distortion at every resolution: today's path and the new one, in one run", "",
        *[f"{line}  " for line in common.header(command.strip())],
        f"Load average (1, 5, 15 min) at start {', '.join(f'{x:.1f}' for x in start_load)}, at end "
        f"{', '.join(f'{x:.1f}' for x in end_load)} (2 cores: above 2 the machine was shared).", "",
        table(results), "",
        f"Old path: bench/scale_baseline.py (predistort/solve.py before issue 13): "
        f"{next(iter(results.values()))['old']['schedule']['instant solve']}, one torch thread. New path: "
        f"predistort.probe.probe; instant solve "
        + "; ".join(f"{res}²: {r['new']['schedule']['instant solve']}" for res, r in results.items())
        + f"; generalising layer: {new['schedule']['generalising layer'].split(', built')[0]}; "
        f"{new['solve_threads']} solver thread(s) (PREDISTORT_SOLVE_THREADS), and 2 in the column that says so "
        f"(the same applies, timed again). Probe: from nothing (no cache), progress reported. Apply: "
        f"median seconds per photo with the transport in memory. Peak GB: ru_maxrss of the path's own process "
        f"(probe + every apply; GB = 10⁹ bytes). L1 ratio: mean over the photos of L1(render of the "
        f"pre-distorted texture) / L1(render of the photo itself), renders at R×R, spp {spp}, seed {EVAL_SEED} "
        f"for all; photos: {', '.join(PHOTOS[:photos])} (scikit-image, unseen by every model)."])
    print(md)
    data = {"command": command.strip(), "machine": common.machine(), "spp": spp, "photos": PHOTOS[:photos],
            "load_average": {"start": start_load, "end": end_load},
            "results": {str(k): v for k, v in results.items()}}
    path = common.save_report("scale", md, data, out)
    print(f"\nWrote {path} and {path.with_suffix('.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
