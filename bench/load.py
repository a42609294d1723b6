"""Many visitors at once: N gradio_client sessions, each a fixed mix of /predistort and short /train calls.

    python bench/load.py                        # starts the app on 127.0.0.1, N = 1, 4, 16
    python bench/load.py --n 1,4 --url http://127.0.0.1:7860/     # an app already running on this machine

Each session k runs the same short script every time (fixed pictures, spp and seeds):

    /predistort  picture k      (the default model)
    /train       picture k+1, 16×16, 2 iterations, spp 2, seed k     (this session's own model from now on)
    /predistort  picture k+2    (with the model session k just trained)
    /predistort  picture k+3

First every script runs *alone* (one session at a time): these are the reference results. Then, for each N,
sessions 0..N-1 run their scripts concurrently, each from its own thread and client, and every result is
compared with its reference: the metrics to 1e-5 (Dr.Jit may round differently in another thread), the images
to one 8-bit level, the training's loss curve to 1e-5. A difference is cross-talk (one visitor's texture,
model or scene in another's result) and is counted as a mismatch.

Reported per N: requests, errors, mismatches, wall time, throughput, p50/p95 latency (submit → result, queue
waits included) of /predistort, /train and all requests, and the server's peak RSS during that level (VmHWM of
/proc/<pid>/status, reset before each level by writing 5 to /proc/<pid>/clear_refs). Loopback only; every
request and the whole run are bounded in time (--request-timeout, --timeout). Writes bench/results/load.md.
"""
import argparse
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(REPO))
from predistort.appserver import launch_app  # noqa: E402

TOLERANCE = 1e-5               # metrics and losses: same request alone vs under load
PIXEL_TOLERANCE = 1            # 8-bit levels
METRIC_KEYS = ("l1_initial", "l1_final", "psnr_initial", "psnr_final")
DOWNLOADS = Path(tempfile.gettempdir())   # where the clients put the images they download (main(): a temp folder)


# -- the server ------------------------------------------------------------------------------------------------
def default_weights_env(tmp):
    """PREDISTORT_DEFAULT_WEIGHTS for the app: the bundled model if there is one, else a 32×32 tutorial model."""
    from predistort import weights
    if (weights.bundled_dir() / weights.WEIGHTS_NAME).exists():
        return {}, "the bundled default model (weights/default)"
    import torch
    from predistort.layers import TutorialLayer
    from predistort.scene import DEFAULT
    torch.manual_seed(0)
    model = TutorialLayer(32)
    model.info = {"scene": DEFAULT.replace(resolution=32).to_dict(), "recipe": {"note": "bench stand-in"}}
    model.save_pretrained(Path(tmp) / "default32")
    return {"PREDISTORT_DEFAULT_WEIGHTS": str(Path(tmp) / "default32")}, \
        "an untrained 32×32 tutorial model (no weights/default here)"


def pid_listening_on(port):
    """The pid of the local process listening on `port` (via /proc/net/tcp), or None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A":
                    inodes.add(f"socket:[{f[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                return int(pid)
        except OSError:
            continue
    return None


def memory_mb(pid, field):
    """VmRSS / VmHWM of `pid` in MB (10⁶ bytes), or None when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None


