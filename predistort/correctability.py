"""Where the pre-distortion cannot work, and why: a per-pixel map of the error that remains, and one sentence.

The map. The scene's transport predicts the render ``A·T + b`` of any texture; for :data:`MAP_PICTURES`
procedural pictures (those of :mod:`predistort.advise`) it solves the best texture ``T*`` and shows, per
pixel, the mean absolute error ``|clamp(A·T* + b) − P|`` that remains (over pictures and colours): what no
texture can fix at this placement, drawn over the render on a fixed colour scale (0 to :data:`ERROR_SCALE`).

The sentence (:func:`advice_sentence`) comes from three facts about the setup, in this order:

1. a ball that hardly bends light (IOR < 1.01) leaves only the render's blur: any placement works;
2. *texel sharing* inside the ball's image: how many camera pixels share one texel of the print. Each pixel
   p inside the ball's disc looks at texels with weights A[p, t]; a texel's share of the disc is
   ``w_t = Σ_p A[p, t]``, and the number of texels that effectively carry the disc is the participation
   ratio ``(Σ w_t)² / Σ w_t²``. Pixels ÷ that number ≥ :data:`SHARING_LIMIT` means that groups of pixels
   see the same texels — near the ball's focus, ``n·r / (2(n − 1))`` from its centre, most of all — and no
   texture can give them different colours: the print must move (the advisor says where);
3. otherwise, where the error sits: at the ball's rim (a pixel there sees two far-apart parts of the print
   at once, through the glass and past it — no placement removes that), or spread thinly (correctable).

Limits: on-axis scenes (the ball's disc is computed from the camera's distance and field of view).
"""
import io
import math

import numpy as np
import torch

from .advise import fixed_pictures, predict
from .physical import PhysicalSetup
from .procedural import texture

ERROR_SCALE = 0.15       # the colour scale's top: per-pixel mean absolute error (colours in [0, 1])
SHARING_LIMIT = 10.0     # pixels sharing one texel (median inside the ball) from which the print must move
RIM_PX = 2.0             # half width of the ball's rim, pixels
MAP_PICTURES = 24        # procedural pictures averaged in the map (3 of each kind: no one picture shows through)


def ball_disc(config):
    """The ball's outline in the picture: (centre x, centre y, radius), pixels (on-axis scenes)."""
    setup = PhysicalSetup.from_scene(config)
    if not setup.on_axis or config.film_size != (config.resolution, config.resolution):
        raise ValueError("The correctability map needs an on-axis camera aimed at the print's centre, with a "
                         "square film of the texture's side.")
    alpha = math.asin(setup.ball_diameter_mm / 2 / setup.camera_distance_mm)       # apparent angular radius
    radius = math.tan(alpha) / math.tan(math.radians(config.fov) / 2) * config.resolution / 2
    return config.resolution / 2, config.resolution / 2, radius


def _regions(config):
    """Boolean [R, R] masks: inside the ball's disc, its rim, outside."""
    cx, cy, radius = ball_disc(config)
    y, x = np.mgrid[:config.resolution, :config.resolution] + 0.5
    dist = np.hypot(x - cx, y - cy)
    return dist < radius - RIM_PX, np.abs(dist - radius) <= RIM_PX, dist > radius + RIM_PX


def sharing_map(transport):
    """[R, R]: how many pixels share the texels each pixel sees (1: texels of its own; module doc)."""
    A, At, res = transport.A, transport.At, transport.resolution
    ones = torch.ones(res * res, 1)
    seen_by = At @ ones                                             # per texel: pixels' total weight on it
    gain = (A @ ones).clamp_min(1e-9)
    return ((A @ seen_by) / gain).reshape(res, res).numpy()


def texel_sharing(transport):
    """The median of :func:`sharing_map` inside the ball's disc (1.0 when the disc is empty)."""
    inside, _, _ = _regions(transport.config)
    return float(np.median(sharing_map(transport)[inside])) if inside.any() else 1.0


