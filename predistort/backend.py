"""Choose the Mitsuba variant, refuse an LLVM that would crash Dr.Jit, serialise all Dr.Jit work, pin torch threads.

Variant. ``cuda_ad_rgb`` when a CUDA device really renders, else ``llvm_ad_rgb`` (vectorised CPU code compiled
by LLVM at run time). ``PREDISTORT_VARIANT`` forces one. Setting the CUDA variant succeeds on any machine with
an NVIDIA driver, yet ray tracing on it goes through OptiX, i.e. the driver's ``libnvoptix.so.1``, which a
container only gets when ``NVIDIA_DRIVER_CAPABILITIES`` includes ``graphics``; and the textures are torch
tensors on the variant's device, so a CPU build of torch cannot feed it. So CUDA is chosen only after torch
says it can use CUDA and a 4×4 test render of a glass sphere has run (in a child process: a failing GPU
may abort rather than raise, and this process must hold no scene of a variant it then abandons). Otherwise
``llvm_ad_rgb`` is used, :data:`fallback_reason` says why (:func:`describe` gives the line for a status
display), and a GPU that is present but unusable is logged in one warning line with the fix.

LLVM. Dr.Jit 1.5 emits the ``llvm.maximum`` intrinsic. LLVM releases before 18 cannot lower it on x86 and
*abort the whole process* ("LLVM ERROR: Cannot select ... fmaximum") at the first kernel that uses it,
which is the first training step. Measured here: Debian's LLVM 14, 15 and 16 abort, LLVM 19 works. The
check below runs after Dr.Jit has loaded the library but before any kernel is compiled, and turns both
failure modes (library missing, library too old) into a Python exception that says how to fix it.

Threads. Dr.Jit 1.5 is not safe to call from two Python threads at once, even on separate scenes and
without gradients (both threads die with "Variable ... remains dirty"). Every render, and every backward
pass through a render, must hold :data:`RENDER_LOCK`. It is re-entrant, so a caller may hold it around a
render and its backward while the render takes it again inside. Freeing a scene is Dr.Jit work too: an
owner that dies on any thread hands its scene to :func:`bury`, and the lock's next holder frees it.

Torch threads. The solvers' sparse products (:mod:`predistort.solve`, :mod:`predistort.layers`) are
memory-bound; on a loaded 2-core machine a second torch thread only waits for the busier core, so they run
on :func:`solver_threads` (one unless ``PREDISTORT_SOLVE_THREADS`` says more), and :func:`one_thread` pins
work to a single thread whatever the setting.
"""
import contextlib
import logging
import os
import subprocess
import sys
import threading
import warnings

import drjit as dr
import mitsuba as mi
import torch

MIN_LLVM = (18, 0, 0)            # first LLVM that lowers llvm.maximum on x86 (14, 15, 16 abort; 19 tested)


class _RenderLock:
    """A re-entrant lock that, once taken, frees the Dr.Jit objects :func:`bury` was handed.

    Python frees an object on whichever thread drops its last reference, and its cyclic collector runs on
    whichever thread happens to allocate: a Gradio worker, a test's fake Hub, a training thread. Freeing a
    Mitsuba scene is Dr.Jit work, and Dr.Jit records each virtual call over every live shape of the
    process: a shape being destroyed on another thread answers as the base class. (Seen once, in a CI run
    of the suite: a probe failed with ``Shape::compute_surface_interaction(): not implemented!``.) So
    scenes are buried instead, and freed here, by the lock's holder.
    """

    def __init__(self):
        self._lock = threading.RLock()

    def acquire(self, blocking=True, timeout=-1):
        taken = self._lock.acquire(blocking, timeout)
        if taken:
            while _BURIED:
                _BURIED.pop()           # freed now, on the thread that holds the lock
        return taken

    def release(self):
        self._lock.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


_BURIED: list = []               # Dr.Jit objects whose owner died: freed by the next holder of RENDER_LOCK
RENDER_LOCK = _RenderLock()      # one process-wide lock around each render and its backward pass


def bury(*objects):
    """Keep `objects` (a scene, its parameters) until a thread holds :data:`RENDER_LOCK`, which frees them
    there; called by an owner being freed on a thread that may not hold it (``Renderer.__del__``)."""
    _BURIED.append(objects)      # one append: atomic under the GIL, safe from any thread

