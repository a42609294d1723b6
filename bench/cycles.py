"""Photos of the project's scene by an independent renderer, Blender Cycles: for benchmarks only (issue 19).

    python bench/cycles.py nominal --out S.json            # the advised glass setup, 960×720 (IOR 1.5, 225 mm)
    python bench/cycles.py render --scene S.json --texture T.png --out photo.png [--spp 64] [--linear out.npy]
                                  # S.json: a scene, or a photo's JSON (its true scene): e.g. a pre-distortion
                                  # rendered where the setup really is
    python bench/cycles.py check  [--scene S.json] [--texture T.png] [--spp 64]   # Mitsuba vs Cycles
    python bench/cycles.py silhouette [--extra PHOTO.json ...]   # the ball's silhouette only, both renderers
    python bench/cycles.py photos --scene S.json --texture CHART.png --count 5 --out DIR --seed N
    python bench/cycles.py check-world [--width 200] [--spp 64]   # worlds: mirrors and glass, both renderers

Blender is not a dependency of the project (no tests, no ``setup.sh --dev``): install it for these benchmarks
only with ``apt-get install -y blender`` (Debian's 3.4, Cycles included), or point ``$BLENDER`` at one.
Blender runs as a subprocess on ``bench/cycles_blender.py``; the project's Python never imports ``bpy``.

What Cycles renders (the conventions of :func:`predistort.scene.mitsuba_dict`, detailed in
``cycles_blender.py``): the camera at ``camera_origin`` looking at ``camera_target`` with ``camera_up``
(Mitsuba's look_at), ``fov`` across the film's width, ``film_width`` × ``film_height`` pixels; the textured
plane = the rectangle [−1, 1]² × ``plane_scale`` at z = 0, Lambertian, reflectance = the texture as stored
(8-bit value / 255, no gamma), row 0 at y = −plane_scale; a smooth glass sphere (a fine smooth-shaded UV
mesh: Cycles has no analytic sphere) of ``sphere_ior`` in air; a constant white world of radiance 1; a
Gaussian pixel filter of σ = 0.5 px; path tracing up to 5 bounces, no clamping, no denoising. The output
is linear radiance, [H, W, 3] float32.

The phone stage (:func:`phone`): linear radiance × exposure, shot noise (Poisson, as a Gaussian of variance
x / ``full_well``) and read noise (Gaussian, σ ``read_noise``), clipped to [0, 1], sRGB-encoded, 8 bits,
JPEG at ``quality`` (Pillow, 4:2:0). No lens distortion, vignetting or blur beyond the pixel filter.

``photos`` writes, per photo, ``NAME.jpg`` and ``NAME.json`` = ``{"scene": <the true SceneConfig dict>,
"perturbation": {...}}``, the format ``bench/calibrate.py --photos DIR`` reads. The true setup is the
nominal scene moved by :func:`perturb` (limits in :data:`LIMITS`, each draw between half the limit and the
limit, random direction and sign, so that every photo is off in every quantity).

Limits: Cycles on the CPU (``--threads``); time grows with film pixels × spp. The texture is read with
:func:`predistort.images.prepare_texture` (cropped to a square, resized to the scene's resolution).
"""
import argparse
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from predistort.scene import SceneConfig  # noqa: E402

BLENDER_SCRIPT = BENCH / "cycles_blender.py"
FILM = (960, 720)                                      # the 4:3 photos
LIMITS = {                                             # the "done when": the true setup is off by up to
    "camera_mm": 20.0,                                 # camera position, mm (a random 3-D direction)
    "camera_deg": 5.0,                                 # camera rotation about a random axis (aim and roll), deg
    "ball_mm": 5.0,                                    # ball centre sideways, mm (a random direction in x, y)
    "print_mm": 5.0,                                   # print distance (ball centre to print), mm
    "ior": 0.03,                                       # the ball's index of refraction
    "fov_deg": 10.0,                                   # the lens: horizontal field of view, deg
    "exposure": 0.3,                                   # exposure factor 1 ± this
}
TONE_STRENGTH = 0.3                                    # local tone curve: gain = (blurred luminance)^−this
TONE_BLUR = 0.05                                       # ... its Gaussian's σ, a fraction of the image's width
TONE_WORK = 512                                        # ... computed on a copy this many pixels wide
BIN = 4                                                # check: block side of the binned L1, px
DIOR, DBALL_MM, DCAMERA_MM = 0.005, 0.5, 2.0           # check: the wrong scenes (the fit tolerances)


def blender_path():
    """The Blender executable ($BLENDER, else ``blender`` on the PATH); RuntimeError with the fix if none."""
    exe = os.environ.get("BLENDER") or shutil.which("blender")
    if not exe:
        raise RuntimeError("Blender is not installed: apt-get install -y blender (or set $BLENDER)")
    return exe