def advice_sentence(transport, error, advice=None):
    """One sentence on what to change, from the setup, the texel sharing and the error map [R, R].

    `advice`: an :class:`predistort.advise.Advice` for this setup, if one was computed (it then names the
    distance to move to).
    """
    setup = PhysicalSetup.from_scene(transport.config)
    inside, rim, _ = _regions(transport.config)
    asked = advice.setup.to_dict() if advice is not None else {}
    if advice is not None and not all(math.isclose(asked[k], v, rel_tol=1e-6) for k, v in setup.to_dict().items()
                                      if k != "resolution"):
        raise ValueError("advice_sentence(): the advice was computed for another setup than this scene's")
    move = ""
    if advice is not None and advice.moved:
        move = (f" Move it to {advice.best.print_distance_mm:g} mm from the ball's centre (predicted error ratio "
                f"{advice.current_ratio:.2f} → {advice.best_ratio:.2f}).")
    if setup.ior < 1.01:
        return ("The ball hardly bends light (IOR ≈ 1): the print can go anywhere; what remains is the "
                "render's own blur.")
    sharing = texel_sharing(transport)
    if sharing >= SHARING_LIMIT:
        focus, distance = setup.focal_distance_mm, setup.print_distance_mm
        where = (f"the print ({distance:g} mm from the ball's centre) sits near the ball's focus (≈ {focus:.0f} mm): "
                 if focus / 2 <= distance <= 2 * focus else "")             # within a factor 2 of it
        return (f"Inside the ball, {where}about {sharing:.0f} pixels share each texel of the print, and no texture "
                f"can give them different colours." + (move or " Run the advisor to find a better distance."))
    if move:
        return "Most of the picture can be corrected here, and better elsewhere." + move
    if inside.any() and rim.any() and error[rim].mean() > 2 * error[inside].mean():
        return ("What remains sits at the ball's rim, where a pixel sees two far-apart parts of the print at once "
                "(through the glass and past it); no placement or texture removes that.")
    return "Every pixel inside the ball has texels of its own: the pre-distortion can correct most of the picture."


def overlay(error, background, config, title=None):
    """The error map [R, R] over `background` [R, R, 3] (grey), the ball's outline, a colour bar: PIL image."""
    from matplotlib.figure import Figure
    from PIL import Image
    fig = Figure(figsize=(4.6, 3.8), dpi=100)
    ax = fig.add_subplot()
    grey = np.asarray(background, dtype=np.float32).mean(-1)
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    alpha = np.clip(error / ERROR_SCALE, 0, 1) * 0.85 + 0.15
    shown = ax.imshow(error, cmap="inferno", vmin=0, vmax=ERROR_SCALE, alpha=alpha, interpolation="nearest")
    cx, cy, radius = ball_disc(config)
    from matplotlib.patches import Circle
    ax.add_patch(Circle((cx - 0.5, cy - 0.5), radius, fill=False, color="#6cf", lw=0.8, ls="--"))
    ax.set_axis_off()
    ax.set_title(title or "error no texture can remove (per pixel)", fontsize=9)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def correctability(transport, background=None, advice=None, pictures=None):
    """The correctability map of `transport`'s scene and what to change: ``(PIL image, sentence)``.

    Parameters: ``background`` [R, R, 3] the render to draw over (default: the predicted render of a
    procedural checkerboard); ``advice`` an :class:`~predistort.advise.Advice` for this setup, if computed;
    ``pictures`` [N, R, R, 3] (default: :data:`MAP_PICTURES` of the advisor's procedural pictures). Cost:
    the solves of the pictures, no render. The scene must be on-axis
    (:mod:`predistort.physical`).
    """
    if pictures is None:
        pictures = fixed_pictures(transport.resolution, MAP_PICTURES)
    prediction = predict(transport, pictures)
    if background is None:
        checkers = texture(0, transport.resolution, "checkers")
        background = transport.render(checkers).clamp(0, 1).numpy()
    sentence = advice_sentence(transport, prediction.error_after, advice)
    title = f"error no texture can remove · predicted ratio {prediction.ratio:.2f}"
    return overlay(prediction.error_after, background, transport.config, title), sentence
