"""Measure the cost model of predistort.methods.estimate on this machine and rewrite predistort/costs.json.

    python bench/costs.py                 # measure (a few minutes) and rewrite predistort/costs.json
    python bench/costs.py --quick --out /tmp/costs.json     # small sizes, seconds: checks the mechanics

Each constant is fitted (least squares) to timings of the real code path at a few sizes:

- render: one training render and its backward pass (``Renderer.loss_and_grad``) costs
  ``per_texture + per_pixel·R² + per_sample·R²·spp``;
- tutorial: one training iteration of the tutorial layer, beyond its render, costs
  ``per_iteration + per_weight·(R⁴ + R²)``;
- unrolled: the generalising layer's own forward and backward pass costs ``per_pixel·R²`` per picture;
- probe: measuring a scene's light transport (no cache) costs ``fixed + per_pixel·R²``;
- solve: the instant solve of one picture costs ``per_pixel·R²`` (at 128²: the app's training estimate);
- render_primal: a render without backward pass costs ``per_texture + per_pixel·R² + per_sample·R²·spp``;
- apply: pre-distorting one picture costs ``unrolled_per_pixel·R²`` with the generalising layer (16 layers),
  ``solve_per_pixel_iteration·R²·iterations`` with the instant solve, ``tutorial_per_weight·R⁴`` with the
  tutorial layer (the pre-distortion estimate of the page, at 128² to 1024²).

Every timing is the median of a few repetitions after a warm-up (kernel compilation is not a cost the
estimate should carry). The machine and date go into the file with the constants.
"""
import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import common  # noqa: F401  (puts this checkout's predistort first on the path)
import torch

from predistort import load_model, procedural
from predistort.layers import TutorialLayer, UnrolledInverse, for_resolution, instant_model
from predistort.pipeline import apply_model
from predistort.render import Renderer
from predistort.scene import DEFAULT
from predistort.solve import probe, solve
from predistort.train import Recipe, train

COSTS = Path(common.REPO) / "predistort" / "costs.json"