LLVM_FIX = (
    "Install Debian's libllvm19 (`apt-get install libllvm19`) and, if Dr.Jit still picks an older "
    "library, point it at the new one: `export DRJIT_LIBLLVM_PATH=/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1`."
)

CUDA_FIX = (
    "For the GPU: the container needs NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics (the Dockerfile sets it; "
    "'graphics' makes the NVIDIA runtime provide OptiX, libnvoptix.so.1), and torch must be a CUDA build (build "
    "the image with TORCH_INDEX=https://pypi.org/simple, see the Dockerfile)."
)
NO_GPU = "no CUDA GPU or driver on this machine"
CANDIDATES = ("cuda_ad_rgb", "llvm_ad_rgb")   # tried in this order unless a variant is forced
RENDER_CHECK_TIMEOUT_S = 300                  # the first OptiX launch compiles its pipeline: allow for it

# The test render, run by a child process with the variant as argv[1]: a glass sphere under a constant
# environment, 4×4 pixels at spp 1, so that the ray-tracing pipeline (OptiX on CUDA) is built and launched.
_RENDER_CHECK = """
import sys
import mitsuba as mi
import numpy as np
mi.set_variant(sys.argv[1])
scene = mi.load_dict({"type": "scene", "integrator": {"type": "path", "max_depth": 4},
                      "sensor": {"type": "perspective", "to_world": mi.ScalarTransform4f().look_at(
                                     origin=[0, 0, 4], target=[0, 0, 0], up=[0, 1, 0]),
                                 "film": {"type": "hdrfilm", "width": 4, "height": 4}},
                      "sphere": {"type": "sphere", "bsdf": {"type": "dielectric"}},
                      "light": {"type": "constant"}})
value = float(np.asarray(mi.render(scene, spp=1)).mean())      # copying to numpy waits for the render
if not value > 0:
    raise SystemExit(f"the test render is black or NaN (mean {value})")
"""

log = logging.getLogger(__name__)
_variant = None                  # the variant chosen by init(), once per process
fallback_reason = None           # why the first candidate (CUDA) is not used; None when it is, or when forced


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


def _cuda_present():
    """True when Dr.Jit finds a CUDA driver and device (no CUDA work is done)."""
    return bool(dr.has_backend(dr.JitBackend.CUDA))


def _torch_cuda_reason():
    """None if torch can use CUDA, else why not (textures must be CUDA tensors for cuda_ad_rgb)."""
    import torch
    if torch.cuda.is_available():
        return None
    build = "a CPU build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda} but sees no GPU"
    return f"torch {torch.__version__} cannot use CUDA ({build}), and the textures are torch tensors"


