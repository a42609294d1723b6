"""Memory over a long run: 500 consecutive /predistort calls and 20 trainings; the server's RSS must stay flat.

    python bench/soak.py                         # starts the app on 127.0.0.1; 500 calls, 20 trainings
    python bench/soak.py --url http://127.0.0.1:7860/ --calls 100 --trainings 4 --warm-calls 20 --warm-trainings 1

Two gradio_client sessions take turns, one request at a time:

* session A only pre-distorts, with the default model (cycling through examples/*.png, spp 8);
* session B pre-distorts with its own model, which it replaces by training again (16×16, 3 iterations,
  spp 2, a new seed each time) evenly spread over the run: every training builds a new model, optimiser and
  autograd graph through ``dr.wrap``, and frees the last; every pre-distortion renders without gradients.

The baseline is the server's RSS (VmRSS of /proc/<pid>/status) once the first ``--warm-calls`` calls and
``--warm-trainings`` trainings are done (kernels compiled, caches filled); the run passes if the RSS at the end
is within ``--bound-mb`` of it. Also reported: RSS every ``--every`` calls, the slope over the second half (MB per
100 calls: a leak shows as a steady slope), latency and errors. Loopback only, bounded by ``--timeout``.
Writes bench/results/soak.md; exit status 1 if the bound is exceeded or a request failed.
"""
import argparse
import contextlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import urllib.parse
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from load import default_weights_env, memory_mb, pid_listening_on  # noqa: E402
from predistort.appserver import launch_app  # noqa: E402

RESULTS = REPO / "bench" / "results"


def slope_per_100(samples):
    """Least-squares slope of RSS (MB) against calls, per 100 calls."""
    if len(samples) < 2:
        return 0.0
    xs, ys = [s["calls"] for s in samples], [s["rss_mb"] for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 100 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def soak(url, pid, calls, trainings, warm_calls, warm_trainings, every, timeout, downloads):
    """Run the soak; returns a dict of samples, baseline, final RSS, latencies and errors."""
    from gradio_client import Client, handle_file
    deadline = time.monotonic() + timeout
    pictures = sorted(str(p) for p in (REPO / "examples").glob("*.png"))
    a = Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix="a-", dir=downloads))
    b = Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix="b-", dir=downloads))
    # Trainings at calls 0, calls/trainings, 2·calls/trainings, ... (the warm ones among the first).
    train_at = {round(i * calls / trainings) for i in range(trainings)} if trainings else set()
    assert len(train_at) == trainings, "more trainings than calls"
    samples, latency, errors, baseline = [], {"predistort": [], "train": []}, [], None
    trained = 0
    start = time.perf_counter()
    for i in range(calls):
        if time.monotonic() > deadline:
            errors.append(f"stopped at call {i}: the time limit ({timeout:.0f} s) was reached")
            break
        if i in train_at:
            t = time.perf_counter()
            try:
                b.predict([handle_file(pictures[trained % len(pictures)])], "tutorial", 3, 2, 16, trained, 1.06,
                          0.45, "crop", api_name="/train")
                latency["train"].append(time.perf_counter() - t)
            except Exception as e:                                      # noqa: BLE001 (counted, reported)
                errors.append(f"training {trained}: {type(e).__name__}: {str(e)[:200]}")
            trained += 1
        client = a if i % 2 == 0 else b
        t = time.perf_counter()
        try:
            client.predict(handle_file(pictures[i % len(pictures)]), 8, "crop", api_name="/predistort")
            latency["predistort"].append(time.perf_counter() - t)
        except Exception as e:                                          # noqa: BLE001
            errors.append(f"call {i}: {type(e).__name__}: {str(e)[:200]}")
        done = i + 1
        if baseline is None and done >= warm_calls and trained >= warm_trainings:
            baseline = {"calls": done, "trainings": trained, "rss_mb": memory_mb(pid, "VmRSS")}
        if done % every == 0 or done == calls:
            samples.append({"calls": done, "trainings": trained, "rss_mb": memory_mb(pid, "VmRSS"),
                            "seconds": time.perf_counter() - start})
            print(f"{done} calls, {trained} trainings: RSS {samples[-1]['rss_mb']:.0f} MB", flush=True)
    for c in (a, b):
        if hasattr(c, "close"):
            c.close()
    return {"samples": samples, "baseline": baseline, "final": samples[-1] if samples else None,
            "latency": latency, "errors": errors, "seconds": time.perf_counter() - start, "trainings": trained,
            "peak_mb": memory_mb(pid, "VmHWM")}