def median_seconds(fn, repeat=3, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def fit(rows, targets):
    """Least-squares coefficients (non-negative by clamping) of targets ≈ rows @ coefficients."""
    a, y = torch.tensor(rows, dtype=torch.float64), torch.tensor(targets, dtype=torch.float64)[:, None]
    return [max(0.0, float(c)) for c in torch.linalg.lstsq(a, y).solution[:, 0]]


def measure(sizes, spps, tutorial_sizes, apply_sizes, repeat):
    renderers = {r: Renderer(DEFAULT.replace(resolution=r)) for r in sorted(set(sizes) | set(tutorial_sizes))}
    pictures = {r: procedural.texture(1, r) for r in renderers}
    out = {}

    rows, times = [], []                                                 # 1. render + backward
    for r in sizes:
        for spp in spps:
            t = median_seconds(lambda: renderers[r].loss_and_grad(pictures[r], pictures[r], spp=spp), repeat)
            rows.append([1.0, r * r, r * r * spp])
            times.append(t)
            print(f"render+backward {r}² spp {spp}: {t:.4f} s", flush=True)
    per_texture, per_pixel, per_sample = fit(rows, times)
    out["render"] = {"per_texture": per_texture, "per_pixel": per_pixel, "per_sample": per_sample}

    def render_cost(r, spp):
        return per_texture + per_pixel * r * r + per_sample * r * r * spp

    rows, times = [], []                                                 # 2. the tutorial layer's own work
    for r in tutorial_sizes:
        torch.manual_seed(0)
        model = TutorialLayer(r)
        t = median_seconds(lambda: train(model, renderers[r], [pictures[r]], Recipe(iterations=1, spp=4)), repeat)
        rows.append([1.0, r ** 4 + r ** 2])
        times.append(max(0.0, t - render_cost(r, 4)))
        print(f"tutorial iteration {r}²: {t:.4f} s", flush=True)
    per_iteration, per_weight = fit(rows, times)
    out["tutorial"] = {"per_iteration": per_iteration, "per_weight": per_weight}

    transports = {}
    probe_rows, probe_times = [], []                                     # 3. probe, without the cache
    probe(renderers[sizes[0]].config, renderer=renderers[sizes[0]])      # compile the tracing kernels first
    for r in sizes:
        t = time.perf_counter()
        transports[r] = probe(renderers[r].config, renderer=renderers[r])
        t = time.perf_counter() - t
        probe_rows.append([1.0, r * r])
        probe_times.append(t)
        print(f"probe {r}²: {t:.3f} s", flush=True)

    rows, solve_times, layer_times = [], [], []                          # 4. solve; 5. the unrolled layer
    for r in sizes:
        solve_times.append(median_seconds(lambda: solve(pictures[r], transports[r]), repeat))
        model = UnrolledInverse.from_transport(transports[r], depth=16)
        model.optimizer(0.02)

        def step():
            model(pictures[r][None]).sum().backward()
        layer_times.append(median_seconds(step, repeat))
        rows.append([r * r])
        print(f"solve {r}²: {solve_times[-1]:.4f} s; unrolled forward+backward {r}²: {layer_times[-1]:.4f} s",
              flush=True)
    out["solve"] = {"per_pixel": fit(rows, solve_times)[0]}
    out["unrolled"] = {"per_pixel": fit(rows, layer_times)[0]}

    # 6. pre-distortion at the sizes the page offers: probe, apply, renders without backward pass
    bundled = load_model("default")
    render_rows, render_times = [], []
    unrolled_rows, unrolled_times, instant_rows, instant_times = [], [], [], []
    for r in apply_sizes:
        renderer = renderers.get(r) or Renderer(DEFAULT.replace(resolution=r))
        picture = pictures.get(r)
        picture = procedural.texture(1, r) if picture is None else picture
        t = time.perf_counter()
        transport = transports.get(r) or probe(renderer.config, renderer=renderer)
        if r not in transports:
            probe_rows.append([1.0, r * r])
            probe_times.append(time.perf_counter() - t)
            print(f"probe {r}²: {probe_times[-1]:.3f} s", flush=True)
        for spp in spps:
            t = median_seconds(lambda: renderer.render(picture, spp=spp), repeat)
            render_rows.append([1.0, r * r, r * r * spp])
            render_times.append(t)
            print(f"render {r}² spp {spp}: {t:.4f} s", flush=True)
        layer = for_resolution(bundled, transport)
        unrolled_rows.append([r * r * layer.depth / 16])
        unrolled_times.append(median_seconds(lambda: apply_model(layer, picture), repeat))
        instant = instant_model(transport)
        instant_rows.append([r * r * instant.depth])
        instant_times.append(median_seconds(lambda: apply_model(instant, picture), repeat))
        print(f"apply {r}²: generalising layer {unrolled_times[-1]:.4f} s, instant solve {instant_times[-1]:.4f} s "
              f"({instant.depth} iterations)", flush=True)
    fixed, per_pixel_probe = fit(probe_rows, probe_times)
    out["probe"] = {"fixed": fixed, "per_pixel": per_pixel_probe}
    per_texture, per_pixel, per_sample = fit(render_rows, render_times)
    out["render_primal"] = {"per_texture": per_texture, "per_pixel": per_pixel, "per_sample": per_sample}
    tutorial_rows, tutorial_times = [], []
    for r in tutorial_sizes:
        torch.manual_seed(0)
        model = TutorialLayer(r)
        picture = procedural.texture(1, r)
        tutorial_rows.append([float(r) ** 4])
        tutorial_times.append(median_seconds(lambda: apply_model(model, picture), repeat))
    out["apply"] = {"unrolled_per_pixel": fit(unrolled_rows, unrolled_times)[0],
                    "solve_per_pixel_iteration": fit(instant_rows, instant_times)[0],
                    "tutorial_per_weight": fit(tutorial_rows, tutorial_times)[0]}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, one repetition (checks the mechanics)")
    p.add_argument("--out", type=Path, default=COSTS, help="where to write the constants (default: %(default)s)")
    args = p.parse_args(argv)
    if args.quick:
        costs = measure(sizes=[16, 32], spps=[1, 4], tutorial_sizes=[16, 24], apply_sizes=[32, 48], repeat=1)
    else:
        costs = measure(sizes=[32, 64, 128], spps=[4, 16], tutorial_sizes=[32, 64, 96], apply_sizes=[256, 512],
                        repeat=3)
    command = "python bench/costs.py" + (" --quick" if args.quick else "")
    data = {"_comment": "Cost model of predistort.methods.estimate: seconds on the machine below. Rewritten by "
                        "`python bench/costs.py`.",
            "command": command, "date": date.today().isoformat(), "machine": common.machine(), **costs}
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data, indent=2))
    print(f"\nWrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
