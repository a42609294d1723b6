"""Choose the Mitsuba variant, refuse an LLVM that would crash Dr.Jit, and serialise all Dr.Jit work.

Variant. ``cuda_ad_rgb`` when a CUDA device works, else ``llvm_ad_rgb`` (vectorised CPU code compiled by
LLVM at run time). ``PREDISTORT_VARIANT`` forces one.

LLVM. Dr.Jit 1.5 emits the ``llvm.maximum`` intrinsic. LLVM releases before 18 cannot lower it on x86 and
*abort the whole process* ("LLVM ERROR: Cannot select ... fmaximum") at the first kernel that uses it,
which is the first training step. Measured here: Debian's LLVM 14, 15 and 16 abort, LLVM 19 works. The
check below runs after Dr.Jit has loaded the library but before any kernel is compiled, and turns both
failure modes (library missing, library too old) into a Python exception that says how to fix it.

Threads. Dr.Jit 1.5 is not safe to call from two Python threads at once, even on separate scenes and
without gradients (both threads die with "Variable ... remains dirty"). Every render, and every backward
pass through a render, must hold :data:`RENDER_LOCK`. It is re-entrant, so a caller may hold it around a
render and its backward while the render takes it again inside.

Torch threads. The solvers' sparse products (:mod:`predistort.solve`, :mod:`predistort.layers`) are
memory-bound; on a loaded 2-core machine a second torch thread only waits for the busier core, so they run
on :func:`solver_threads` (one unless ``PREDISTORT_SOLVE_THREADS`` says more), and :func:`one_thread` pins
work to a single thread whatever the setting.
"""
import contextlib
import os
import threading
import warnings

import drjit as dr
import mitsuba as mi
import torch

MIN_LLVM = (18, 0, 0)            # first LLVM that lowers llvm.maximum on x86 (14, 15, 16 abort; 19 tested)
RENDER_LOCK = threading.RLock()  # one process-wide lock around each render and its backward pass

LLVM_FIX = (
    "Install Debian's libllvm19 (`apt-get install libllvm19`) and, if Dr.Jit still picks an older "
    "library, point it at the new one: `export DRJIT_LIBLLVM_PATH=/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1`."
)

_variant = None                  # the variant chosen by init(), once per process


class BackendError(RuntimeError):
    """No usable Mitsuba variant: the message says what is missing and how to fix it."""


def _try_variant(name):
    """Set variant `name` and check that its JIT backend really works; return None or the reason it does not."""
    try:
        mi.set_variant(name)
    except (ImportError, AttributeError, RuntimeError) as e:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if name.startswith("llvm"):
        version = tuple(dr.detail.llvm_version())
        if version < MIN_LLVM:
            path = os.environ.get("DRJIT_LIBLLVM_PATH", "the system's libLLVM.so")
            return (f"Dr.Jit loaded LLVM {'.'.join(map(str, version))} from {path}, but needs LLVM "
                    f"{MIN_LLVM[0]} or newer (older releases abort the process with 'LLVM ERROR: Cannot "
                    f"select ... fmaximum' at the first training step).")
    return None


def init(variant=None):
    """Select the Mitsuba variant once for this process and return its name.

    Parameters: ``variant`` forces a variant (else ``PREDISTORT_VARIANT``, else cuda_ad_rgb then
    llvm_ad_rgb). Raises :class:`BackendError` with a fix when no candidate works; never aborts.
    Later calls return the variant already chosen (Mitsuba cannot switch safely once scenes exist).
    """
    global _variant
    if _variant is not None:
        return _variant
    forced = variant or os.environ.get("PREDISTORT_VARIANT")
    candidates = [forced] if forced else ["cuda_ad_rgb", "llvm_ad_rgb"]
    reasons = []
    for name in candidates:
        if name not in mi.variants():
            reasons.append(f"{name}: not a variant of this Mitsuba build (it has {', '.join(mi.variants())})")
            continue
        reason = _try_variant(name)
        if reason is None:
            _variant = name
            return name
        reasons.append(f"{name}: {reason}")
    fix = LLVM_FIX if any(c.startswith("llvm") for c in candidates) else ""
    raise BackendError("No usable Mitsuba variant.\n  " + "\n  ".join(reasons) + ("\n" + fix if fix else ""))


def device():
    """The torch device that textures must live on for the chosen variant."""
    return "cuda" if init().startswith("cuda") else "cpu"


@contextlib.contextmanager
def one_thread():
    """Run the enclosed torch work on one intra-op thread (restored afterwards).

    Sparse matrix products here take ~1 ms on one thread; with two threads on a loaded 2-core machine
    they took 5–30× longer (every step waits for the busiest core). Process-wide while it lasts.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def solve_threads():
    """Torch threads for the solvers' sparse products: PREDISTORT_SOLVE_THREADS (default 1; at most the
    cores torch sees). Two help only on an otherwise idle machine (see bench/scale.py)."""
    value = os.environ.get("PREDISTORT_SOLVE_THREADS", "").strip()
    try:
        wanted = int(value) if value else 1
    except ValueError:
        warnings.warn(f"PREDISTORT_SOLVE_THREADS={value!r} is not a whole number; using 1")
        wanted = 1
    return max(1, min(wanted, os.cpu_count() or 1))


@contextlib.contextmanager
def solver_threads():
    """Run the enclosed torch work on :func:`solve_threads` intra-op threads (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(solve_threads())
    try:
        yield
    finally:
        torch.set_num_threads(before)
