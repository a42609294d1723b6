"""predistort: learn to pre-distort a texture so that, seen through a glass sphere, it looks undistorted.

Modules, one job each:
    backend   choose the Mitsuba variant, refuse an LLVM that would crash, the process-wide render lock
    scene     the scene as a small typed config (scenes/*.json) and its Mitsuba dict
    render    the differentiable renderer: texture -> image through dr.wrap(source='torch', target='drjit')
    layers    trainable pre-distortion models (the tutorial's layer, the generalising layer)
    probe     measure a scene's light transport render(T) = A·T + b once, by tracing
    probe_cache  keep measured transports per scene, in memory and on disk, within byte budgets
    solve     solve a picture on a measured transport: the instant pre-distortion, no rendering
    train     the training loop
    weights   save / load / push: safetensors + config.json, local folder or Hugging Face Hub repo
    images    load any uploaded picture as a texture; save, compare, measure
    pipeline  apply a model to a texture: initial render, pre-distorted texture, final render, metrics
    cli       python -m predistort train | apply | push
"""
__version__ = "0.1.0"


def load_model(name_or_path="default", **hub_kwargs):
    """Load any predistort model from a local folder, "default" or a Hub repo id (see predistort.weights)."""
    from .layers import PredistortModel
    return PredistortModel.from_pretrained(name_or_path, **hub_kwargs)