def markdown(r, args, model_note):
    base, final = r["baseline"], r["final"]
    growth = final["rss_mb"] - base["rss_mb"]
    second_half = [s for s in r["samples"] if s["calls"] >= r["samples"][-1]["calls"] / 2]
    ok = growth <= args.bound_mb and not r["errors"]
    p = lambda xs, q: f"{sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]:.2f}" if xs else "–"  # noqa: E731
    lines = [
        "# Soak: memory over consecutive requests",
        "",
        f"`python bench/soak.py --calls {args.calls} --trainings {args.trainings} --warm-calls {args.warm_calls} "
        f"--warm-trainings {args.warm_trainings} --bound-mb {args.bound_mb:g}` on {date.today().isoformat()}: "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}; default model: "
        f"{model_note}. {len(r['latency']['predistort'])} /predistort calls (two sessions taking turns) and "
        f"{r['trainings']} trainings (16×16, 3 iterations, each replacing the last model) in {r['seconds']:.0f} s.",
        "",
        "| | calls | trainings | server RSS (MB) |",
        "|---|---:|---:|---:|",
        f"| baseline (after the first few) | {base['calls']} | {base['trainings']} | {base['rss_mb']:.0f} |",
        f"| end | {final['calls']} | {final['trainings']} | {final['rss_mb']:.0f} |",
        f"| **growth** (bound: {args.bound_mb:g} MB) | | | **{growth:+.0f}** → "
        f"{'within the bound' if ok else 'FAILED'} |",
        "",
        f"Peak RSS (VmHWM, whole run): {r['peak_mb']:.0f} MB. Slope over the second half: "
        f"{slope_per_100(second_half):+.2f} MB per 100 calls. Latency /predistort p50 "
        f"{p(r['latency']['predistort'], .5)} s, "
        f"p95 {p(r['latency']['predistort'], .95)} s; /train p50 {p(r['latency']['train'], .5)} s. "
        f"Errors: {len(r['errors'])}.",
        "",
        "RSS every " + str(args.every) + " calls (MB): " + ", ".join(f"{s['rss_mb']:.0f}" for s in r["samples"]),
        "",
    ]
    lines += [f"- {e}" for e in r["errors"][:20]]
    return "\n".join(lines) + "\n", ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an app already running on this machine (loopback only); default: start one")
    parser.add_argument("--calls", type=int, default=500, help="/predistort calls (default 500)")
    parser.add_argument("--trainings", type=int, default=20, help="trainings spread over the calls (default 20)")
    parser.add_argument("--warm-calls", type=int, default=50, help="calls before the baseline is taken")
    parser.add_argument("--warm-trainings", type=int, default=2, help="trainings before the baseline is taken")
    parser.add_argument("--bound-mb", type=float, default=50.0, help="allowed RSS growth after the baseline, MB")
    parser.add_argument("--every", type=int, default=25, help="sample the RSS every this many calls")
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds the whole run may take")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.md")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 5000 or not 0 <= args.trainings <= args.calls or args.warm_calls >= args.calls:
        parser.error("need 1 <= calls <= 5000, trainings <= calls, warm-calls < calls")
    tmp = tempfile.mkdtemp(prefix="predistort-soak-")
    model_note = "the running app's"
    stack = contextlib.ExitStack()
    try:
        if args.url:
            parsed = urllib.parse.urlparse(args.url)
            if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
                parser.error("--url must be a loopback address (127.0.0.1 / localhost)")
            url, pid = args.url if args.url.endswith("/") else args.url + "/", pid_listening_on(parsed.port or 80)
            if pid is None:
                parser.error(f"no process of this machine listens on port {parsed.port}: RSS cannot be read")
        else:
            env, model_note = default_weights_env(tmp)
            app = stack.enter_context(launch_app(tmp, **env))
            url, pid = app.url, app.pid
        print(f"app at {url} (pid {pid}); default model: {model_note}", flush=True)
        r = soak(url, pid, args.calls, args.trainings, args.warm_calls, args.warm_trainings, args.every,
                 args.timeout, tmp)
        if r["baseline"] is None or r["final"] is None:
            print("the run ended before the baseline was taken:", *r["errors"], sep="\n")
            return 1
        text, ok = markdown(r, args, model_note)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(text)
        return 0 if ok else 1
    except Exception:
        traceback.print_exc()
        return 2
    finally:
        stack.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
