"""Real glass: how well does the pre-distortion work for the tutorial's ball, for glass where the tutorial puts
the print, and for glass where the advisor puts it — measured with real renders of unseen photos.

    python bench/setups.py            # 128², 8 unseen photos, spp-256 renders, the issue's distances too (~10 min)
    python bench/setups.py --quick    # 32², 2 photos, spp 16 (a minute or two)

Every setup is a :class:`predistort.physical.PhysicalSetup` (the tutorial's: a 90 mm ball, print and camera
100 mm from its centre, 60°). For each one this script measures the scene's transport with a full probe
(:func:`predistort.solve.probe`, calibrated), solves every photo on it (the instant solve), renders the
photo and its solution with the same seed at ``--spp`` and reports the mean ratio L1(with) / L1(without)
against the photo (renders clamped to [0, 1]). Beside it, two predictions that need no renders: the
advisor's own (cheap search probe, its fixed procedural pictures) and the full probe's for the photos.

The advisor (:func:`predistort.advise.advise`) runs once, for IOR 1.5 with the tutorial's camera and ball
(timed: its search is the figure the issue sets ≤ 60 s at 128²); its advised distance is one of the rows.
``--distances`` adds rows for glass at other print distances (default: the issue's 130, 160, 200 mm), so
that the advisor's ranking can be checked against measurements.

Writes ``setups.md`` / ``setups.json`` and the advisor's plot ``setups_advice.png`` to ``--out``
(default bench/results).
"""
import argparse
import sys
import time
from pathlib import Path

import common
from common import RESULTS, markdown_table
from datasets import PHOTOS, unseen_photos

EVAL_SEED = 1_000_003          # one seed for every scoring render (as bench/quality.py)


