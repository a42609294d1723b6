"""The tutorial's own code ("PyTorch and Mitsuba interoperability", Mitsuba 3 documentation) as one function.

This is the baseline that ``bench/tutorial.py`` and ``bench/quality.py`` time against, and that
``tests/test_tutorial_speed.py`` compares :func:`predistort.train.train` with. The tutorial's cells are copied
in order and unchanged, except:

* ``'format': 'variant'`` in the bitmap dict — the one change to the tutorial's *logic*, needed for it to run
  at all on Mitsuba 3.9: a ``bitmap`` loaded from an 8-bit PNG ``filename`` is stored as uint8
  (``TensorXu8``), and writing a float texture into ``params[key]`` then silently renders garbage
  (near-black). ``'variant'`` stores it as float32, as older Mitsuba releases did.
* API renames, same meaning: ``T().look_at`` / ``T().scale`` / ``T().translate`` (Transform4f's static
  constructors became methods in Mitsuba 3.6) and ``dr.wrap`` (``dr.wrap_ad`` in Dr.Jit < 1.0).
* The variant is chosen by :func:`predistort.backend.init` (the tutorial's preference, cuda_ad_rgb then
  llvm_ad_rgb, plus the check that LLVM is recent enough not to abort the process).
* Lines marked ``# [bench]``: the tutorial's constants become parameters (``filenames``, ``iteration_count``,
  ``spp``), ``torch.manual_seed(seed)`` runs before the model is built (the tutorial leaves the weights to
  chance), and each iteration's end time is recorded. The matplotlib ``display`` calls are left out.

Limits: the textures must be square and of one size; that size is the film's (as in the tutorial).
"""
import time
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class TutorialRun:
    """What :func:`run_tutorial` returns."""
    model: nn.Module            # the tutorial's Model1, trained; call it on an mi.TensorXf [R,R,3]
    losses: list                # per iteration: the loss summed over textures (the tutorial's train_losses)
    seconds: list               # per iteration: seconds since the training loop started, at its end
    textures: list              # the textures as loaded by the tutorial (mi.TensorXf [R,R,3])
    render_texture: object      # the tutorial's wrapped render function (texture, spp, seed) -> image


def run_tutorial(filenames, iteration_count=100, spp=4, seed=0):
    """Run the tutorial's code on the PNG files `filenames` and return a :class:`TutorialRun`.

    Parameters: ``filenames`` square textures of one size (the tutorial's four 128×128 images in
    ../shared/data/tutorial_textures/); ``iteration_count`` Adam steps (tutorial: 100); ``spp`` samples per
    pixel of the training renders (tutorial: 4); ``seed`` the torch seed set just before the model is built.
    Memory: at 128×128 the layer has 268 M weights; the tutorial's code peaks near 8 GB.
    """
    from predistort import backend
    backend.init()                                                   # [bench] instead of mi.set_variant(...)
    import drjit as dr
    import mitsuba as mi

    # -- Load texture dataset ------------------------------------------------------------------------------
    textures = [
        mi.TensorXf(mi.Bitmap(f).convert(mi.Bitmap.PixelFormat.RGB, mi.Struct.Type.Float32))
        for f in filenames
    ]
    res = dr.shape(textures[0])[0]

    # -- Scene construction --------------------------------------------------------------------------------
    from mitsuba.scalar_rgb import Transform4f as T

    scene = mi.load_dict({
        'type': 'scene',
        'integrator': {'type': 'prb'},
        'sensor':  {
            'type': 'perspective',
            'to_world': T().look_at(
                            origin=(0, 0, -2),
                            target=(0, 0, 0),
                            up=(0, -1, 0)
                        ),
            'fov': 60,
            'film': {
                'type': 'hdrfilm',
                'width':  res,
                'height': res,
            },
        },
        'textured_plane': {
            'type': 'rectangle',
            'to_world': T().scale(1.2),
            'bsdf': {
                'type': 'twosided',
                'nested': {
                    'type': 'diffuse',
                    'reflectance': {
                        'type': 'bitmap',
                        'filename': filenames[0],
                        # Mitsuba 3.9: without this the PNG is kept as uint8 and float writes render black.
                        'format': 'variant',
                    },
                }
            }
        },
        'glass_sphere': {
            'type': 'sphere',
            'to_world': T().translate([0, 0, -1]).scale(0.45),
            'bsdf': {
                'type': 'dielectric',
                'int_ior': 1.06,
            },
        },
        'light': {
            'type': 'constant',
        }
    })

    params = mi.traverse(scene)
    key = 'textured_plane.bsdf.brdf_0.reflectance.data'

    # -- Wrap the rendering code ---------------------------------------------------------------------------
    @dr.wrap(source='torch', target='drjit')
    def render_texture(texture, spp=256, seed=1):
        params[key] = texture
        params.update()
        return mi.render(scene, params, spp=spp, seed=seed, seed_grad=seed+1)

    # -- Instantiate a fully connected layer ---------------------------------------------------------------
    class Model1(nn.Module):
        def __init__(self):
            super(Model1, self).__init__()
            self.layers = nn.Sequential(
                nn.Linear(res**2, res**2),
                nn.Sigmoid(),
            )

        def forward(self, texture):
            texture = texture.torch()
            # Evaluate the model one channel as a time
            rgb = [self.layers(texture[:, :, i].view(-1)) for i in range(3)]
            # Reconstruct and return the 3D tensor
            return torch.stack([c.view(res, res) for c in rgb], dim=2)

    torch.manual_seed(seed)                                          # [bench] reproducible initial weights
    model = Model1()
    if 'cuda' in mi.variant():
        model = model.cuda()

    # -- Optimization loop ---------------------------------------------------------------------------------
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0002)
    loss_fn = nn.L1Loss()

    # Optimization hyper-parameters
    iteration_count = iteration_count                                # [bench] tutorial: 100
    spp = spp                                                        # [bench] tutorial: 4

    model.train(mode=True)

    train_losses = []
    seconds, start = [], time.perf_counter()                         # [bench]
    for i in range(iteration_count):
        loss_accum = 0
        optimizer.zero_grad()
        for j, texture in enumerate(textures):
            rendered_img = render_texture(model(texture), spp=spp, seed=i*len(textures)+j)
            loss = loss_fn(rendered_img, texture.torch())
            loss.backward()
            loss_accum += loss.item()
        optimizer.step()
        train_losses.append(loss_accum)
        print(f'Training iteration {i+1}/{iteration_count}, loss: {train_losses[-1]}', end='\r')
        seconds.append(time.perf_counter() - start)                  # [bench]

    model.train(mode=False)
    return TutorialRun(model, train_losses, seconds, textures, render_texture)   # [bench]
