"""Is the glass ellipsoid's gap to issue 32's bar the solver's or the physics'? Longer solves, an L1 solve, the floor.

On the world of ``bench/objects.py --kind glass-ellipsoid`` (its :func:`objects.make_world`, the same mesh), this
script takes the project's own light transport (``render(T) = A·T + b``, :func:`predistort.probe_cache.transport_for`
at the world's film) and solves each picture several ways:

- ``instant``: the project's solve as ``apply`` runs it (:func:`predistort.worldaim.instant`: the schedule of
  :func:`predistort.solve.iterations_for`, Huber δ = :data:`predistort.solve.HUBER_DELTA`);
- ``x5``, ``x10``: the same FISTA run 5× and 10× as many iterations;
- ``l1``: after ``x10``, Huber continuation δ = 1e-3 → 3e-4 → 1e-4 (300 iterations each, momentum restarted):
  the L1 objective to convergence, the best print under the shared-texel constraint that this solver finds.

For every solve it reports the **predicted** score (:func:`predistort.worldaim.predicted_score`: the transport's
render against the project's target, over the frame the target covers and over the silhouette) and the
**rendered** score the way ``bench/objects.py`` scores (Mitsuba at ``--spp``, L1 against the object-free view
rendered at the same spp, over the film and over the silhouette, ÷ the plain print's), and a **certified lower
bound** on the L1 objective: for any y with |y| ≤ 1 per pixel and colour, weak duality gives

    min_{0 ≤ T ≤ 1} Σ |A·T + b − t|  ≥  Σ y·(b − t) + Σ_texels min(0, (Aᵀy)_texel)

and y = clamp(r / δ, −1, 1) of the last Huber solve is the natural choice. The lower bound is on the unclamped
L1 of the transport's render (the predicted score clips the render to [0, 1], which can only lower it), so the
"floor" column is a bracket [certified lower bound, achieved] in the transport's terms, and the achieved print's
rendered score is the floor in the bench's terms (Mitsuba noise at ``--spp`` included; the transport is the
probe's measurement at its own spp, noise-free in the sense that A is an average).

With ``--clean-spp N`` it also renders at N spp the object-free view, the plain print, the instant and l1
prints, and an all-black and an all-white print: the ratios with less Monte Carlo noise, the transport's model
error mean |prediction − render|, and its bias on the black print (``b``) and the white one (``A·1 + b``)
inside the silhouette and on its rim. ``--supersampling`` and ``--calibrate-resolution`` probe the world
afresh with those settings (not cached), to see whether the probe's sampling or its calibration is the cause.

    python bench/glass_floor.py                                   # ellipsoid 100 mm before the print, 1024 print
    python bench/glass_floor.py --glass-distance 40 --resolution 512
    python bench/glass_floor.py --world W.json                    # a world of bench/objects.py (--write-world)
    python bench/glass_floor.py --only instant --clean-spp 512 --supersampling 14 --pictures examples/shapes.png

Limits: glass worlds of ``bench/objects.py`` only; one Mitsuba job at a time (the probe, then the renders).
Times are wall-clock on this machine (shared cores: compare them with each other, not with other pages).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import objects as ob  # noqa: E402  (the bench's own scenes, renders and metric; sets llvm_ad_rgb)

from predistort.probe import _transpose, probe  # noqa: E402
from predistort.probe_cache import transport_for  # noqa: E402
from predistort.scene import SceneConfig  # noqa: E402
from predistort.solve import HUBER_DELTA, iterations_for, rows_of, solve_rows  # noqa: E402
from predistort.worldaim import aim, fill_between, instant, predicted_score, seen_texels  # noqa: E402
from predistort.worldsolve import load_picture  # noqa: E402

CONTINUATION = (1e-3, 3e-4, 1e-4)   # Huber thresholds of the L1 solve, each run CONTINUATION_ITERATIONS
CONTINUATION_ITERATIONS = 300       # ... iterations from the previous one's texture (momentum restarted)
RIM_PX = 4                          # --clean-spp: the silhouette's rim, this many pixels wide, apart from its inside


def l1_and_bound(A, b, t, texture, texture_shape, delta):
    """``(achieved, lower)``: the mean |A·T + b − t| of `texture` over the rows, and the certified lower bound
    on its minimum over 0 ≤ T ≤ 1 (module doc) with y = clamp(r / delta, −1, 1), both per pixel and colour."""
    x = texture.reshape(-1, 3)
    r = torch.sparse.mm(A, x) + b[:, None] - t
    y = (r / delta).clamp(-1, 1)
    At = torch.sparse_csr_tensor(*_transpose(A.crow_indices(), A.col_indices(), A.values(), A.shape[1]),
                                 (A.shape[1], A.shape[0]))
    aty = torch.sparse.mm(At, y)
    lower = float((y * (b[:, None] - t)).sum() + aty.clamp(max=0).sum())
    n = r.numel()
    return float(r.abs().sum()) / n, lower / n


def solves(goal, transport, only=None):
    """The textures of each solve (module doc; `only` these names, None: all) and their solve times:
    {name: (texture, seconds, delta)}."""
    A, b = rows_of(transport, goal.pixels)
    t = goal.goal.reshape(-1, 3)[goal.pixels.reshape(-1)]
    seen = seen_texels(transport, goal.pixels)
    side = max(transport.film_size)
    n, n2 = iterations_for(side)
    out = {}
    s = time.perf_counter()
    out["instant"] = (instant(goal, transport), time.perf_counter() - s, HUBER_DELTA)
    for k in (5, 10):
        if only and f"x{k}" not in only and not (k == 10 and "l1" in only):
            continue
        s = time.perf_counter()
        raw = solve_rows(A, b, t, goal.start, transport.texture_shape, side, n * k, n2)
        out[f"x{k}"] = (fill_between(raw, seen), time.perf_counter() - s, HUBER_DELTA)
    if only and "l1" not in only:
        return out, (A, b, t)
    s = time.perf_counter()
    for delta in CONTINUATION:
        raw = solve_rows(A, b, t, raw, transport.texture_shape, side, CONTINUATION_ITERATIONS, 0, delta)
    out["l1"] = (fill_between(raw, seen), out["x10"][1] + time.perf_counter() - s, CONTINUATION[-1])
    return out, (A, b, t)


def silhouette_ratio(texture, goal, transport, silhouette):
    """The predicted error ratio over the target's pixels inside the silhouette (as predicted_score, there)."""
    mask = goal.covered & silhouette
    after = (transport.render(texture).clamp(0, 1) - goal.target).abs()[mask].mean()
    before = (transport.render(goal.plain).clamp(0, 1) - goal.target).abs()[mask].mean()
    return float(after / before.clamp_min(1e-9))