def measure(setup, photos, spp, search_pictures=None):
    """Predicted and measured ratios of `setup` on `photos` (list of [R,R,3]); see the module doc."""
    import torch
    from predistort import advise
    from predistort.render import Renderer
    from predistort.solve import probe, solve

    config = setup.to_scene()
    search = advise.predict(probe(config, **advise.SEARCH_PROBE), search_pictures).ratio
    start = time.perf_counter()
    renderer = Renderer(config)
    transport = probe(config, renderer=renderer)
    probe_seconds = time.perf_counter() - start
    stack = torch.stack(photos)
    predicted = advise.predict(transport, stack)
    solved = solve(stack, transport)
    ratios = []
    for photo, texture in zip(photos, solved):
        before, after = common.score(renderer, [photo, photo], [photo, texture], spp, EVAL_SEED)
        ratios.append(after["l1"] / before["l1"])
    return {"print_distance_mm": setup.print_distance_mm, "print_size_mm": round(setup.print_size_mm, 1),
            "ior": setup.ior, "predicted_search": search, "predicted_full": predicted.ratio,
            "predicted_full_per_photo": predicted.ratios, "measured": sum(ratios) / len(ratios),
            "measured_per_photo": ratios, "probe_seconds": round(probe_seconds, 2)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="32², 2 photos, spp 16, no extra distances")
    p.add_argument("--resolution", type=int, help="texture and film side (default 128; --quick 32)")
    p.add_argument("--photos", type=int, help=f"how many unseen photos, of {len(PHOTOS)} (default all; --quick 2)")
    p.add_argument("--spp", type=int, help="samples per pixel of the scoring renders (default 256; --quick 16)")
    p.add_argument("--distances", type=float, nargs="*", help="extra glass rows: print distances in mm "
                   "(default 130 160 200, the issue's; --quick none)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for setups.md/.json and setups_advice.png")
    args = p.parse_args(argv)
    res = args.resolution or (32 if args.quick else 128)
    count = args.photos or (2 if args.quick else len(PHOTOS))
    spp = args.spp or (16 if args.quick else 256)
    extra = args.distances if args.distances is not None else ([] if args.quick else [130.0, 160.0, 200.0])

    from predistort.advise import PICTURES, advise
    from predistort.physical import PhysicalSetup

    photos = unseen_photos(res, PHOTOS[:count])
    tutorial = PhysicalSetup(resolution=res)
    glass = tutorial.replace(ior=1.5)
    print(f"[setups] advising for IOR 1.5 at {res}² ...", file=sys.stderr, flush=True)
    advice = advise(glass, progress=lambda i, n, d, r: print(f"[setups]   {i}/{n}: {d:g} mm -> {r:.3f}",
                                                                     file=sys.stderr, flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    advice.plot().save(args.out / "setups_advice.png")

    setups = {"tutorial's setup, IOR 1.06": tutorial, "glass (IOR 1.5), tutorial's placement": glass,
              "glass (IOR 1.5), advised placement": advice.best}
    for distance in extra:
        setups[f"glass (IOR 1.5), print at {distance:g} mm"] = glass.replace(print_distance_mm=distance)
    results = {}
    for name, setup in setups.items():
        print(f"[setups] {name} ...", file=sys.stderr, flush=True)
        results[name] = measure(setup, photos, spp)
        print(f"[setups]   {results[name]}", file=sys.stderr, flush=True)

    names = PHOTOS[:count]
    shown = [n for n in ("astronaut", "coffee") if n in names]
    for r in results.values():          # the figures: the mean of astronaut and coffee
        r["measured_shown"] = sum(r["measured_per_photo"][names.index(n)] for n in shown) / max(len(shown), 1)
    headers = ["setup", "print distance mm", "print mm", "predicted (advisor's search)",
               "predicted (full probe, photos)", f"measured (spp {spp}, {count} photos)",
               *[f"measured: {n}" for n in shown], f"measured: mean of {' & '.join(shown)}"]
    rows = [[name, f"{r['print_distance_mm']:g}", f"{r['print_size_mm']:.0f}", f"{r['predicted_search']:.3f}",
             f"{r['predicted_full']:.3f}", f"**{r['measured']:.3f}**",
             *[f"{r['measured_per_photo'][names.index(n)]:.3f}" for n in shown], f"{r['measured_shown']:.3f}"]
            for name, r in results.items()]
    glass_rows = sorted({r["print_distance_mm"]: r for r in results.values() if r["ior"] == 1.5}.values(),
                        key=lambda r: r["print_distance_mm"])
    same_order = ([r["print_distance_mm"] for r in sorted(glass_rows, key=lambda r: r["predicted_search"])] ==
                  [r["print_distance_mm"] for r in sorted(glass_rows, key=lambda r: r["measured"])])
    placements = ", ".join(f"{r['print_distance_mm']:g}" for r in glass_rows)
    command = " ".join(["python bench/setups.py", *(sys.argv[1:] if argv is None else argv)])
    b = advice.best
    md = "\n".join([
        f"## Real glass: where the print goes ({res}×{res})", "",
        *[f"{line}  " for line in common.header(command)], "",
        markdown_table(headers, rows), "",
        f"- Advisor (IOR 1.5, {b.ball_diameter_mm:g} mm ball, camera {b.camera_distance_mm:g} mm from its centre, "
        f"{b.fov_deg:g}°): print at **{b.print_distance_mm:g} mm** (now {glass.print_distance_mm:g} mm), predicted "
        f"{advice.current_ratio:.3f} → {advice.best_ratio:.3f}; search **{advice.seconds:.1f} s** for "
        f"{advice.probes} probed distances ({res}²). Curve: " +
        ", ".join(f"{d:g} mm {r:.3f}" for d, r in advice.curve) + ".",
        f"- Ranking: the advisor's search orders the {len(glass_rows)} glass placements "
        f"({placements} mm) "
        f"{'as' if same_order else 'NOT as'} the measurements do.",
        f"- Ratios: L1 of the render with the instant solve's texture ÷ L1 of the render of the photo itself, "
        f"both against the photo, renders clamped to [0, 1], one seed; mean over the photos ({', '.join(names)}).",
        f"- Predicted (advisor's search): the transport's own prediction A·T*+b with the search's cheap probe "
        f"(no calibration, 2×2 rays per pixel) on the advisor's {PICTURES} procedural pictures. Predicted (full "
        f"probe, photos): the calibrated probe's prediction for the same photos the renders score.",
        "- Times share the CPU with whatever else ran on this machine."])
    print(md)
    common.save_report("setups", md, {"resolution": res, "spp": spp, "photos": names, "advice": advice.to_dict(),
                                      "ranking_agrees": same_order, "results": results}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
