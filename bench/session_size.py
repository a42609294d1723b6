"""What one idle visitor costs the server: the Python heap an idle session holds, Gradio's store against the app's.

    python bench/session_size.py                 # 20 sessions, each with one 128² pre-distortion
    python bench/session_size.py --sessions 50 --resolution 512

Builds the app's page (``app.build_demo``, not launched) and, for each store — Gradio's own
``gradio.state_holder.StateHolder`` (the old path) and the app's :class:`predistort.webio.LeanSessions` — makes
``--sessions`` sessions exactly as a request does (the store's entry for a session hash, then its
``gr.State`` value: a :class:`predistort.service.Session`), pre-distorts one example picture in each at
``--resolution``, and measures with ``tracemalloc`` what the sessions hold once their requests are over: the
Python heap per session, and the bytes of torch tensors reachable from them (tracemalloc does not see those).
Results on disk are reported apart. Prints a Markdown table and the ratio.
"""
import argparse
import gc
import sys
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def tensor_bytes(obj, seen=None):
    """Bytes of the torch tensors reachable from `obj` through attributes, lists, tuples and dicts."""
    import torch
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        items = obj.values()
    elif isinstance(obj, (list, tuple)):
        items = obj
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, torch.nn.Module)):
        items = vars(obj).values()
    else:
        return 0
    return sum(tensor_bytes(v, seen) for v in items)


def measure(store_cls, demo, state_id, picture, sessions, resolution):
    """``(heap bytes per session, tensor bytes per session, disk bytes per session)`` for one store."""
    store = store_cls()
    store.set_blocks(demo)
    store["warm"][state_id].predistort(picture, spp=4, resolution=resolution)     # kernels, caches
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    made = []
    for i in range(sessions):
        session = store[f"visitor-{i}"][state_id]
        session.predistort(picture, spp=4, resolution=resolution)
        made.append(session)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    heap = sum(d.size_diff for d in after.compare_to(before, "filename")) / sessions
    tensors = sum(tensor_bytes(s) for s in made) / sessions
    disk = sum(sum(k.nbytes for k in getattr(s, "_kept", [])) for s in made) / sessions
    for s in made:
        s.close()
    return heap, tensors, disk


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=128)
    args = parser.parse_args(argv)
    import app
    from gradio.state_holder import StateHolder
    from predistort.webio import LeanSessions
    demo = app.build_demo()
    state_id = next(k for k, b in demo.blocks.items() if type(b).__name__ == "State")
    picture = str(sorted((REPO / "examples").glob("*.png"))[0])
    rows = {name: measure(cls, demo, state_id, picture, args.sessions, args.resolution)
            for name, cls in (("Gradio's StateHolder (old)", StateHolder), ("LeanSessions (app)", LeanSessions))}
    print(f"`python bench/session_size.py --sessions {args.sessions} --resolution {args.resolution}`: what an idle "
          f"session holds after one pre-distortion at {args.resolution}²\n")
    print("| store | Python heap per session (KB) | tensors per session (KB) | results on disk (KB) |")
    print("|---|---:|---:|---:|")
    for name, (heap, tensors, disk) in rows.items():
        print(f"| {name} | {heap / 1e3:.1f} | {tensors / 1e3:.1f} | {disk / 1e3:.1f} |")
    (old, _, _), (new, _, _) = rows.values()
    print(f"\nPython heap per idle session: {new / old:.2f}× Gradio's store's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
