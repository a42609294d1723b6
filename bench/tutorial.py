"""The tutorial's recipe run two ways in one benchmark: by the tutorial's own code, and by predistort.train.

    python bench/tutorial.py            # 128×128, 100 iterations each (~30 min on 2 cores, mostly the tutorial's code)
    python bench/tutorial.py --quick    # 32×32, 3 iterations each (under a minute)

Both train the tutorial's layer (FC R²×R² + sigmoid per channel) on the tutorial's four textures with its
recipe: Adam lr 2e-4, L1, spp 4, render seed i·4+j, ``torch.manual_seed(0)`` before the model is built. Each
runs in a fresh process (peak memory is per process). Printed, and written to
``bench/results/tutorial.md`` / ``.json``: seconds per iteration (mean over all iterations, the first one's
kernel compilation included) and its ratio to the tutorial's code, peak memory, the first three and the last
training losses, and the L1/PSNR at spp 512 of the four textures' renders before (plain texture) and after
(pre-distorted texture).

Checks (exit status 1 if one fails): both implementations follow the same loss trajectory, and at full size
the final loss is within 10% of 0.2737, the tutorial's code's own final loss measured here with seed 0.
"Same trajectory" means: equal to 1e-5 (relative) over the first 10 iterations, and final losses within 1%
of each other. Not equal to the last digit throughout, because neither implementation is bitwise
reproducible: Dr.Jit's multi-threaded scatter-adds (film, texture gradient) sum in varying order, so two runs
of the tutorial's own code differ by ~1e-7 at first, and 100 Adam steps amplify such differences: measured
here, two runs of the tutorial's code ended at 0.2737 and 0.2743, and the two implementations agree to
1e-7 for 25 iterations, then drift apart by up to 3e-3.

    python bench/tutorial.py --from-json bench/results/tutorial.json    # re-print a saved run's report
"""
import argparse
import json
import sys
from dataclasses import asdict, replace
from datetime import date
from pathlib import Path

import common
from common import RESULTS, markdown_table
from datasets import require_tutorial_textures
from quality import EFFICIENT, FULL, QUICK, TUTORIAL, run_methods, summarise

TUTORIAL_FINAL_LOSS = 0.2737       # the tutorial's code, 100 iterations, seed 0, on this project's machine
EQUAL_ITERATIONS, EQUAL_RTOL = 10, 1e-5   # the trajectories must agree this closely this long ...
FINAL_RTOL = 0.01                         # ... and end this close (run-to-run noise of the tutorial's code: 2e-3)


def checks(results, settings):
    """``[(text, ok)]``: same loss trajectory; at full size, final losses near the tutorial's 0.2737."""
    a, b = results[TUTORIAL]["losses"], results[EFFICIENT]["losses"]
    first = max(abs(x - y) / abs(x) for x, y in zip(a[:EQUAL_ITERATIONS], b[:EQUAL_ITERATIONS]))
    worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
    final = abs(a[-1] - b[-1]) / abs(a[-1])
    out = [(f"same loss trajectory: relative difference {first:.1e} over the first {min(len(a), EQUAL_ITERATIONS)} "
            f"iterations (< {EQUAL_RTOL:g}), {final:.1e} at the last (< {FINAL_RTOL:g}; largest {worst:.1e})",
            first < EQUAL_RTOL and final < FINAL_RTOL)]
    if settings["resolution"] == 128 and settings["iterations"] == 100:
        for name in (TUTORIAL, EFFICIENT):
            loss = results[name]["losses"][-1]
            out.append((f"{name}: final loss {loss:.4f} within 10% of {TUTORIAL_FINAL_LOSS}",
                        abs(loss - TUTORIAL_FINAL_LOSS) <= 0.1 * TUTORIAL_FINAL_LOSS))
    return out


def report(results, settings, command, machine, day):
    """The markdown report of a run and its checks."""
    ref, before = results[TUTORIAL], results["none"]["summary"]["tutorial"]
    rows = []
    for name in (TUTORIAL, EFFICIENT):
        r, after = results[name], results[name]["summary"]["tutorial"]
        losses = r["losses"]
        rows.append([name, f"{r['seconds_per_iteration']:.2f}",
                     f"{ref['seconds_per_iteration'] / r['seconds_per_iteration']:.1f}×",
                     f"{r['peak_rss_gb']:.2f}", f"{r['peak_rss_gb'] / ref['peak_rss_gb']:.2f}×",
                     ", ".join(f"{v:.4f}" for v in losses[:3]), f"{losses[-1]:.4f}",
                     f"{before['l1']:.4f} → {after['l1']:.4f}", f"{before['psnr']:.2f} → {after['psnr']:.2f}"])
    found = checks(results, settings)
    md = "\n".join([
        f"## The tutorial's recipe: tutorial's code vs predistort.train ({settings['resolution']}×"
        f"{settings['resolution']}, {settings['iterations']} iterations)", "",
        f"Command: `{command}`  ", f"Machine: {machine}  ", f"Date: {day}  ", "",
        markdown_table(["implementation", "s/iteration", "speed", "peak GB", "memory", "losses 1-3",
                        "final loss", f"L1 before → after (spp {settings['eval_spp']})", "PSNR dB before → after"],
                       rows),
        "",
        *[f"- {'OK' if ok else 'FAILED'}: {text}" for text, ok in found], "",
        "s/iteration: mean over all iterations. Peak GB: ru_maxrss of each implementation's own process "
        "(GB = 10⁹ bytes). Speed and memory are relative to the tutorial's code in the same run (the CPU is "
        "shared, so absolute times vary from run to run)."])
    return md, found


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="32×32, 3 iterations")
    p.add_argument("--iterations", type=int, help="training iterations (default 100, 3 with --quick)")
    p.add_argument("--out", type=Path, help="folder for tutorial.md/.json/.log (default bench/results, "
                                            "bench/results/quick with --quick)")
    p.add_argument("--from-json", type=Path, help="re-print the report of a saved run (its tutorial.json)")
    args = p.parse_args(argv)

    if args.from_json:                          # a saved run: its own numbers, command, machine and date
        data = json.loads(args.from_json.read_text())
        md, found = report(data["results"], data["settings"], data["command"], data["machine"],
                           data.get("date", "(not recorded)"))
        print(md)
        return 0 if all(ok for _, ok in found) else 1

    require_tutorial_textures()
    settings = replace(QUICK if args.quick else FULL, unseen=0)
    if args.iterations:
        settings = replace(settings, iterations=args.iterations)
    out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "tutorial.log", "w") as log:
        results = summarise(run_methods(["none", TUTORIAL, EFFICIENT], settings, log=log))

    command = "python bench/tutorial.py" + (" --quick" if args.quick else "")
    day = date.today().isoformat()
    md, found = report(results, asdict(settings), command, common.machine(), day)
    print(md)
    path = common.save_report("tutorial", md, {"settings": asdict(settings), "command": command,
                                               "machine": common.machine(), "date": day, "results": results,
                                               "checks": [{"check": t, "ok": ok} for t, ok in found]}, out)
    print(f"\nWrote {path} and {path.with_suffix('.json')}", file=sys.stderr)
    return 0 if all(ok for _, ok in found) else 1


if __name__ == "__main__":
    sys.exit(main())
