"""Any camera, and textures finer than the film: the done-when checks of issue 18 (parts 1 and 2), measured.

    python bench/film.py offaxis    # glass IOR 1.5 at 225 mm, camera 30 mm right, 20 mm up, aimed at the ball,
                                    # 4:3 film 128×96, texture 128²: instant solve, 4 unseen photos, spp 128
    python bench/film.py fine       # 2048² texture on a 512² film against the 512² texture (tutorial scene)
    python bench/film.py big        # a 4096² texture on a 1024² film: probe and solve, seconds and peak memory
    python bench/film.py print      # the print of a 4096² texture at 340 mm: its dpi, in the PDF too

Quality: the L1 ratio = L1(render of the pre-distortion, target) / L1(render of the plain picture, target),
both renders at ``--spp`` with one seed, against :func:`predistort.target.target_for` (the ball-free view for
every scene but the on-axis square one); the mean over the photos. ``--photos`` picks how many of
:func:`datasets.unseen_photos`. Peak memory is this process's peak RSS (``resource.getrusage``).
"""
import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

import torch  # noqa: E402

from predistort import solve, target  # noqa: E402
from predistort.images import l1  # noqa: E402
from predistort.physical import PhysicalSetup  # noqa: E402
from predistort.probe import probe  # noqa: E402
from predistort.render import Renderer  # noqa: E402
from predistort.scene import DEFAULT  # noqa: E402


def peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def quality(config, photos, spp, transport=None):
    """Mean L1 ratio of the instant solve over `photos` ([R,R,3] each), and the probe's seconds."""
    start = time.perf_counter()
    transport = transport or probe(config)
    probe_s = time.perf_counter() - start
    renderer = Renderer(config)
    ratios = []
    for photo in photos:
        goal = target.target_for(photo, config)
        x = solve.solve(goal, transport, start=photo)
        plain = l1(renderer.render(photo, spp=spp, seed=0).cpu(), goal)
        fixed = l1(renderer.render(x, spp=spp, seed=0).cpu(), goal)
        ratios.append(fixed / plain)
    return sum(ratios) / len(ratios), ratios, probe_s