def reset_peak(pid):
    """Reset the kernel's peak-RSS counter (VmHWM) of `pid` to its current RSS; False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# -- one session's script --------------------------------------------------------------------------------------
def script(k, pictures):
    n = len(pictures)
    return [("predistort", {"picture": pictures[k % n], "spp": 8}),
            ("train", {"picture": pictures[(k + 1) % n], "iterations": 2, "spp": 2, "resolution": 16, "seed": k}),
            ("predistort", {"picture": pictures[(k + 2) % n], "spp": 8}),
            ("predistort", {"picture": pictures[(k + 3) % n], "spp": 8})]


def call(client, op, args, timeout):
    """One request; returns (seconds, comparable result)."""
    import numpy as np
    from gradio_client import handle_file
    from PIL import Image
    start = time.perf_counter()
    if op == "predistort":
        job = client.submit(handle_file(args["picture"]), args["spp"], "crop", api_name="/predistort")
        initial, predistorted, final, metrics, used, _ = job.result(timeout=timeout)
        seconds = time.perf_counter() - start
        images = [np.asarray(Image.open(p).convert("RGB"), dtype=np.int16)
                  for p in (initial, predistorted, final, used)]
        return seconds, {"metrics": {k: metrics[k] for k in METRIC_KEYS}, "images": images,
                         "resolution": metrics["resolution"]}
    job = client.submit([handle_file(args["picture"])], "tutorial", args["iterations"], args["spp"],
                        args["resolution"], args["seed"], 1.06, 0.45, "crop", api_name="/train")
    _, curve, metrics, _, _, _ = job.result(timeout=timeout)
    seconds = time.perf_counter() - start
    return seconds, {"losses": [row[1] for row in curve["data"]],
                     "metrics": {k: metrics[k + "_mean"] for k in METRIC_KEYS}}


def differs(a, b):
    """None if `b` equals reference `a` within the tolerances, else what differs."""
    import numpy as np
    for key in ("resolution",):
        if a.get(key) != b.get(key):
            return f"{key} {a.get(key)} vs {b.get(key)}"
    for key, x in a["metrics"].items():
        if abs(x - b["metrics"][key]) > TOLERANCE * max(1.0, abs(x)):
            return f"{key} {x:.7g} vs {b['metrics'][key]:.7g}"
    if "losses" in a:
        if len(a["losses"]) != len(b["losses"]) or \
                max(abs(x - y) for x, y in zip(a["losses"], b["losses"])) > TOLERANCE * max(map(abs, a["losses"])):
            return f"losses {a['losses']} vs {b['losses']}"
    for i, (x, y) in enumerate(zip(a.get("images", []), b.get("images", []))):
        if x.shape != y.shape or int(np.abs(x - y).max()) > PIXEL_TOLERANCE:
            return f"image {i} differs by up to {int(np.abs(x - y).max()) if x.shape == y.shape else 'shape'} levels"
    return None


def run_session(url, k, pictures, timeout, deadline, out):
    """Session k's script in a client of its own; appends (k, step, op, seconds, result or error) to `out`."""
    from gradio_client import Client
    try:
        client = Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix=f"session-{k}-", dir=DOWNLOADS))
    except Exception as e:                                              # noqa: BLE001 (reported, not raised)
        out.append((k, 0, "connect", None, None, f"{type(e).__name__}: {e}"))
        return
    for step, (op, args) in enumerate(script(k, pictures)):
        if time.monotonic() > deadline:
            out.append((k, step, op, None, None, "skipped: the run's time limit was reached"))
            continue
        try:
            seconds, result = call(client, op, args, min(timeout, max(1.0, deadline - time.monotonic())))
            out.append((k, step, op, seconds, result, None))
        except Exception as e:                                          # noqa: BLE001
            out.append((k, step, op, None, None, f"{type(e).__name__}: {str(e)[:200]}"))
    if hasattr(client, "close"):
        client.close()


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))]


def level(url, pid, n, pictures, reference, timeout, deadline):
    """Sessions 0..n-1 at once; returns a row of figures and the list of problems."""
    peak_reset = reset_peak(pid) if pid else False
    out, threads = [], []
    start = time.perf_counter()
    for k in range(n):
        t = threading.Thread(target=run_session, args=(url, k, pictures, timeout, deadline, out), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic() + 30))
    wall = time.perf_counter() - start
    problems, mismatches = [], 0
    errors = [r for r in out if r[5]]
    problems += [f"N={n} session {k} step {step} {op}: {error}" for k, step, op, _, _, error in errors]
    for k, step, op, _, result, error in out:
        if error is None:
            why = differs(reference[(k, step)], result)
            if why:
                mismatches += 1
                problems.append(f"N={n} session {k} step {step} {op}: differs from alone: {why}")
    lat = {op: [s for _, _, o, s, _, e in out if e is None and o == op] for op in ("predistort", "train")}
    done = [s for _, _, _, s, _, e in out if e is None]
    row = {"n": n, "requests": n * len(script(0, pictures)), "done": len(done), "errors": len(errors),
           "mismatches": mismatches, "wall_s": wall, "throughput": len(done) / wall if wall else 0.0,
           "p50_predistort": percentile(lat["predistort"], 50), "p95_predistort": percentile(lat["predistort"], 95),
           "p50_train": percentile(lat["train"], 50), "p95_train": percentile(lat["train"], 95),
           "p50_all": percentile(done, 50), "p95_all": percentile(done, 95),
           "peak_rss_mb": memory_mb(pid, "VmHWM") if pid else None, "peak_reset": peak_reset,
           "rss_end_mb": memory_mb(pid, "VmRSS") if pid else None}
    return row, problems


