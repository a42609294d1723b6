"""What a world's solve aims at, the instant solve for it, and the score the transport predicts for a print.

One picture in one world (:func:`aim`) gives:

- the *target*: the picture on :func:`predistort.target.target_rect` as the camera should see it, and the
  pixels it *covers*;
- the *pixels* the solve aims at: for a mirror, the covered pixels that see the print in the mirror (the rest of
  the print is seen directly); for glass, every covered pixel;
- what they aim at: for a mirror, the target × the predicted render of a white print (the picture as a
  reflectance: the light the mirror and the room take from the print near the mirror is the lighting's, not
  the picture's to undo); for glass, the target itself;
- the *start*: white paper for a mirror (what no pixel sees stays paper), the picture printed plain for glass.

:func:`instant` solves it (:func:`predistort.solve.solve_pixels`) and fills the texels between the ones its
samples landed on (:func:`fill_between`). :func:`predicted_score` is what the transport predicts a print scores
(lower is better): a mirror's reflectance error |render ÷ white render − target| over its pixels, glass's error
ratio |render − target| ÷ |render of the plain print − target|. :mod:`predistort.worldsolve`,
:mod:`predistort.worldtolerance` and :mod:`predistort.worldadvise` all use these, so a solve, a tolerance view,
an advisor's candidate and a correctability map aim at the same thing.
"""
from dataclasses import dataclass

import torch

from .solve import rows_of, solve_pixels
from .target import on_print, world_target

FILL_SIGMA = 1.5            # texels: the gaps between the samples' texels are filled from this close
FILL_DENSITY = 0.05         # ... where the seen texels around make up at least this share (else: the start)


@dataclass
class Aim:
    """One picture's aim in one world (module doc): ``target`` [H, W, 3] the picture as the camera should see
    it, ``covered`` [H, W] the pixels it covers, ``pixels`` those the solve aims at, ``goal`` [H, W, 3] what
    they aim at, ``start`` and ``plain`` [rows, cols, 3] the solve's start and the picture printed plain,
    ``white`` [H, W, 3] the predicted render of a white print (a mirror; None for glass)."""
    target: torch.Tensor
    covered: torch.Tensor
    pixels: torch.Tensor
    goal: torch.Tensor
    start: torch.Tensor
    plain: torch.Tensor
    white: torch.Tensor = None


def aim(picture, config, transport, fit="crop"):
    """The :class:`Aim` of `picture` [h, w, 3] (any size, fitted to the target as `fit` says) in `config`."""
    target, covered = world_target(picture, config, fit)
    plain = on_print(picture, config, fit)
    if config.has_mirror:
        white = transport.render(torch.ones_like(plain)).clamp_min(1e-3)
        return Aim(target, covered, covered & transport.masks()[1], target * white, torch.ones_like(plain), plain,
                   white)
    return Aim(target, covered, covered, target, plain, plain)


def seen_texels(transport, pixels):
    """[rows, cols] bool: the texels that the film pixels `pixels` [H, W] see (A's columns with an entry)."""
    A, _ = rows_of(transport, pixels)
    seen = torch.zeros(A.shape[1], dtype=torch.bool)
    seen[A.col_indices().long()] = True
    return seen.reshape(transport.texture_shape)


def fill_between(texture, seen, sigma=FILL_SIGMA):
    """`texture` [rows, cols, 3] with the texels no pixel's samples landed on, but that lie among texels that
    did, set to their neighbours' (normalised Gaussian) mean.

    Why: where a mirror squeezes a long strip of the print into one pixel (a ball's horizon, a cone's tip), the
    pixel's few traced samples land on scattered texels; the solve sets those, but the pixel really sees the
    whole strip. Filled, the strip carries the colour the solve chose for it. Texels far from any seen one
    keep the solve's start."""
    from .probe import _blur
    weight = seen.float()
    density = _blur(weight, sigma)
    filled = torch.stack([_blur(texture[..., c] * weight, sigma) for c in range(3)], -1)
    filled = filled / density.clamp_min(1e-6)[..., None]
    use = (~seen) & (density >= FILL_DENSITY)
    return torch.where(use[..., None], filled.clamp(0, 1), texture)


def instant(target_aim, transport):
    """The instant solve of an :class:`Aim` on `transport`: a texture [rows, cols, 3] (module doc)."""
    texture = solve_pixels(target_aim.goal, target_aim.pixels, transport, target_aim.start)
    return fill_between(texture, seen_texels(transport, target_aim.pixels))


def error_map(texture, target_aim, transport):
    """[H, W]: the predicted per-pixel error of `texture` (mean over colours; 0 where no pixel is aimed at)."""
    seen = transport.render(texture)
    seen = seen / target_aim.white if target_aim.white is not None else seen.clamp(0, 1)
    return torch.where(target_aim.pixels[..., None], (seen - target_aim.target).abs(), 0.0).mean(-1)


def predicted_score(texture, target_aim, transport):
    """The predicted score of `texture` (lower is better; module doc)."""
    a = target_aim
    if a.white is not None:
        return float((transport.render(texture) / a.white - a.target).abs()[a.pixels].mean())
    after = (transport.render(texture).clamp(0, 1) - a.target).abs()[a.covered].mean()
    before = (transport.render(a.plain).clamp(0, 1) - a.target).abs()[a.covered].mean()
    return float(after / before.clamp_min(1e-9))