def clean_scores(world, world_dir, free, plain, goal, transport, silhouette, textures, spp):
    """At `spp` samples (seed 2): the error ratios of `textures` against the object-free view (frame,
    silhouette, the frame outside the silhouette), the transport's model error mean |prediction − render|
    for each (and the plain print), and the project's target against the object-free view, each over the
    frame and the silhouette; the transport's bias on an all-black and an all-white print, inside the silhouette
    and on its rim."""
    sil = silhouette
    out_ = ~silhouette
    wanted = ob.render(free, plain, spp, seed=2, world_dir=world_dir)
    renders = {"plain": (torch.from_numpy(plain).float() / 255, ob.render(world, plain, spp, seed=2,
                                                                          world_dir=world_dir))}
    for key, texture in textures.items():
        renders[key] = (texture, ob.render(world, to_uint8(texture), spp, seed=2, world_dir=world_dir))
    base = renders["plain"][1]
    scores = {"target_vs_object_free": [round(ob.l1(goal.target.numpy(), wanted), 4),
                                        round(ob.l1(goal.target.numpy(), wanted, sil), 4)]}
    # The transport's bias, prediction − render, for an all-black print (b alone) and an all-white one (A·1 + b),
    # inside the silhouette (eroded by RIM_PX) and on its rim.
    inner = ndimage.binary_erosion(sil, iterations=RIM_PX)
    for key, value in (("black", 0), ("white", 255)):
        flat = np.full((*transport.texture_shape, 3), value, np.uint8)
        img = ob.render(world, flat, spp, seed=2, world_dir=world_dir)
        bias = (transport.render(torch.full(flat.shape, value / 255.0)).numpy() - img).mean(-1)
        scores[f"bias_{key}_interior_rim"] = [round(float(bias[m].mean()), 4) for m in (inner, sil & ~inner)]
    for key, (texture, img) in renders.items():
        predicted = transport.render(texture).numpy()
        scores[key] = {"ratio": [round(ob.l1(img, wanted, m) / ob.l1(base, wanted, m), 4)
                                 for m in (None, sil, out_)],
                       "l1": [round(ob.l1(img, wanted, m), 4) for m in (None, sil, out_)],
                       "model_error": [round(ob.l1(predicted, img, m), 4) for m in (None, sil)]}
    return scores


