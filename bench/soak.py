"""Memory over a long run: thousands of /predistort calls and trainings; the server's RSS must stay flat.

    python bench/soak.py                                       # two sessions: 500 calls, 20 trainings
    python bench/soak.py --pattern visitors --calls 2000 --every 100     # visitors as they come
    python bench/soak.py --url http://127.0.0.1:7860/ --calls 100 --trainings 4 --warm-calls 20 --warm-trainings 1

Two patterns, one request at a time (cycling through examples/*.png at the model's 128², spp 8):

* ``sessions`` (default): two gradio_client sessions take turns. Session A only pre-distorts with the default
  model; session B pre-distorts with its own model, which it replaces by training again (16×16, 3 iterations,
  spp 2, a new seed each time) evenly spread over the run: every training builds a new model, optimiser and
  autograd graph through ``dr.wrap``, and frees the last. Passes if the RSS at the end is within ``--bound-mb``
  of the baseline.
* ``visitors``: visitors as they come to a Space — a fresh ``gradio_client.Client`` every
  ``--new-client-every`` calls (a new tab or API user; the last one just stops calling, so only the server's
  session time-to-live can release it), and a short training (as above) every ``--train-every`` calls. Passes if
  the slope of the RSS over the run's second half is within ``--slope-bound-mb`` per 1,000 calls: a server that
  keeps something of every visitor grows steadily, one that releases it levels off.

The baseline is the server's RSS (VmRSS of /proc/<pid>/status) once the first ``--warm-calls`` calls and
``--warm-trainings`` trainings are done (kernels compiled, caches filled). Also reported: RSS every ``--every``
calls, the growth and the slope over the second half, latency and errors. Loopback only, bounded by
``--timeout``. Writes bench/results/soak.md (sessions) or soak_visitors.md; exit status 1 if the pattern's bound
is exceeded or a request failed.
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


def soak(url, pid, calls, trainings, warm_calls, warm_trainings, every, timeout, downloads,
         pattern="sessions", new_client_every=10, train_every=50):
    """Run the soak; returns a dict of samples, baseline, final RSS, latencies, errors and clients made.

    ``pattern`` "sessions": two clients take turns, `trainings` spread evenly (session B trains). "visitors": a
    fresh client every `new_client_every` calls (a new tab or API user; the last one just stops calling), and a
    short training every `train_every` calls by the visitor of the moment.
    """
    from gradio_client import Client, handle_file
    deadline = time.monotonic() + timeout
    pictures = sorted(str(p) for p in (REPO / "examples").glob("*.png"))

    def new_client(name):
        return Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix=f"{name}-", dir=downloads))

    if pattern == "sessions":
        a, b = new_client("a"), new_client("b")
        # Trainings at calls 0, calls/trainings, 2·calls/trainings, ... (the warm ones among the first).
        train_at = {round(i * calls / trainings) for i in range(trainings)} if trainings else set()
        assert len(train_at) == trainings, "more trainings than calls"
    else:
        a = b = None
        train_at = set(range(train_every - 1, calls, train_every)) if train_every else set()
    clients_made = 0 if pattern == "visitors" else 2
    samples, latency, errors, baseline = [], {"predistort": [], "train": []}, [], None
    trained = 0
    start = time.perf_counter()
    for i in range(calls):
        if time.monotonic() > deadline:
            errors.append(f"stopped at call {i}: the time limit ({timeout:.0f} s) was reached")
            break
        if pattern == "visitors" and i % new_client_every == 0:
            if a is not None and hasattr(a, "close"):
                a.close()                        # a visitor who just stops calling: the server is not told
            a = b = new_client(f"v{clients_made}")
            clients_made += 1
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
            print(f"{done} calls, {trained} trainings, {clients_made} clients: RSS {samples[-1]['rss_mb']:.0f} MB",
                  flush=True)
    for c in {id(c): c for c in (a, b) if c is not None}.values():
        if hasattr(c, "close"):
            c.close()
    return {"samples": samples, "baseline": baseline, "final": samples[-1] if samples else None,
            "latency": latency, "errors": errors, "seconds": time.perf_counter() - start, "trainings": trained,
            "clients": clients_made, "peak_mb": memory_mb(pid, "VmHWM")}


def last_half_slope(samples):
    """MB per 1,000 calls: the least-squares slope of the RSS over the second half of the run."""
    half = [s for s in samples if s["calls"] >= samples[-1]["calls"] / 2]
    return 10 * slope_per_100(half)


def command(args):
    """The command line that reproduces this run (what the results file quotes)."""
    cmd = f"python bench/soak.py --pattern {args.pattern} --calls {args.calls}"
    if args.pattern == "sessions":
        cmd += f" --trainings {args.trainings}"
    else:
        cmd += f" --new-client-every {args.new_client_every} --train-every {args.train_every}"
    return cmd + (f" --warm-calls {args.warm_calls} --warm-trainings {args.warm_trainings} --bound-mb "
                  f"{args.bound_mb:g} --slope-bound-mb {args.slope_bound_mb:g}")


def markdown(r, args, model_note):
    """The results file, and whether the run passed: no errors, and for "sessions" the growth after the
    baseline within ``--bound-mb``, for "visitors" the last half's slope within ``--slope-bound-mb``."""
    base, final = r["baseline"], r["final"]
    growth = final["rss_mb"] - base["rss_mb"]
    slope = last_half_slope(r["samples"])
    within = growth <= args.bound_mb if args.pattern == "sessions" else slope <= args.slope_bound_mb
    ok = within and not r["errors"]
    verdict = "within the bound" if ok else "FAILED"
    p = lambda xs, q: f"{sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]:.2f}" if xs else "–"  # noqa: E731
    who = ("two sessions taking turns" if args.pattern == "sessions" else
           f"{r['clients']} visitors, a fresh client every {args.new_client_every} calls")
    lines = [
        f"# Soak ({args.pattern}): memory over consecutive requests",
        "",
        f"`{command(args)}` on {date.today().isoformat()}: {platform.machine()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}; default model: {model_note}. {len(r['latency']['predistort'])} /predistort "
        f"calls ({who}) and {r['trainings']} trainings (16×16, 3 iterations, each replacing the model of the "
        f"session that trains) in {r['seconds']:.0f} s.",
        "",
        "| | calls | trainings | server RSS (MB) |",
        "|---|---:|---:|---:|",
        f"| baseline (after the first few) | {base['calls']} | {base['trainings']} | {base['rss_mb']:.0f} |",
        f"| end | {final['calls']} | {final['trainings']} | {final['rss_mb']:.0f} |",
        f"| growth | | | {growth:+.0f} |",
        "",
        f"**Last half's slope: {slope:+.1f} MB per 1,000 calls** (bound {args.slope_bound_mb:g} for the visitor "
        f"pattern); growth after the baseline {growth:+.0f} MB (bound {args.bound_mb:g} for the two-session "
        f"pattern) → **{verdict}**.",
        "",
        f"Peak RSS (VmHWM, whole run): {r['peak_mb']:.0f} MB. Latency /predistort p50 "
        f"{p(r['latency']['predistort'], .5)} s, p95 {p(r['latency']['predistort'], .95)} s; /train p50 "
        f"{p(r['latency']['train'], .5)} s. Errors: {len(r['errors'])}.",
        "",
        "RSS every " + str(args.every) + " calls (MB): " + ", ".join(f"{s['rss_mb']:.0f}" for s in r["samples"]),
        "",
    ]
    lines += [f"- {e}" for e in r["errors"][:20]]
    return "\n".join(lines) + "\n", ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an app already running on this machine (loopback only); default: start one")
    parser.add_argument("--pattern", choices=("sessions", "visitors"), default="sessions",
                        help="two sessions taking turns (default), or a fresh visitor every --new-client-every calls")
    parser.add_argument("--calls", type=int, default=500, help="/predistort calls (default 500)")
    parser.add_argument("--trainings", type=int, default=20, help="sessions: trainings spread over the calls")
    parser.add_argument("--new-client-every", type=int, default=10, help="visitors: calls per visitor (default 10)")
    parser.add_argument("--train-every", type=int, default=50, help="visitors: a training every this many calls")
    parser.add_argument("--warm-calls", type=int, default=50, help="calls before the baseline is taken")
    parser.add_argument("--warm-trainings", type=int, default=2, help="trainings before the baseline is taken")
    parser.add_argument("--bound-mb", type=float, default=50.0, help="sessions: allowed growth after the baseline")
    parser.add_argument("--slope-bound-mb", type=float, default=5.0,
                        help="visitors: allowed slope of the last half, MB per 1,000 calls")
    parser.add_argument("--every", type=int, default=25, help="sample the RSS every this many calls")
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds the whole run may take")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/soak[_visitors].md)")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 5000 or not 0 <= args.trainings <= args.calls or args.warm_calls >= args.calls:
        parser.error("need 1 <= calls <= 5000, trainings <= calls, warm-calls < calls")
    if args.new_client_every < 1 or args.train_every < 0:
        parser.error("need --new-client-every >= 1 and --train-every >= 0")
    out = args.out or RESULTS / ("soak.md" if args.pattern == "sessions" else "soak_visitors.md")
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
                 args.timeout, tmp, pattern=args.pattern, new_client_every=args.new_client_every,
                 train_every=args.train_every)
        if r["baseline"] is None or r["final"] is None:
            print("the run ended before the baseline was taken:", *r["errors"], sep="\n")
            return 1
        text, ok = markdown(r, args, model_note)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
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
