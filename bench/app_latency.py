"""How fast the web app answers: start-up, the first /predistort, warm /predistort, training per iteration.

Starts the real app the way the Dockerfile does (``python app.py`` with GRADIO_SERVER_NAME/PORT) and calls
it through gradio_client, so every number includes Gradio's own work (upload, queue, PNG encoding, download).

    python bench/app_latency.py                 # all scenarios below, results in artifacts/app_latency.json
    python bench/app_latency.py --quick         # fewer repetitions, no 128² training

Scenarios, each in a fresh app process:
  cold    empty Dr.Jit kernel cache (a fresh HOME) and PREDISTORT_WARMUP=0: the first request compiles every
          kernel it needs itself — the worst first request a visitor can meet;
  default the app as deployed (warm-up at start, the kernel cache of this machine): the first request after
          start, then ``--repeat`` warm requests (median, 90th percentile);
  R²      /predistort at 256², 512² and 1024² (``--quick``: 256², 512²) with the preview spp (the app renders
          above 256² with fewer samples, and says which spp): the first request, which measures that
          resolution's light transport, then warm ones (median, max);
  train   /train on the six example pictures at spp 4: the tutorial layer, 5 iterations at 64² and at 128²
          (``--quick``: 64² only); the generalising layer, 5 iterations at 128², its first request probing
          the scene (an empty PREDISTORT_CACHE); then the instant solve at 128² (scene already probed).
          Seconds per iteration = median step of the returned loss history.

The model is the bundled default (weights/default) when it exists; otherwise a 128×128 tutorial model
stands in, and the output says so. Texture: examples/checker.png (256×256, so the app resizes it to 128²).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from predistort.appserver import launch_app  # noqa: E402


def predistort_times(url, texture, repeat, resolution=None):
    """Seconds of the first /predistort of a fresh client session, then of `repeat` more (at `resolution`, or
    the model's own when None: the call then sends the picture alone, as older clients do)."""
    from gradio_client import Client, handle_file
    from predistort.settings import SETTINGS
    client = Client(url, verbose=False)
    times, metrics, first = [], None, None
    for _ in range(1 + repeat):
        t = time.perf_counter()
        if resolution is None:
            out = client.predict(handle_file(str(texture)), api_name="/predistort")
        else:
            out = client.predict(handle_file(str(texture)), SETTINGS.preview_spp, "crop", 0, resolution,
                                 api_name="/predistort")
        times.append(time.perf_counter() - t)
        metrics = out[3]
        first = first or metrics
    return times, {**metrics, "first_probe_seconds": first.get("probe_seconds", 0.0)}


def train_seconds_per_iteration(url, pictures, resolution, iterations=5, method="tutorial"):
    from gradio_client import Client, handle_file
    client = Client(url, verbose=False)
    t = time.perf_counter()
    _, curve, metrics, _, _, _ = client.predict([handle_file(str(p)) for p in pictures], method, iterations, 4,
                                             resolution, 0, 1.06, 0.45, "crop", api_name="/train")
    wall = time.perf_counter() - t
    return {"method": method, "resolution": resolution, "pictures": len(pictures), "iterations": metrics["iterations_run"], "spp": 4,
            "seconds_per_iteration_median": metrics["seconds_per_iteration_median"],
            "seconds_per_iteration_mean": metrics["seconds_per_iteration"], "train_seconds": metrics["seconds"],
            "request_seconds": wall, "first_loss": metrics["first_train_loss"],
            "final_loss": metrics["final_train_loss"], "curve_points": len(curve["data"])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=20, help="warm /predistort requests (default 20)")
    p.add_argument("--quick", action="store_true", help="5 warm requests, no 128² training")
    p.add_argument("--out", default=str(REPO / "artifacts" / "app_latency.json"))
    args = p.parse_args(argv)
    repeat = 5 if args.quick else args.repeat

    from predistort import weights
    from predistort.settings import SETTINGS
    work = Path(tempfile.mkdtemp(prefix="predistort-bench-"))
    env = {"PREDISTORT_CACHE": str(work / "cache")}          # no probe cached: the first probe is timed
    bundled = (weights.bundled_dir() / weights.WEIGHTS_NAME).exists()
    if bundled:
        model_note = "bundled default (weights/default)"
    else:
        import torch
        from predistort.layers import TutorialLayer
        from predistort.scene import DEFAULT
        torch.manual_seed(0)
        stand_in = TutorialLayer(128)
        stand_in.info = {"scene": DEFAULT.to_dict()}
        stand_in.save_pretrained(work / "standin128")
        env["PREDISTORT_DEFAULT_WEIGHTS"] = str(work / "standin128")
        model_note = "NO bundled default: a 128×128 tutorial layer stands in (PREDISTORT_DEFAULT_WEIGHTS)"
        del stand_in
    texture = REPO / "examples" / "checker.png"
    pictures = sorted((REPO / "examples").glob("*.png"))
    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "python": platform.python_version()},
               "model": model_note, "preview_spp": SETTINGS.preview_spp, "texture": texture.name}
    print(f"model: {model_note}; preview spp {SETTINGS.preview_spp}; texture {texture.name}", flush=True)

    # cold: fresh HOME (no Dr.Jit kernel cache), no warm-up.
    home = work / "home"
    home.mkdir()
    with launch_app(work, **{**env, "HOME": str(home), "PREDISTORT_WARMUP": "0"}) as server:
        url, started = server.url, server.start_seconds
        times, metrics = predistort_times(url, texture, repeat=2)
    results["cold"] = {"start_seconds": started, "first_request_seconds": times[0], "next_requests": times[1:]}
    print(f"cold    : app answered after {started:.1f} s; first /predistort {times[0]:.2f} s "
          f"(empty kernel cache, no warm-up), then {', '.join(f'{t:.2f}' for t in times[1:])} s", flush=True)

    # default: as deployed.
    with launch_app(work, **env) as server:
        url, started = server.url, server.start_seconds
        times, metrics = predistort_times(url, texture, repeat)
        warm = sorted(times[1:])
        results["default"] = {
            "start_seconds": started, "first_request_seconds": times[0],
            "warm_median_seconds": statistics.median(warm),
            "warm_p90_seconds": warm[min(len(warm) - 1, int(0.9 * len(warm)))],
            "warm_min_seconds": warm[0], "warm_requests": len(warm), "resolution": metrics["resolution"],
            "metrics": {k: metrics[k] for k in ("l1_initial", "l1_final", "psnr_initial", "psnr_final")}}
        d = results["default"]
        print(f"default : app answered after {started:.1f} s; first /predistort {d['first_request_seconds']:.2f} s; "
              f"warm median {d['warm_median_seconds']:.3f} s, p90 {d['warm_p90_seconds']:.3f} s, "
              f"min {d['warm_min_seconds']:.3f} s over {len(warm)} requests at {metrics['resolution']}²", flush=True)

        # Larger resolutions: the first request measures that resolution's light transport (its probe cache
        # is empty here: a fresh PREDISTORT_CACHE), the next ones are warm.
        results["resolutions"] = []
        for resolution in (256, 512) if args.quick else (256, 512, 1024):
            times, metrics = predistort_times(url, texture, max(3, repeat // 4), resolution=resolution)
            warm = sorted(times[1:])
            results["resolutions"].append({
                "resolution": resolution, "first_request_seconds": times[0],
                "probe_seconds": metrics["first_probe_seconds"],
                "warm_median_seconds": statistics.median(warm), "warm_max_seconds": warm[-1],
                "warm_requests": len(warm), "spp": metrics["spp"], "apply_seconds": metrics["apply_seconds"],
                "l1_ratio": metrics["l1_ratio"]})
            print(f"{resolution}²  : first /predistort {times[0]:.2f} s (probe {metrics['first_probe_seconds']:.1f} s); warm "
                  f"median {statistics.median(warm):.2f} s, max {warm[-1]:.2f} s over {len(warm)} requests; renders "
                  f"at spp {metrics['spp']}, pre-distortion {metrics['apply_seconds']:.3f} s", flush=True)

        results["train"] = []
        runs = [("unrolled", 128), ("solve", 128), ("tutorial", 64)] + ([] if args.quick else [("tutorial", 128)])
        for method, resolution in runs:
            r = train_seconds_per_iteration(url, pictures, resolution, method=method)
            results["train"].append(r)
            if method == "solve":
                print(f"train   : instant solve, {r['pictures']} pictures at {resolution}²: whole request "
                      f"{r['request_seconds']:.1f} s (solve + one render each {r['train_seconds']:.1f} s; plus "
                      f"evaluation renders)", flush=True)
                continue
            print(f"train   : {method}, {r['pictures']} pictures at {resolution}², spp 4: "
                  f"{r['seconds_per_iteration_median']:.2f} s per iteration (median step; mean of {r['iterations']} "
                  f"with the first: {r['seconds_per_iteration_mean']:.2f} s; whole request "
                  f"{r['request_seconds']:.1f} s incl. {'probe and ' if method == 'unrolled' else ''}evaluation)",
                  flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