def to_uint8(texture):
    return (texture.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", help="a glass world of bench/objects.py (--write-world), else its glass-ellipsoid")
    ap.add_argument("--glass-distance", type=float, default=100.0, help="the ellipsoid's centre → the print, mm")
    ap.add_argument("--pictures", nargs="+", default=[str(ob.REPO / f"examples/{p}.png")
                                                      for p in ("landscape", "shapes", "text")])
    ap.add_argument("--resolution", type=int, default=1024, help="print texels on its long side")
    ap.add_argument("--spp", type=int, default=128, help="samples a pixel of the scoring renders (the bench's)")
    ap.add_argument("--clean-spp", type=int, default=0,
                    help="also render the object-free view, the plain print, instant and l1 at this spp (0: not): "
                         "scores without most of the Monte Carlo noise, and how far the transport's prediction is "
                         "from the render (its model error) and the project's target from the object-free view")
    ap.add_argument("--supersampling", type=int, default=0,
                    help="probe with this many camera samples per pixel and axis (0: the project's own, cached)")
    ap.add_argument("--calibrate-resolution", type=int, default=0,
                    help="probe with the calibration renders at most this size (0: the project's own, cached)")
    ap.add_argument("--only", nargs="+", help="solves to run and render (default all: instant x5 x10 l1)")
    ap.add_argument("--json", help="write the numbers here too")
    args = ap.parse_args()

    folder = Path(tempfile.gettempdir()) / f"glass-floor-{args.glass_distance:g}"     # the same path: a cached probe
    folder.mkdir(exist_ok=True)
    if args.world:
        world = json.loads(Path(args.world).read_text())
        world_dir = Path(args.world).resolve().parent
    else:
        world, world_dir = ob.make_world("glass-ellipsoid", glass_distance=args.glass_distance), folder
        for o in world["objects"]:
            ob.write_ellipsoid_obj(folder / o["file"], **o["_bench_ellipsoid"])
    (world_dir / "glass_floor_world.json").write_text(ob.world_json(world))
    config = SceneConfig.load(world_dir / "glass_floor_world.json").replace(resolution=args.resolution)

    s = time.perf_counter()
    own = {k: v for k, v in (("supersampling", args.supersampling),
                             ("calibrate_resolution", args.calibrate_resolution)) if v}
    transport = probe(config, **own) if own else transport_for(config)
    probe_s = time.perf_counter() - s
    silhouette_t, _ = transport.masks()
    _, silhouette = ob.mirror_mask(world, world_dir)
    free = {**world, "objects": []}
    n = (transport.info.get("settings") or {}).get("supersampling")
    print(f"transport {transport.shape} ({transport.val.numel()} entries, {n}² samples a pixel) in {probe_s:.0f} s; "
          f"silhouette "
          f"{int(silhouette.sum())} px (bench), {int(silhouette_t.sum())} px (probe)", flush=True)
    results = {"world": world, "resolution": args.resolution, "spp": args.spp, "probe_s": probe_s, "pictures": {}}
    for path in args.pictures:
        name = Path(path).stem
        goal = aim(load_picture(path), config, transport, "crop")
        textures, (A, b, t) = solves(goal, transport, args.only)
        plain = ob.plain_print(world, ob.read_picture(path, ob.target_aspect(world)), args.resolution)
        wanted = ob.render(free, plain, args.spp, world_dir=world_dir)
        base = ob.render(world, plain, args.spp, world_dir=world_dir)
        base_frame, base_sil = ob.l1(base, wanted), ob.l1(base, wanted, silhouette)
        plain_l1, _ = l1_and_bound(A, b, t, goal.plain, transport.texture_shape, 1.0)
        rows = {}
        for key, (texture, seconds, delta) in textures.items():
            if args.only and key not in args.only:
                continue
            achieved, lower = l1_and_bound(A, b, t, texture, transport.texture_shape, delta)
            img = ob.render(world, to_uint8(texture), args.spp, world_dir=world_dir)
            rows[key] = {"solve_s": round(seconds, 2),
                         "predicted": [round(predicted_score(texture, goal, transport), 4),
                                       round(silhouette_ratio(texture, goal, transport, silhouette_t), 4)],
                         "l1_objective": round(achieved / plain_l1, 4), "l1_lower_bound": round(lower / plain_l1, 4),
                         "rendered": [round(ob.l1(img, wanted) / base_frame, 4),
                                      round(ob.l1(img, wanted, silhouette) / base_sil, 4)]}
            print(f"{name:10s} {key:8s} solve {seconds:6.1f} s  predicted {rows[key]['predicted']}  "
                  f"L1 objective ÷ plain {rows[key]['l1_objective']:.4f} (≥ {rows[key]['l1_lower_bound']:.4f})  "
                  f"rendered {rows[key]['rendered']}", flush=True)
        if args.clean_spp:
            rows["clean"] = clean_scores(world, world_dir, free, plain, goal, transport, silhouette,
                                         {k: textures[k][0] for k in ("instant", "l1") if k in textures},
                                         args.clean_spp)
            print(f"{name:10s} at {args.clean_spp} spp: {rows['clean']}", flush=True)
        results["pictures"][name] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