def nominal_scene(film=FILM, resolution=256):
    """The advised glass setup (README's real glass: a 90 mm ball of IOR 1.5, camera 100 mm from its centre,
    60°, the print at the advised 225 mm) with a `film` (W, H) and a `resolution`² texture."""
    from predistort.physical import PhysicalSetup
    return PhysicalSetup(ior=1.5, print_distance_mm=225.0, resolution=resolution,
                         film_width=film[0], film_height=film[1]).to_scene()


def load_texture(path, config):
    """The picture at `path` as the scene's texture: [R, R, 3] float32 in [0, 1] (R = config.resolution)."""
    from predistort.images import prepare_texture
    texture, _ = prepare_texture(str(path), config.resolution, fit="crop")
    return texture.numpy()


# -- the Cycles render -------------------------------------------------------------------------------------
def render_linear(config, texture, spp=64, seed=0, threads=2, sphere_segments=384, timeout=3600, log=None,
                  filter_width=2.0, film=None):
    """Render `config` (SceneConfig) with `texture` ([h, w, 3] floats, any size; the print) in Cycles.

    `config` may be a ball scene (the flat fields) or a world (a print and ``objects``: built from
    bench/cycles_world.py's meshes). Returns the linear image [film_height, film_width, 3] float32. ``film``
    (W, H) renders at that size instead of the config's (a SceneConfig's film stops at 1024 px; keep its
    aspect: the fov is across the width). ``spp`` samples per pixel, ``seed`` Cycles' sampling seed,
    ``threads`` CPU threads, ``sphere_segments`` the UV sphere's segments around (half as many rings).
    Blender's output goes to `log` (a path) or is shown only on failure.
    """
    texture = np.ascontiguousarray(texture, dtype=np.float32)
    width, height = film or config.film_size
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texture.tofile(tmp / "texture.f32")
        scene = {**config.to_dict(), "film_width": width, "film_height": height, "fov": config.fov,
                 **{k: list(getattr(config, k)) for k in ("camera_origin", "camera_target", "camera_up")}}
        job = {"scene": scene, "texture": str(tmp / "texture.f32"), "texture_size": [texture.shape[1], texture.shape[0]],
               "spp": int(spp), "seed": int(seed), "threads": int(threads), "sphere_segments": int(sphere_segments),
               "filter_width": float(filter_width),
               "exr": str(tmp / "render.exr"), "out": str(tmp / "render.f32")}
        if not config.is_ball_world:
            job["world"] = world_job(config, tmp)
        (tmp / "job.json").write_text(json.dumps(job))
        cmd = [blender_path(), "-b", "--factory-startup", "-noaudio", "-P", str(BLENDER_SCRIPT), "--",
               str(tmp / "job.json")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if log:
            Path(log).write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not (tmp / "render.f32").exists():
            raise RuntimeError(f"Blender failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
        image = np.fromfile(tmp / "render.f32", dtype=np.float32)
    return image.reshape(height, width, 3)


def world_job(config, folder):
    """The world part of a Blender job: the print's quad and every object's parts (bench/cycles_world.py),
    their arrays written as raw files in `folder`."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_cycles_world", BENCH / "cycles_world.py")
    geometry = importlib.util.module_from_spec(spec)          # by path: bench/ need not be on sys.path
    spec.loader.exec_module(geometry)
    corners, uv = geometry.print_quad(config)
    parts = []
    for k, part in enumerate(geometry.world_parts(config)):
        entry = {"role": part["role"]}
        for name, dtype in (("vertices", np.float32), ("faces", np.int32), ("normals", np.float32)):
            if part[name] is not None:
                entry[name] = str(folder / f"part{k}_{name}.raw")
                np.ascontiguousarray(part[name], dtype=dtype).tofile(entry[name])
        parts.append(entry)
    return {"print": {"corners": corners.tolist(), "uv": uv.tolist()}, "parts": parts}


# -- the phone stage (pure numpy + Pillow; tested in tests/test_bench_cycles.py) -----------------------------
def srgb_encode(x):
    """Linear [0, 1] → sRGB-encoded [0, 1] (IEC 61966-2-1: linear below 0.0031308, else 1.055 x^(1/2.4) − 0.055)."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def local_tone_gain(linear, strength=TONE_STRENGTH, blur=TONE_BLUR, work=TONE_WORK):
    """A phone's local tone curve (HDR+-like local tone mapping, kept simple) as a gain map [H, W] float32 for the
    linear image `linear` [H, W, 3]: ``(B / B_white) ** −strength``, where B is the luminance (Rec. 709) blurred
    by a Gaussian of σ = `blur` × the image's width and B_white its 95th percentile. Regions darker on average
    than the print's white are brightened (by 1.23× where the surroundings are half as bright, at 0.3), bright
    ones kept; detail smaller than the blur keeps its contrast (the blur, not the pixel, sets the gain), so
    brightness is no longer one global curve of the radiance. Multiply the linear image by it before sRGB.
    Computed on a copy `work` px wide (the blur is far wider than a pixel) and resized back, so a 24 MP image
    costs only its gain map."""
    import cv2
    linear = np.asarray(linear, dtype=np.float32)
    height, width = linear.shape[:2]
    scale = min(1.0, work / width)
    small = cv2.resize(linear, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    luminance = small @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    blurred = cv2.GaussianBlur(luminance, (0, 0), blur * small.shape[1], borderType=cv2.BORDER_REFLECT)
    white = max(float(np.percentile(blurred, 95)), 1e-6)
    gain = np.power(np.maximum(blurred, 1e-3 * white) / white, -strength).astype(np.float32)
    return cv2.resize(gain, (width, height), interpolation=cv2.INTER_LINEAR)


def focal_35mm(fov_deg, width, height):
    """The 35 mm-equivalent focal length (EXIF FocalLengthIn35mmFilm, by the diagonal, 43.27 mm) of a
    `width` × `height` picture whose horizontal field of view is `fov_deg`."""
    tan_diagonal = math.tan(math.radians(fov_deg) / 2) * math.hypot(width, height) / width
    return math.hypot(36.0, 24.0) / (2 * tan_diagonal)


def phone_codes(linear, exposure=1.0, full_well=1000.0, read_noise=0.002, seed=0):
    """The 8-bit sRGB codes [H, W, 3] a phone records of `linear` before saving them (:func:`phone`'s arguments;
    ``seed`` None: no noise)."""
    x = np.clip(np.asarray(linear, dtype=np.float64) * exposure, 0.0, None)
    if seed is not None:
        sigma = np.sqrt(x / full_well + read_noise ** 2)
        x = x + sigma * np.random.default_rng(seed).standard_normal(x.shape)
    return np.round(srgb_encode(x) * 255).astype(np.uint8)


def phone(linear, exposure=1.0, full_well=1000.0, read_noise=0.002, quality=80, seed=0, focal_35mm_exif=None):
    """What a phone makes of the linear radiance `linear` [H, W, 3]: the JPEG file's bytes.

    ``exposure`` multiplies the radiance (white paper in the white world is 1.0: above 1 it clips);
    ``full_well`` photo-electrons at 1.0 (shot noise σ = sqrt(x / full_well)); ``read_noise`` σ in linear
    units; ``quality`` JPEG quality (Pillow); ``seed`` the noise's; ``focal_35mm_exif`` (mm) if given is
    written as EXIF FocalLengthIn35mmFilm (a whole number of mm, as phones write it). Same inputs, same bytes.
    """
    encoded = phone_codes(linear, exposure, full_well, read_noise, seed)
    buffer = io.BytesIO()
    exif = Image.Exif()
    if focal_35mm_exif is not None:
        exif.get_ifd(0x8769)[0xA405] = int(round(focal_35mm_exif))      # Exif IFD: FocalLengthIn35mmFilm
    Image.fromarray(encoded).save(buffer, format="JPEG", quality=int(quality), exif=exif)
    return buffer.getvalue()


# -- perturbed true setups (pure numpy; tested) -------------------------------------------------------------
def _direction(rng):
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def _rotation(axis, angle_rad):
    """Rodrigues: the rotation matrix of `angle_rad` about the unit `axis`."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle_rad) * k + (1 - math.cos(angle_rad)) * k @ k


def perturb(config, rng, limits=LIMITS, film=FILM):
    """The true setup of one photo: `config` (the nominal SceneConfig) moved within `limits`.

    Every limit holds in the scene's own coordinates (the print's frame: x right, y down the print, z from
    the camera towards the print, which stays at z = 0), the frame a calibration reports in. Each quantity is
    drawn between half its limit and its limit, with a random direction or sign: the camera moved (3-D), then
    turned about its own position (aim and roll together) about a random axis; the ball moved sideways
    (x, y); the print's distance from the ball's centre changed (the ball moves along z); the IOR changed;
    another lens (horizontal fov); the film `film` (W, H); an exposure factor. The print (size, texture,
    units) is the nominal's. Returns ``(true SceneConfig, perturbation dict in mm / deg)``; the offsets are
    true − nominal, mm.
    """
    unit = config.units_mm

    def draw(limit):
        return limit * rng.uniform(0.5, 1.0)

    def sign():
        return rng.choice([-1.0, 1.0])

    origin, target = np.array(config.camera_origin), np.array(config.camera_target)
    up, ball = np.array(config.camera_up), np.array(config.sphere_center)
    camera_offset = _direction(rng) * draw(limits["camera_mm"])
    angle = draw(limits["camera_deg"])
    turn = _rotation(_direction(rng), math.radians(angle))
    side = rng.uniform(0, 2 * math.pi)
    ball_side = np.array([math.cos(side), math.sin(side)]) * draw(limits["ball_mm"])
    print_change = sign() * draw(limits["print_mm"])               # + : the print farther from the ball
    ior_change = sign() * draw(limits["ior"])
    fov_change = sign() * draw(limits["fov_deg"])
    exposure = 1.0 + sign() * draw(limits["exposure"])

    # The print farther from the ball's centre = the ball farther from z = 0, on its side of it.
    ball_offset = np.array([*ball_side, math.copysign(1.0, ball[2]) * print_change])
    new_origin = origin + camera_offset / unit
    new_target = new_origin + turn @ (target - origin)
    true = config.replace(
        camera_origin=tuple(float(v) for v in new_origin), camera_target=tuple(float(v) for v in new_target),
        camera_up=tuple(float(v) for v in turn @ up), sphere_center=tuple(float(v) for v in ball + ball_offset / unit),
        sphere_ior=float(config.sphere_ior + ior_change), fov=float(config.fov + fov_change),
        film_width=int(film[0]), film_height=int(film[1]))

    def mm(v):
        return [round(float(x), 4) for x in v]

    perturbation = {
        "camera_offset_mm": mm(camera_offset), "camera_rotation_deg": round(angle, 4),
        "ball_offset_mm": mm(ball_offset), "print_distance_change_mm": round(float(print_change), 4),
        "print_distance_mm": round(abs(true.sphere_center[2]) * unit, 4),
        "nominal_print_distance_mm": round(abs(config.sphere_center[2]) * unit, 4),
        "ior_change": round(float(ior_change), 5), "ior": round(true.sphere_ior, 5),
        "fov_deg": round(true.fov, 4), "nominal_fov_deg": config.fov,
        "exposure": round(float(exposure), 4),
        "_note": "offsets: true − nominal in the scene's coordinates (x right, y down the print, z towards the "
                 "print), mm; the ball's z offset is the print distance's change",
    }
    return true, perturbation


# -- measuring a render: the ball's silhouette --------------------------------------------------------------
def analytic_silhouette(config, supersampling=4):
    """The fraction of each film pixel whose camera rays hit the sphere: [H, W] float (exact geometry)."""
    import torch
    from predistort.target import camera_frame, film_rays
    width, height = config.film_size
    n = supersampling
    fy = torch.arange(height * n, dtype=torch.float64)
    fx = torch.arange(width * n, dtype=torch.float64)
    t, s = torch.meshgrid((fy + 0.5) / (height * n), (fx + 0.5) / (width * n), indexing="ij")
    d = film_rays(config, s.reshape(-1), t.reshape(-1))
    d = d / d.norm(dim=1, keepdim=True)
    oc = torch.from_numpy(camera_frame(config)[0] - np.array(config.sphere_center))
    b = d @ oc
    hit = (b * b - (oc @ oc - config.sphere_radius ** 2)) > 0
    return hit.to(torch.float64).reshape(height, n, width, n).mean((1, 3)).numpy()


def edge_points(value, threshold):
    """Sub-pixel points where each row of `value` [H, W] first and last rises above `threshold` (linear
    interpolation between pixel centres): [N, 2] (x, y) in pixels, origin at the film's top-left corner."""
    points = []
    for y, row in enumerate(value):
        above = np.nonzero(row > threshold)[0]
        if len(above) < 2 or above[0] == 0 or above[-1] == len(row) - 1:
            continue
        i, j = above[0], above[-1]
        left = i - 1 + (threshold - row[i - 1]) / (row[i] - row[i - 1])
        right = j + (row[j] - threshold) / (row[j] - row[j + 1])
        points += [(left + 0.5, y + 0.5), (right + 0.5, y + 0.5)]
    return np.array(points)


def fit_circle(points):
    """Least-squares circle through `points` [N, 2] (Kåsa's algebraic fit): ``(cx, cy, radius)``."""
    x, y = points[:, 0], points[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    (p, q, r), *_ = np.linalg.lstsq(a, x * x + y * y, rcond=None)
    cx, cy = p / 2, q / 2
    return float(cx), float(cy), float(math.sqrt(r + cx * cx + cy * cy))


def silhouette(image_or_mask, threshold=0.5):
    """The ball's silhouette in a render of a BLACK texture (the plane renders 0, the ball's rim reflects the
    white world, ~1) or in :func:`analytic_silhouette`: ``(cx, cy, radius)`` px of the circle fitted to the
    rows' outermost crossings of `threshold`, refitted without the crossings more than 1.5 px off the circle.
    (Off-axis, the silhouette is an ellipse: compare renders with each other and with the exact mask, all
    measured alike.)"""
    value = image_or_mask.mean(axis=2) if image_or_mask.ndim == 3 else image_or_mask
    points = edge_points(value, threshold)
    for _ in range(3):               # robust: drop the crossings of structure inside the ball (> 1.5 px off)
        cx, cy, radius = fit_circle(points)
        keep = np.abs(np.hypot(points[:, 0] - cx, points[:, 1] - cy) - radius) < 1.5
        if keep.all() or keep.sum() < 10:
            break
        points = points[keep]
    return fit_circle(points)


# -- commands -----------------------------------------------------------------------------------------------
def cmd_nominal(args):
    config = nominal_scene(resolution=args.resolution)
    config.save(args.out)
    print(f"wrote {args.out}: {json.dumps(config.to_dict())}")


def load_scene(path):
    """A SceneConfig from a scene JSON, or from a photo's JSON (``{"scene": {...}, ...}``, as ``photos`` writes)."""
    data = json.loads(Path(path).read_text())
    return SceneConfig.from_dict(data["scene"] if "scene" in data and isinstance(data["scene"], dict) else data)


def cmd_render(args):
    config = load_scene(args.scene)
    start = time.perf_counter()
    linear = render_linear(config, load_texture(args.texture, config), spp=args.spp, seed=args.seed,
                           threads=args.threads)
    seconds = time.perf_counter() - start
    if args.linear:
        np.save(args.linear, linear)
    if args.out.lower().endswith((".jpg", ".jpeg")):
        Path(args.out).write_bytes(phone(linear, exposure=args.exposure, seed=args.seed))
    else:                                               # PNG: sRGB-encoded, no noise
        Image.fromarray(np.round(srgb_encode(linear * args.exposure) * 255).astype(np.uint8)).save(args.out)
    print(f"wrote {args.out} ({config.film_size[0]}×{config.film_size[1]}, {args.spp} spp) in {seconds:.1f} s")


def cmd_photos(args):
    nominal = load_scene(args.scene)
    texture = load_texture(args.texture, nominal)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for k in range(args.count):
        true, perturbation = perturb(nominal, rng)
        name = f"photo{k:02d}"
        start = time.perf_counter()
        linear = render_linear(true, texture, spp=args.spp, seed=args.seed * 1000 + k, threads=args.threads)
        seconds = time.perf_counter() - start
        focal = focal_35mm(true.fov, *true.film_size) if args.exif else None
        (out / f"{name}.jpg").write_bytes(phone(linear, exposure=perturbation["exposure"], seed=args.seed * 1000 + k,
                                                focal_35mm_exif=focal))
        perturbation["exif_focal_35mm"] = None if focal is None else int(round(focal))
        record = {"scene": true.to_dict(), "perturbation": perturbation,
                  "render": {"renderer": "Blender Cycles (bench/cycles.py)", "spp": args.spp, "seconds": round(seconds, 1),
                             "texture": str(args.texture), "nominal_scene": str(args.scene), "jpeg_quality": 80}}
        (out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"{name}: {seconds:.1f} s  {json.dumps(perturbation)}", flush=True)


def binned(image, k=BIN):
    """`image` [H, W, 3] averaged over k × k blocks (the render noise mostly gone, the structure kept)."""
    h, w = image.shape[0] // k * k, image.shape[1] // k * k
    return image[:h, :w].reshape(h // k, k, w // k, k, 3).mean((1, 3))


def l1_on(a, b, mask=None):
    """Mean |a − b| of two linear images clipped to [0, 1] (over `mask` [H, W] if given)."""
    diff = np.abs(np.clip(a, 0, 1) - np.clip(b, 0, 1))
    return float(diff[mask].mean() if mask is not None else diff.mean())


def cmd_check(args):
    """Mitsuba (the project's Renderer) against Cycles, same scene, same film: see ``bench/results/cycles.md``.

    For a nominal and a perturbed scene: L1 of the full renders and of their ``BIN`` × ``BIN`` block means
    (noise mostly averaged out), against Mitsuba's own seed-to-seed difference and against Mitsuba renders
    of slightly wrong scenes (IOR + ``DIOR``, ball ``DBALL_MM`` to the side, camera ``DCAMERA_MM`` to the
    side: what a disagreement of that size would cost), and against the two mirrored Cycles renders (a
    flipped convention); the ball-free part against ``target.ball_free_view``; the ball's silhouette
    (renders of a black texture) against the exact one.
    """
    import torch
    from common import header, markdown_table
    from predistort.render import Renderer
    from predistort.target import ball_free_view

    nominal = load_scene(args.scene) if args.scene else nominal_scene(film=(args.width, args.width * 3 // 4))
    scenes = [("nominal (on-axis)", nominal),
              ("perturbed (seed 1)", perturb(nominal, np.random.default_rng(1), film=nominal.film_size)[0])]
    texture = load_texture(args.texture, nominal)
    black = np.zeros_like(texture)
    rows, data = [], {}
    for name, config in scenes:
        unit = config.units_mm

        def mitsuba(scene, picture=texture, seed=0, spp=args.spp):
            return Renderer(scene).render(torch.from_numpy(picture), spp=spp, seed=seed).cpu().numpy()

        t0 = time.perf_counter()
        m = mitsuba(config)
        mitsuba_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        c = render_linear(config, texture, spp=args.spp, seed=0, threads=args.threads)
        cycles_s = time.perf_counter() - t0
        ball = np.array(config.sphere_center)
        camera = np.array(config.camera_origin)
        wrong = {"Mitsuba, other seed": mitsuba(config, seed=1),
                 f"Mitsuba, IOR +{DIOR}": mitsuba(config.replace(sphere_ior=config.sphere_ior + DIOR)),
                 f"Mitsuba, ball {DBALL_MM} mm right": mitsuba(config.replace(
                     sphere_center=tuple(ball + [DBALL_MM / unit, 0, 0]))),
                 f"Mitsuba, camera {DCAMERA_MM} mm right": mitsuba(config.replace(
                     camera_origin=tuple(camera + [DCAMERA_MM / unit, 0, 0]),
                     camera_target=tuple(np.array(config.camera_target) + [DCAMERA_MM / unit, 0, 0])))}
        # The silhouette: renders of a black print (the plane renders 0, the ball's rim reflects the world).
        sil = {"exact": silhouette(analytic_silhouette(config)),
               "Mitsuba": silhouette(mitsuba(config, black, spp=args.spp_black)),
               "Cycles": silhouette(render_linear(config, black, spp=args.spp_black, seed=0, threads=args.threads))}
        free = ball_free_view(texture, config).numpy()
        outside = analytic_silhouette(config) == 0                       # rays miss the ball, 3 px from its edge
        for shift in (3, -3):
            outside &= np.roll(outside, shift, 0) & np.roll(outside, shift, 1)
        r = {"film": list(config.film_size), "spp": args.spp, "bin": BIN,
             "l1": {"Cycles": l1_on(m, c), **{k: l1_on(m, v) for k, v in wrong.items()},
                    "Cycles mirrored left-right": l1_on(m, c[:, ::-1]), "Cycles mirrored up-down": l1_on(m, c[::-1])},
             "l1_binned_vs_cycles": {"Mitsuba": l1_on(binned(m), binned(c)),
                                     **{k: l1_on(binned(v), binned(c)) for k, v in wrong.items()
                                        if k != "Mitsuba, other seed"}},
             "l1_binned_mitsuba_other_seed": l1_on(binned(m), binned(wrong["Mitsuba, other seed"])),
             "ball_free_l1": {"Cycles": l1_on(c, free, outside), "Mitsuba": l1_on(m, free, outside)},
             "ball_free_pixels": int(outside.sum()),
             "mean": {"Mitsuba": float(m.mean()), "Cycles": float(c.mean())},
             "silhouette_px": {k: [round(v, 3) for v in circle] for k, circle in sil.items()},
             "seconds": {"Mitsuba": round(mitsuba_s, 1), "Cycles": round(cycles_s, 1)}}
        data[name] = {"scene": config.to_dict(), **r}
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            for label, image in (("mitsuba", m), ("cycles", c)):
                np.save(Path(args.keep) / f"{name.split()[0]}_{label}.npy", image)
        rows.append([name, f"{r['l1']['Cycles']:.4f}", f"{r['l1']['Mitsuba, other seed']:.4f}",
                     f"{r['l1']['Cycles mirrored left-right']:.3f} / {r['l1']['Cycles mirrored up-down']:.3f}",
                     f"**{r['l1_binned_vs_cycles']['Mitsuba']:.4f}**", f"{r['l1_binned_mitsuba_other_seed']:.4f}",
                     *(f"{r['l1_binned_vs_cycles'][k]:.4f}" for k in list(wrong)[1:]),
                     f"{r['ball_free_l1']['Cycles']:.4f} / {r['ball_free_l1']['Mitsuba']:.4f}",
                     *("({:.2f}, {:.2f}) r {:.2f}".format(*sil[k]) for k in ("exact", "Mitsuba", "Cycles")),
                     f"{r['seconds']['Mitsuba']} / {r['seconds']['Cycles']}"])
        print(name, json.dumps(r), flush=True)
    md = ["# Cycles against Mitsuba: the same scene, the same film", "",
          *header("python bench/cycles.py check " + " ".join(sys.argv[2:])), "",
          f"Texture `{Path(args.texture).relative_to(REPO) if Path(args.texture).is_relative_to(REPO) else args.texture}`, "
          f"{args.spp} spp for both renderers (silhouettes: a black texture at {args.spp_black} spp). L1: mean "
          f"|difference| of linear images clipped to [0, 1], full resolution, and of {BIN}×{BIN} block means "
          f"(binned: most of the render noise averaged out); the wrong Mitsuba scenes show what a disagreement of "
          f"that size would look like. Ball-free part: every pixel whose rays miss the sphere, 3 px from its "
          f"silhouette, against `target.ball_free_view`. Silhouette: the circle fitted to the rows' outer "
          f"crossings of 0.5 (centre x, y and radius, px, the film's top-left corner at 0); 'exact' is the "
          f"fraction of each pixel's rays that hit the sphere.", "",
          markdown_table(["scene", "L1 Mitsuba–Cycles", "L1 Mitsuba–Mitsuba (other seed)",
                          "L1 Mitsuba–Cycles mirrored ←→ / ↑↓", "binned L1 Mitsuba–Cycles",
                          "binned L1 Mitsuba–Mitsuba (other seed)",
                          *(f"binned L1 {k}–Cycles" for k in list(wrong)[1:]),
                          "ball-free L1 Cycles / Mitsuba", "silhouette exact", "Mitsuba", "Cycles",
                          "render s Mitsuba / Cycles"], rows)]
    md += ["", "Scenes:", *(f"- {name}: `{json.dumps(config.to_dict())}`" for name, config in scenes)]
    if args.results:
        Path(args.results).mkdir(parents=True, exist_ok=True)
        (Path(args.results) / "cycles.md").write_text("\n".join(md) + "\n")
        (Path(args.results) / "cycles.json").write_text(json.dumps(data, indent=1) + "\n")
    print("\n".join(md))


def cmd_silhouette(args):
    """The ball's silhouette only (black print): Mitsuba, Cycles and the exact one, for check's two scenes."""
    import torch
    from common import header, markdown_table
    from predistort.render import Renderer

    nominal = load_scene(args.scene) if args.scene else nominal_scene(film=(args.width, args.width * 3 // 4))
    scenes = [("nominal (on-axis)", nominal)]
    for path in args.extra or []:
        scenes.append((Path(path).stem, load_scene(path).replace(film_width=nominal.film_size[0],
                                                                 film_height=nominal.film_size[1])))
    rows, data = [], {}
    for name, config in scenes:
        black = np.zeros((config.resolution, config.resolution, 3), np.float32)
        images = {"Mitsuba": Renderer(config).render(torch.from_numpy(black), spp=args.spp_black, seed=0).cpu().numpy(),
                  "Cycles": render_linear(config, black, spp=args.spp_black, seed=0, threads=args.threads)}
        sil = {"exact": silhouette(analytic_silhouette(config)), **{k: silhouette(v) for k, v in images.items()}}
        # Row by row: where each render's outline crosses 0.5, left and right (well-conditioned even when only
        # an arc of the outline is in the picture, where the circle's centre and radius trade off).
        width = config.film_size[0]
        edges = {k: {(y, x < width / 2): x for x, y in edge_points(v.mean(axis=2), 0.5)} for k, v in images.items()}
        common = sorted(set(edges["Mitsuba"]) & set(edges["Cycles"]))
        diff = np.array([edges["Cycles"][key] - edges["Mitsuba"][key] for key in common])
        outline = {"rows": len(common), "median_abs_px": float(np.median(np.abs(diff))),
                   "mean_px": float(np.mean(diff)), "p90_abs_px": float(np.percentile(np.abs(diff), 90))}
        data[name] = {"scene": config.to_dict(), "silhouette_px": sil, "outline_cycles_minus_mitsuba": outline}
        gap = math.hypot(sil["Mitsuba"][0] - sil["Cycles"][0], sil["Mitsuba"][1] - sil["Cycles"][1])
        rows.append([name, *("({:.2f}, {:.2f}) r {:.2f}".format(*sil[k]) for k in ("exact", "Mitsuba", "Cycles")),
                     f"{gap:.3f}", f"{sil['Cycles'][2] - sil['Mitsuba'][2]:+.3f}",
                     f"{outline['rows']}: median {outline['median_abs_px']:.3f}, 90% {outline['p90_abs_px']:.3f}, "
                     f"mean {outline['mean_px']:+.3f}"])
        print(name, json.dumps(sil), flush=True)
    md = ["# The ball's silhouette: Mitsuba, Cycles and the exact one", "",
          *header("python bench/cycles.py silhouette " + " ".join(sys.argv[2:])), "",
          f"Renders of a black print at {args.spp_black} spp; the circle fitted to the rows' outer crossings of "
          f"0.5, refitted without crossings more than 1.5 px off (centre x, y and radius, px).", "",
          markdown_table(["scene", "exact", "Mitsuba", "Cycles", "centre Mitsuba–Cycles px",
                          "radius Cycles − Mitsuba px", "outline, row by row: crossings, |Cycles − Mitsuba| px"],
                         rows), "",
          "Where only an arc of the outline is in the picture (an off-axis ball bigger than the film), the fitted "
          "circle's centre and radius trade off along the arc's axis: compare the outline row by row.",
          "", "Scenes:", *(f"- {name}: `{json.dumps(config.to_dict())}`" for name, config in scenes)]
    if args.results:
        Path(args.results).mkdir(parents=True, exist_ok=True)
        (Path(args.results) / "cycles_silhouette.md").write_text("\n".join(md) + "\n")
        (Path(args.results) / "cycles_silhouette.json").write_text(json.dumps(data, indent=1) + "\n")
    print("\n".join(md))


def world_cases(width):
    """check-world's worlds: ``scenes/cylinder_mirror.json`` at a 4:3 `width` film and a 24° lens, its cylinder
    swapped for other objects (one part each of bench/cycles_world.py's shapes and materials)."""
    from predistort.objects import Solid
    world = SceneConfig.load(REPO / "scenes" / "cylinder_mirror.json").replace(
        resolution=512, film_width=width, film_height=width * 3 // 4, fov=24.0)
    on = dict(axis=(0, 0, 1), radius=20.0, height=90.0)
    return [("cylinder mirror (the scene's)", world),
            ("cone mirror", world.replace(objects=(Solid("cone", "mirror", base=(0, 0, 0), axis=(0, 0, 1),
                                                         radius=30.0, height=80.0),))),
            ("glass sphere", world.replace(objects=(Solid("sphere", 1.5, center=(0, 0, 30), radius=30.0),))),
            ("glass rod standing on the print", world.replace(objects=(Solid("cylinder", 1.33, base=(0, 0, 0),
                                                                             **on),))),
            ("glass rod 1 mm above the print", world.replace(objects=(Solid("cylinder", 1.33, base=(0, 0, 1),
                                                                            **on),)))]


def cmd_check_world(args):
    """Mitsuba against Cycles on worlds (:func:`world_cases`): L1 and binned L1 beside Mitsuba's other seed."""
    from common import header, markdown_table
    sys.path.insert(0, str(REPO / "tests"))
    from photos import render                                   # tests/photos.py: the project's Mitsuba render
    rows = []
    for name, world in world_cases(args.width):
        height, width = world.texture_shape
        picture = np.asarray(Image.open(args.texture).convert("RGB").resize((width, height)), np.float32) / 255
        c = render_linear(world, picture, spp=args.spp, seed=0, threads=args.threads)
        m, other = render(world, picture, spp=args.spp, seed=0), render(world, picture, spp=args.spp, seed=1)
        rows.append([name, f"{l1_on(m, c):.4f}", f"{l1_on(m, other):.4f}", f"**{l1_on(binned(m), binned(c)):.4f}**",
                     f"{l1_on(binned(m), binned(other)):.4f}"])
        print(rows[-1], flush=True)
    md = ["# Cycles against Mitsuba on worlds (mirrors and glass beside a print)", "",
          *header("python bench/cycles.py check-world " + " ".join(sys.argv[2:])), "",
          f"`scenes/cylinder_mirror.json` ({args.width}×{args.width * 3 // 4}, 24° lens) with its cylinder mirror "
          f"or another object in its place, the print `{Path(args.texture).name}` resized to the print's aspect, "
          f"{args.spp} spp for both renderers. L1: mean |difference| of the linear images clipped to [0, 1], and "
          f"of their {BIN}×{BIN} block means (binned); against Mitsuba with another seed (the noise alone).", "",
          markdown_table(["world", "L1 Mitsuba–Cycles", "L1 Mitsuba–Mitsuba (other seed)",
                          "binned L1 Mitsuba–Cycles", "binned L1 Mitsuba–Mitsuba"], rows), "",
          "A glass object standing on the print has its base cap in the print's plane: the two coincide, and the "
          "renderers resolve it differently (Mitsuba shows the print through the base, Cycles a dark base); 1 mm "
          "above the print they agree."]
    if args.results:
        Path(args.results).mkdir(parents=True, exist_ok=True)
        (Path(args.results) / "cycles_world.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("nominal", help="write the advised glass scene (960×720) as JSON")
    q.add_argument("--out", required=True)
    q.add_argument("--resolution", type=int, default=256, help="the texture's (print's) side, pixels")
    q.set_defaults(run=cmd_nominal)
    for name, run in (("render", cmd_render), ("photos", cmd_photos), ("check", cmd_check),
                      ("silhouette", cmd_silhouette)):
        q = sub.add_parser(name)
        q.add_argument("--scene", required=name not in ("check", "silhouette"),
                       help="SceneConfig JSON (check, silhouette: default the nominal)")
        q.add_argument("--texture", required=name not in ("check", "silhouette"),
                       default=str(REPO / "examples" / "checker.png"))
        q.add_argument("--spp", type=int, default=64)
        q.add_argument("--threads", type=int, default=2)
        q.add_argument("--seed", type=int, default=0)
        q.set_defaults(run=run)
        if name == "render":
            q.add_argument("--out", required=True, help=".png (sRGB, no noise) or .jpg (the phone stage)")
            q.add_argument("--exposure", type=float, default=1.0)
            q.add_argument("--linear", help="also save the linear render as .npy")
        elif name == "photos":
            q.add_argument("--count", type=int, default=5)
            q.add_argument("--exif", action="store_true",
                           help="write the true lens's 35 mm-equivalent focal length into the JPEG's EXIF")
            q.add_argument("--out", required=True)
        else:
            q.add_argument("--width", type=int, default=FILM[0], help="film width of the default scene (4:3)")
            q.add_argument("--extra", nargs="*", help="silhouette: more scenes (or photos' JSON), at the same film")
            q.add_argument("--spp-black", type=int, default=16)
            q.add_argument("--results", default=None, help="write cycles.md/.json here (e.g. bench/results)")
            q.add_argument("--keep", default=None, help="folder for the renders as .npy")
    q = sub.add_parser("check-world", help="Mitsuba vs Cycles on worlds: mirrors and glass beside a print")
    q.add_argument("--texture", default=str(REPO / "examples" / "checker.png"))
    q.add_argument("--width", type=int, default=200, help="film width (4:3)")
    q.add_argument("--spp", type=int, default=64)
    q.add_argument("--threads", type=int, default=2)
    q.add_argument("--results", default=None, help="write cycles_world.md here (e.g. bench/results)")
    q.set_defaults(run=cmd_check_world)
    args = p.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