def _render_check(name):
    """Render a 4×4 scene with variant `name` in a child process; None if it works, else why it does not."""
    try:
        result = subprocess.run([sys.executable, "-c", _RENDER_CHECK, name], capture_output=True, text=True,
                                timeout=RENDER_CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"a 4×4 test render did not finish in {RENDER_CHECK_TIMEOUT_S} s"
    except OSError as e:
        return f"a 4×4 test render could not be started ({e})"
    if result.returncode == 0:
        return None
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    optix = [line for line in lines if "optix" in line.lower()]      # the cause, when OptiX is missing
    detail = (optix or lines or ["no message"])[-1]
    how = f"died (signal {-result.returncode})" if result.returncode < 0 else "failed"
    return f"a 4×4 test render {how}: {detail}"


def _check_cuda(name):
    """None if variant `name` can render on this machine's GPU with torch feeding it, else the reason."""
    if not _cuda_present():
        return NO_GPU
    return _torch_cuda_reason() or _render_check(name)


def init(variant=None):
    """Select the Mitsuba variant once for this process and return its name.

    Parameters: ``variant`` forces a variant (else ``PREDISTORT_VARIANT``, else :data:`CANDIDATES` in order:
    cuda_ad_rgb, then llvm_ad_rgb). A CUDA variant is taken only if torch can use CUDA and a test render
    works (see the module docstring); when it is passed over, :data:`fallback_reason` says why. Raises
    :class:`BackendError` with a fix when no candidate works; never aborts. Later calls return the variant
    already chosen (Mitsuba cannot switch safely once scenes exist).
    """
    global _variant, fallback_reason
    if _variant is not None:
        return _variant
    forced = variant or os.environ.get("PREDISTORT_VARIANT")
    candidates = [forced] if forced else list(CANDIDATES)
    failed = []                                      # (variant, why it cannot be used)
    for name in candidates:
        if name not in mi.variants():
            failed.append((name, f"not a variant of this Mitsuba build (it has {', '.join(mi.variants())})"))
            continue
        reason = (_check_cuda(name) if name.startswith("cuda") else None) or _try_variant(name)
        if reason is not None:
            failed.append((name, reason))
            continue
        if failed and not forced:
            fallback_reason = failed[0][1]
            # No GPU at all is the normal CPU case (info); a GPU that is there but unusable deserves a warning.
            gpu_failed = fallback_reason != NO_GPU
            log.log(logging.WARNING if gpu_failed else logging.INFO, "Rendering with %s, not %s: %s.%s", name,
                    failed[0][0], fallback_reason, f" {CUDA_FIX}" if gpu_failed else "")
        _variant = name
        return name
    fixes = [fix for fix, prefix in ((CUDA_FIX, "cuda"), (LLVM_FIX, "llvm"))
             if any(c.startswith(prefix) for c in candidates)]
    raise BackendError("No usable Mitsuba variant.\n  " + "\n  ".join(f"{n}: {r}" for n, r in failed)
                       + "".join("\n" + fix for fix in fixes))


def describe():
    """One line for a status display: which renderer runs, on what, and why not on the GPU when it is not."""
    name = init()
    if name.startswith("cuda"):
        import torch
        return f"Mitsuba `{name}` on the GPU ({torch.cuda.get_device_name(0)})"
    text = f"Mitsuba `{name}` on the CPU"
    return text + (f" (GPU not used: {fallback_reason})" if fallback_reason else "")


def device():
    """The torch device that textures must live on for the chosen variant."""
    return "cuda" if init().startswith("cuda") else "cpu"


@contextlib.contextmanager
def torch_threads(n):
    """Run the enclosed torch work on `n` intra-op threads (restored afterwards); process-wide while it lasts."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread():
    """:func:`torch_threads` (1), whatever the setting.

    For the many small sparse products of the solvers: on a busy 2-core machine a second thread made them
    several times slower, since every product waits for the busiest core.
    """
    return torch_threads(1)


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


def solver_threads():
    """:func:`torch_threads` (:func:`solve_threads`): the solvers' sparse products."""
    return torch_threads(solve_threads())


def trim_memory():
    """Give the memory that renders and solves freed back to the system; True if glibc's heap was trimmed.

    Renders, probes and solves at 1024² free hundreds of MB of buffers at the end of each request, and two
    allocators keep what was freed for reuse instead of returning it:

    * Dr.Jit caches freed device/host buffers by size (``dr.flush_malloc_cache`` empties it; skipped when
      another thread is rendering: :data:`RENDER_LOCK` is taken without waiting);
    * glibc keeps free memory in the heap of the thread that freed it (one "arena" per busy thread, up to 8 per
      core), so a server whose requests run on a pool of threads holds the largest transient of each.
      ``malloc_trim(0)`` returns every arena's free pages (the README's "Memory" section has the figures).

    Costs milliseconds; called when a session finishes a request or closes (:mod:`predistort.service`).
    """
    if RENDER_LOCK.acquire(blocking=False):
        try:
            dr.flush_malloc_cache()
        finally:
            RENDER_LOCK.release()
    libc = _c_library()
    return bool(libc) and bool(libc.malloc_trim(0))


def limit_heap_arenas(arenas=2):
    """Let glibc keep at most `arenas` heaps for all threads (``mallopt(M_ARENA_MAX)``); False where there is none.

    A server runs each request on one of a pool of worker threads, and glibc gives every busy thread a heap of
    its own (up to 8 per core): free memory left in one is not reused by another, and ``malloc_trim`` cannot
    return all of it: each browser visitor left the app a few MB larger (README, "Memory"). Call once, before
    the server's threads start (``app.main``): heaps made before keep existing.
    """
    libc = _c_library()
    return bool(libc) and bool(libc.mallopt(-8, int(arenas)))          # -8: M_ARENA_MAX in glibc's malloc.h


def _c_library():
    global _libc
    if _libc is None:
        try:
            import ctypes
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
            _libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        except (OSError, AttributeError):
            _libc = False
    return _libc


_libc = None