def cmd_offaxis(args):
    setup = PhysicalSetup(ior=1.5, print_distance_mm=225.0, camera_x_mm=30.0, camera_y_mm=20.0, aim_z_mm=225.0,
                          film_width=args.film, film_height=args.film * 3 // 4, resolution=args.film)
    config = setup.to_scene()
    mean, ratios, probe_s = quality(config, datasets.unseen_photos(config.resolution)[:args.photos], args.spp)
    return {"check": "off-axis 4:3 glass", "film": config.film_size, "texture": config.resolution,
            "target": "ball-free view", "l1_ratio_mean": round(mean, 4), "l1_ratios": [round(r, 4) for r in ratios],
            "probe_s": round(probe_s, 1)}


def cmd_fine(args):
    """The 2048² texture on the 512² film against the 512² texture (tutorial's scene, on-axis): each scored
    against the target of its own scene (the 512² one: the picture; the 2048² one: the ball-free view), and
    both against one goal, the ball-free view of the 2048² picture on the film (ratio and L1)."""
    film, fine = args.film, args.texture
    scenes = {res: DEFAULT.replace(resolution=res, film_width=film, film_height=film) for res in (film, fine)}
    photos = {res: datasets.unseen_photos(res)[:args.photos] for res in scenes}
    out = {"check": "fine texture on a coarser film", "film": film}
    for res, config in scenes.items():
        start = time.perf_counter()
        transport = probe(config)
        probe_s = time.perf_counter() - start
        renderer = Renderer(config)
        own, common, l1s, free, free_l1s = [], [], [], [], []
        for photo, photo_fine in zip(photos[res], photos[fine]):
            goal = target.target_for(photo, config)
            x = solve.solve(goal, transport, start=photo)
            plain = renderer.render(photo, spp=args.spp, seed=0).cpu()
            final = renderer.render(x, spp=args.spp, seed=0).cpu()
            one = target.ball_free_view(photo_fine, scenes[fine])
            own.append(l1(final, goal) / l1(plain, goal))
            common.append(l1(final, one) / l1(plain, one))
            l1s.append(l1(final, one))
            # Like for like: solved for and scored against its own ball-free view.
            view = target.ball_free_view(photo, config)
            x = solve.solve(view, transport, start=photo)
            final = renderer.render(x, spp=args.spp, seed=0).cpu()
            free.append(l1(final, view) / l1(plain, view))
            free_l1s.append(l1(final, one))
        out[f"texture_{res}"] = {
            "own_target": "picture" if target.is_on_axis_framing(config) else "ball-free view",
            "l1_ratio_own_target": round(sum(own) / len(own), 4), "per_photo": [round(r, 4) for r in own],
            "l1_ratio_vs_fine_ball_free_view": round(sum(common) / len(common), 4),
            "per_photo_vs_fine_ball_free_view": [round(r, 4) for r in common],
            "l1_final_vs_fine_ball_free_view": round(sum(l1s) / len(l1s), 5),
            "l1_ratio_solved_for_own_ball_free_view": round(sum(free) / len(free), 4),
            "per_photo_solved_for_own_ball_free_view": [round(r, 4) for r in free],
            "l1_final_solved_for_own_ball_free_view_vs_fine_ball_free_view": round(sum(free_l1s) / len(free_l1s), 5),
            "probe_s": round(probe_s, 1), "nnz": transport.nnz}
    return out


def cmd_big(args):
    config = DEFAULT.replace(resolution=args.texture, film_width=args.film, film_height=args.film)
    start = time.perf_counter()
    transport = probe(config)
    probe_s = time.perf_counter() - start
    after_probe = peak_gb()
    photo = datasets.unseen_photos(args.texture)[0]
    start = time.perf_counter()
    goal = target.target_for(photo, config)
    target_s = time.perf_counter() - start
    start = time.perf_counter()
    x = solve.solve(goal, transport, start=photo)
    solve_s = time.perf_counter() - start
    return {"check": "big", "texture": args.texture, "film": config.film_size, "nnz": transport.nnz,
            "probe_s": round(probe_s, 1), "target_s": round(target_s, 1), "solve_s": round(solve_s, 1),
            "peak_rss_gb_after_probe": round(after_probe, 2), "peak_rss_gb": round(peak_gb(), 2),
            "unseen_texels_unchanged": bool(torch.equal(x[~transport.seen], photo[~transport.seen]))}


def cmd_print(args):
    """The PDF and PNG of a 2048² and a print-resolution texture at ``--print-mm``: the dpi of their pixels
    and of the image the PDF embeds (its /Width over the print's inches)."""
    import re
    import tempfile
    from predistort.printout import MIN_DPI, print_image, texture_resolution_for, write_print
    setup = PhysicalSetup(print_distance_mm=args.print_mm / 1.2 - 100.0)   # the print is 1.2 × (d + c) wide
    inches = setup.print_size_mm / 25.4
    out = {"check": "print", "print_mm": round(setup.print_size_mm, 1), "min_dpi": MIN_DPI,
           "texture_for_print": texture_resolution_for(setup.print_size_mm)}
    for res in (2048, out["texture_for_print"]):
        texture = datasets.unseen_photos(res)[0]
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            pdf, png = write_print(texture, setup, tmp)
            widths = [int(w) for w in re.findall(rb"/Width (\d+)", pdf.read_bytes())]
            sizes = (pdf.stat().st_size, png.stat().st_size)
        out[f"texture_{res}"] = {"texture_dpi": round(res / inches, 1), "png_dpi": round(print_image(texture, setup)[1], 1),
                                 "pdf_image_px": max(widths), "pdf_dpi": round(max(widths) / inches, 1),
                                 "pdf_mb": round(sizes[0] / 1e6, 1), "png_mb": round(sizes[1] / 1e6, 1),
                                 "seconds": round(time.perf_counter() - start, 1)}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("check", choices=["offaxis", "fine", "big", "print"])
    p.add_argument("--spp", type=int, default=128)
    p.add_argument("--photos", type=int, default=4)
    p.add_argument("--film", type=int, help="film side (offaxis: its width; default 128 / 512 / 1024)")
    p.add_argument("--texture", type=int, help="texture side (fine: 2048; big: 4096)")
    p.add_argument("--print-mm", type=float, default=340.0)
    args = p.parse_args()
    defaults = {"offaxis": (128, None), "fine": (512, 2048), "big": (1024, 4096), "print": (None, None)}
    args.film = args.film or defaults[args.check][0]
    args.texture = args.texture or defaults[args.check][1]
    result = globals()[f"cmd_{args.check}"](args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
