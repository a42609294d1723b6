"""How closely does the probed light transport reproduce real renders, for each of the probe's settings?

    python bench/probe_accuracy.py                     # 256², spp 1024 (~3 min, 2 cores)
    python bench/probe_accuracy.py --resolution 512

The probe (:func:`predistort.probe.probe`) has three knobs that trade time and size for accuracy: ``prune``
(entries of A dropped below it), ``calibrate_resolution`` / ``calibrate_spp`` (the two renders that measure
the environment light reaching the plane) and ``supersampling`` (camera samples per pixel and axis). For
each setting below this measures A·T + b against two real Mitsuba renders (spp ``--spp``, two seeds) of a
random texture (every texel independent: the hardest case) and of a photograph, as the mean |difference|
over both seeds. The renders' own noise is given for scale: the mean |difference| of the two seeds' renders
divided by √2. And what it means for the pre-distortion: the instant solve on each transport, for
``--photos`` unseen photographs, scored as bench/scale.py scores (mean per-photo ratio of real-render L1s
with and without it; spp ``--score-spp``, one seed). Written to ``bench/results/probe_accuracy.md``/``.json``.
"""
import argparse
import sys
import time

import common
from common import RESULTS, markdown_table
from datasets import PHOTOS, unseen_photos

import torch

VARIANTS = {   # name -> probe() keyword arguments; the first is the probe as it was before issue 13 (above 192²)
    "before issue 13: supersampling 2, prune 1e-4, calibration at R": dict(supersampling=2, prune=1e-4,
                                                                           calibrate_resolution=None),
    "supersampling 2, prune 1e-3, calibration at R": dict(supersampling=2, calibrate_resolution=None),
    "supersampling 2, prune 1e-3, calibration at 128²": dict(supersampling=2),
    "default: supersampling 3, prune 1e-3, calibration at 128²": dict(),
    "calibration at 128², spp 64": dict(calibrate_spp=64),
    "calibration at 64²": dict(calibrate_resolution=64),
    "no calibration": dict(calibrate_spp=0),
    "prune 3e-3": dict(prune=3e-3),
    "supersampling 4": dict(supersampling=4),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--spp", type=int, default=1024, help="samples per pixel of the reference renders")
    p.add_argument("--photos", type=int, default=4, help="unseen photos solved on each transport")
    p.add_argument("--score-spp", type=int, default=256, help="samples per pixel of the scoring renders")
    p.add_argument("--out", help="folder for probe_accuracy.md/.json (default bench/results)")
    args = p.parse_args(argv)
    from predistort import probe, solve
    from predistort.render import Renderer
    from predistort.scene import DEFAULT

    res = args.resolution
    renderer = Renderer(DEFAULT.replace(resolution=res))
    textures = {"random texels": torch.rand(res, res, 3, generator=torch.Generator().manual_seed(1)),
                "astronaut": unseen_photos(res, ["astronaut"])[0]}
    real = {k: [renderer.render(t, spp=args.spp, seed=s).cpu() for s in (11, 12)] for k, t in textures.items()}
    noise = {k: ((r[0] - r[1]).abs().mean() / 2 ** 0.5).item() for k, r in real.items()}
    photos = unseen_photos(res, PHOTOS[:args.photos])
    seed = 1_000_003
    none = [common.l1(renderer.render(x, spp=args.score_spp, seed=seed).cpu(), x) for x in photos]
    rows, data = [], {}
    for name, kwargs in VARIANTS.items():
        kwargs = {**kwargs}
        if "calibrate_resolution" in kwargs and kwargs["calibrate_resolution"] is None:
            kwargs["calibrate_resolution"] = res
        start = time.perf_counter()
        transport = probe.probe(renderer.config, renderer=renderer, **kwargs)
        seconds = time.perf_counter() - start
        errors = {k: sum((transport.render(t) - r).abs().mean().item() for r in real[k]) / 2
                  for k, t in textures.items()}
        ratio = sum(common.l1(renderer.render(solve.solve(x, transport), spp=args.score_spp, seed=seed).cpu(), x)
                    / n for x, n in zip(photos, none)) / len(photos)
        data[name] = {"kwargs": kwargs, "seconds": seconds, "nnz_per_pixel": transport.nnz / res ** 2,
                      "l1": errors, "solve_ratio": ratio}
        rows.append([name, f"{seconds:.1f}", f"{transport.nnz / res ** 2:.1f}",
                     *(f"{errors[k]:.5f}" for k in textures), f"{ratio:.4f}"])
        print(f"[probe_accuracy] {name}: {seconds:.1f} s, " + ", ".join(f"{k} {v:.5f}" for k, v in errors.items()),
              file=sys.stderr, flush=True)
    command = "python bench/probe_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = "\n".join([
        f"## The probed light transport against real renders ({res}×{res})", "",
        *[f"{line}  " for line in common.header(command.strip())], "",
        markdown_table(["probe setting", "probe s", "entries per pixel",
                        *(f"L1 vs render: {k}" for k in textures),
                        f"instant solve: L1 ratio ({len(photos)} photos)"], rows), "",
        f"Real renders: spp {args.spp}, seeds 11 and 12; their own noise (mean |difference| / √2): "
        + ", ".join(f"{k} {v:.5f}" for k, v in noise.items())
        + f". Instant solve: its default schedule at {res}², scored on {', '.join(PHOTOS[:args.photos])} "
        f"(spp {args.score_spp}, seed {seed}). Probe seconds share the CPU with whatever else ran."])
    print(md)
    path = common.save_report("probe_accuracy", md, {"command": command.strip(), "machine": common.machine(),
                                                     "resolution": res, "spp": args.spp, "noise": noise,
                                                     "variants": data}, args.out or RESULTS)
    print(f"\nWrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