def alone(url, sessions, pictures, timeout, deadline):
    """Every script, one session at a time: the reference results."""
    reference, problems = {}, []
    for k in range(sessions):
        out = []
        run_session(url, k, pictures, timeout, deadline, out)
        for kk, step, op, _, result, error in out:
            if error:
                problems.append(f"alone: session {kk} step {step} {op}: {error}")
            else:
                reference[(kk, step)] = result
    return reference, problems


def fmt(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(rows, args, model_note, problems, total_s):
    lines = [
        "# Load: concurrent gradio_client sessions",
        "",
        f"`python bench/load.py --n {','.join(map(str, args.n))}` on {date.today().isoformat()}: "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}; app settings as "
        f"deployed (one training and one render at a time); default model: {model_note}. Total {total_s:.0f} s.",
        "",
        "Each session: /predistort (spp 8) → /train (16×16, 2 iterations, spp 2, its own seed) → 2 × /predistort "
        "with the model it just trained. Latency = submit → result, queue waits included. *Mismatches*: results "
        f"that differ from the same session run alone (metrics or losses by more than {TOLERANCE:g}, images by "
        f"more than {PIXEL_TOLERANCE} level) — cross-talk between visitors. Peak RSS: the server's VmHWM during "
        "the level.",
        "",
        "| N sessions | requests | errors | mismatches | wall (s) | throughput (req/s) | /predistort p50 / p95 (s) "
        "| /train p50 / p95 (s) | all p50 / p95 (s) | peak server RSS (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['n']} | {r['requests']} | {r['errors']} | {r['mismatches']} | {fmt(r['wall_s'], 1)} | "
                     f"{fmt(r['throughput'])} | {fmt(r['p50_predistort'])} / {fmt(r['p95_predistort'])} | "
                     f"{fmt(r['p50_train'])} / {fmt(r['p95_train'])} | {fmt(r['p50_all'])} / {fmt(r['p95_all'])} | "
                     f"{fmt(r['peak_rss_mb'], 0)}{'' if r['peak_reset'] else ' (since start)'} |")
    lines += ["", "Problems: " + ("none." if not problems else ""), *[f"- {p}" for p in problems[:50]], ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="1,4,16", type=lambda s: [int(x) for x in s.split(",")],
                        help="concurrent sessions per level, comma-separated (default 1,4,16)")
    parser.add_argument("--url", help="an app already running on this machine (loopback only); default: start one")
    parser.add_argument("--request-timeout", type=float, default=300.0, help="seconds one request may take")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds the whole run may take")
    parser.add_argument("--out", type=Path, default=RESULTS / "load.md")
    args = parser.parse_args(argv)
    if max(args.n) > 64 or min(args.n) < 1:
        parser.error("N must be between 1 and 64")
    deadline = time.monotonic() + args.timeout
    pictures = sorted(str(p) for p in (REPO / "examples").glob("*.png"))
    assert pictures, "no example pictures in examples/"

    global DOWNLOADS
    tmp = tempfile.mkdtemp(prefix="predistort-load-")
    DOWNLOADS = Path(tmp)
    model_note = "the running app's"
    stack = contextlib.ExitStack()
    try:
        if args.url:
            host = urllib.parse.urlparse(args.url).hostname
            if host not in ("127.0.0.1", "localhost", "::1"):
                parser.error("--url must be a loopback address (127.0.0.1 / localhost)")
            url, pid = args.url if args.url.endswith("/") else args.url + "/", \
                pid_listening_on(urllib.parse.urlparse(args.url).port or 80)
        else:
            env, model_note = default_weights_env(tmp)
            app = stack.enter_context(launch_app(tmp, **env))
            url, pid = app.url, app.pid
        print(f"app at {url} (pid {pid}); default model: {model_note}", flush=True)
        start = time.perf_counter()
        reference, problems = alone(url, max(args.n), pictures, args.request_timeout, deadline)
        print(f"alone: {len(reference)} results in {time.perf_counter() - start:.0f} s", flush=True)
        rows = []
        for n in args.n:
            row, found = level(url, pid, n, pictures, reference, args.request_timeout, deadline)
            rows.append(row)
            problems += found
            print(f"N={n}: {row['done']}/{row['requests']} done, {row['errors']} errors, {row['mismatches']} "
                  f"mismatches, {row['throughput']:.2f} req/s, p50 {fmt(row['p50_all'])} s, p95 "
                  f"{fmt(row['p95_all'])} s, peak RSS {fmt(row['peak_rss_mb'], 0)} MB", flush=True)
        text = markdown(rows, args, model_note, problems, time.perf_counter() - start)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(text)
        return 0 if not problems else 1
    except Exception:
        traceback.print_exc()
        return 2
    finally:
        stack.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
