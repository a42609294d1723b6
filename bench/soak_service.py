"""Memory of the pre-distortion itself, without Gradio: the /predistort work of bench/soak.py, called directly.

    python bench/soak_service.py                 # 800 calls with the bundled default model, spp 32
    python bench/soak_service.py --calls 200 --every 20

bench/soak.py measures the whole server. When its RSS creeps, this tells whose memory it is: here one
:class:`predistort.service.Session` pre-distorts ``examples/*.png`` in turn (the default model, the renderer,
``dr.wrap`` without gradients, the metrics and figures), in this process, with no web server around it. Its
RSS (VmRSS of /proc/self/status, after ``gc.collect()``, in MB of 10⁶ bytes as bench/soak.py reports the
server's) is sampled every ``--every`` calls. A flat curve here and a rising one in bench/soak.py puts the
growth in the web layer. Writes bench/results/soak_service.md.
"""
import argparse
import gc
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(REPO), str(REPO / "bench")) if p not in sys.path]

from load import memory_mb  # noqa: E402

RESULTS = REPO / "bench" / "results"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=800)
    parser.add_argument("--spp", type=int, default=32, help="preview samples per pixel (the app's default)")
    parser.add_argument("--every", type=int, default=50, help="sample the RSS every this many calls")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak_service.md")
    args = parser.parse_args(argv)

    from predistort.service import Session
    from predistort.settings import Settings
    session = Session(Settings(default_weights="default"))
    pictures = sorted(str(p) for p in (REPO / "examples").glob("*.png"))
    samples, seconds, start = [], [], time.perf_counter()
    for i in range(args.calls):
        t0 = time.perf_counter()
        session.predistort(pictures[i % len(pictures)], spp=args.spp)
        seconds.append(time.perf_counter() - t0)
        if i % args.every == 0 or i == args.calls - 1:
            gc.collect()
            samples.append((i + 1, memory_mb(os.getpid(), "VmRSS")))
            print(f"[soak_service] call {i + 1}: RSS {samples[-1][1]:.0f} MB", file=sys.stderr, flush=True)

    rss = [mb for _, mb in samples]
    half = rss[len(rss) // 2:]
    text = "\n".join([
        "# Soak without Gradio: predistort.service alone", "",
        f"`python bench/soak_service.py --calls {args.calls} --spp {args.spp} --every {args.every}` on "
        f"{date.today().isoformat()}; {args.calls} pre-distortions of examples/*.png in turn (bundled default "
        f"model) in {time.perf_counter() - start:.0f} s, median {statistics.median(seconds):.3f} s per call.", "",
        f"RSS after call 1: {rss[0]:.0f} MB; min {min(rss):.0f}, max {max(rss):.0f}, end {rss[-1]:.0f} MB; "
        f"spread over the second half {max(half) - min(half):.0f} MB.", "",
        "RSS every %d calls (MB): %s" % (args.every, ", ".join(f"{mb:.0f}" for mb in rss)), ""])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
