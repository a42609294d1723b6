"""Can refinement improve on the instant solve? Refine the solve's texture with several step settings and
score each result twice: by refinement's own fixed-seed render and by the benchmark's spp-512 render.

    python bench/refine_settings.py              # 3 unseen photos, 128×128, 20 s per refinement (~5 min)
    python bench/refine_settings.py --photos 8 --seconds 10

Refinement (:mod:`predistort.refine`) keeps a candidate only when its fixed-seed score (``EVAL_SPP`` samples,
seed ``EVAL_SEED``) beats the best so far by ``min_gain`` (default 1%; 0 in the "any gain kept" rows). When the start already sits at the noise floor of the per-picture
gradient, a candidate can beat the start on that one seed and still be worse in truth; this script measures
whether that happens, per setting: the mean fixed-seed L1 and the mean spp-512 L1 (the seed of
``bench/quality.py``), each as a ratio to the solve's own. Ratios below 1 are gains. It also says whether
refinement keeps to its time budget: the longest run's seconds, scoring included, against ``--seconds`` (the
tests give refinement steps, not seconds, so this is where its clock is checked). Writes
``bench/results/refine_settings.md`` and ``.json``.
"""
import argparse
import sys
from pathlib import Path

import common
from common import RESULTS, markdown_table
from datasets import PHOTOS, unseen_photos
from quality import FULL

SETTINGS = {                       # name -> keyword arguments of predistort.refine.refine
    "default (spp 4, lr 3e-3, 1% margin)": {},
    "spp 16, lr 1e-3, 1% margin": {"spp": 16, "lr": 1e-3},
    "spp 16, lr 1e-3, any gain kept": {"spp": 16, "lr": 1e-3, "min_gain": 0.0},
    "spp 4, lr 5e-4, any gain kept": {"spp": 4, "lr": 5e-4, "min_gain": 0.0},
}
EVAL_SPP, EVAL_SEED = FULL.eval_spp, FULL.eval_seed     # bench/quality.py's scoring renders


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=3, help="how many unseen photos (of %d)" % len(PHOTOS))
    p.add_argument("--seconds", type=float, default=20.0, help="refinement budget per photo")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for refine_settings.md/.json")
    args = p.parse_args(argv)

    from predistort import refine, solve
    from predistort.render import Renderer
    from predistort.scene import DEFAULT

    config = DEFAULT.replace(resolution=args.resolution)
    renderer = Renderer(config)
    transport = solve.transport_for(config, renderer)
    photos = unseen_photos(args.resolution, PHOTOS[:args.photos])
    starts = [solve.solve(photo, transport) for photo in photos]

    def true_l1(texture, target):
        return common.score(renderer, [target], [texture], EVAL_SPP, EVAL_SEED)[0]["l1"]

    solve_true = [true_l1(s, t) for s, t in zip(starts, photos)]
    solve_fixed = [refine.score(renderer, s, t) for s, t in zip(starts, photos)]
    rows, data = [], {}
    for name, kwargs in SETTINGS.items():
        runs = [refine.refine(renderer, t, s, seconds=args.seconds, **kwargs) for s, t in zip(starts, photos)]
        fixed = [r.loss for r in runs]
        true = [true_l1(r.texture, t) for r, t in zip(runs, photos)]
        kept = sum(r.loss < r.start_loss for r in runs)
        longest = max(r.seconds for r in runs)
        data[name] = {"kwargs": kwargs, "steps": [r.steps for r in runs], "seconds": [r.seconds for r in runs],
                      "within_budget": longest <= args.seconds, "fixed_seed_l1": fixed, "spp512_l1": true,
                      "improved_on_fixed_seed": kept}
        rows.append([name, f"{sum(r.steps for r in runs) / len(runs):.0f}",
                     f"{longest:.1f}" + ("" if longest <= args.seconds else " (over)"), f"{kept}/{len(runs)}",
                     f"{sum(fixed) / len(fixed):.5f}", f"{sum(fixed) / sum(solve_fixed):.4f}",
                     f"{sum(true) / len(true):.5f}", f"{sum(true) / sum(solve_true):.4f}"])
        print(f"[refine_settings] {name}: {rows[-1][1:]}", file=sys.stderr, flush=True)

    command = " ".join(["python bench/refine_settings.py", *(sys.argv[1:] if argv is None else argv)])
    md = "\n".join([
        f"## Refinement from the instant solve ({args.resolution}×{args.resolution}, {args.seconds:g} s per photo)",
        "", *[f"{line}  " for line in common.header(command)], "",
        f"Instant solve (the start): fixed-seed L1 {sum(solve_fixed) / len(solve_fixed):.5f}, "
        f"spp-512 L1 {sum(solve_true) / len(solve_true):.5f}; photos: {', '.join(PHOTOS[:args.photos])}.", "",
        markdown_table(["setting", "steps", f"longest s (budget {args.seconds:g})", "kept a candidate",
                        "fixed-seed L1", "÷ solve", "spp-512 L1", "÷ solve"], rows), "",
        "Fixed-seed L1: refinement's own score (what it keeps the best of). spp-512 L1: bench/quality.py's score. "
        "A ratio below 1 on the fixed seed and above 1 at spp 512 is a gain on noise, not on the picture."])
    print(md)
    common.save_report("refine_settings", md, {"command": command, "machine": common.machine(),
                                                "solve": {"fixed_seed_l1": solve_fixed, "spp512_l1": solve_true},
                                                "settings": data}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
