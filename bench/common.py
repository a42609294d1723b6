"""Plumbing shared by the benchmarks: run a method in a fresh process, measure memory, score renders, write
tables.

Peak memory. ``ru_maxrss`` only ever grows, so a method's peak can only be read in a process that ran
nothing else: every method runs in a fresh child process (:func:`run_child`), which reports its own
``RUSAGE_SELF`` peak (in GB = 10⁹ bytes) when it is done. The CPU, by contrast, is shared with whatever else
runs on the machine; that is why each benchmark times the tutorial's code in the same run and reports
ratios against it.

Scores. A render is compared with the texture it should look like with :func:`predistort.images.l1` and
:func:`~predistort.images.psnr`, the app's own measures (both clip to the displayable [0, 1]).
"""
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
if str(REPO) not in sys.path:                 # `python bench/x.py` benchmarks this checkout's predistort
    sys.path.insert(0, str(REPO))

import torch                                  # noqa: E402  (after the path fix, with the rest)

from predistort.images import l1, psnr       # noqa: E402,F401  (the benchmarks' scores are the app's)


def peak_rss_gb():
    """Peak resident memory of this process so far, GB (10⁹ bytes); Linux reports ru_maxrss in KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def run_child(script, args, log=None, timeout=None):
    """Run ``python script *args --result FILE`` in a fresh process and return the JSON it wrote to FILE.

    The child's stdout and stderr go to `log` (an open file) or are captured and shown only on failure.
    Raises RuntimeError with the end of the child's output if it fails.
    """
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(script), *map(str, args), "--result", str(result)]
        out = log if log is not None else subprocess.PIPE
        proc = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT if log is None else log,
                              text=True, timeout=timeout)
        if proc.returncode != 0 or not result.exists():
            tail = (proc.stdout or "")[-3000:] if log is None else f"(see {getattr(log, 'name', 'the log')})"
            raise RuntimeError(f"{' '.join(cmd)} failed with status {proc.returncode}:\n{tail}")
        return json.loads(result.read_text())


def write_result(path, data):
    """Child side of :func:`run_child`: write `data`, with this process's peak memory added, as JSON."""
    Path(path).write_text(json.dumps({**data, "peak_rss_gb": peak_rss_gb()}, indent=1) + "\n")


# -- scores --------------------------------------------------------------------------------------------------
def score(renderer, targets, textures, spp, seed):
    """Render each of `textures` (what goes on the plane) and score it against the matching target.

    Every render uses the same `seed`, so two methods' scores differ by their textures, not by noise.
    Returns a list of ``{"l1", "psnr"}``, one per texture.
    """
    out = []
    for target, texture in zip(targets, textures):
        image = renderer.render(texture.clamp(0, 1), spp=spp, seed=seed).cpu()
        out.append({"l1": l1(image, target), "psnr": psnr(image, target)})
    return out


# -- reports -------------------------------------------------------------------------------------------------
def machine():
    """One line describing this machine: CPU model, cores, memory."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}, torch {torch.__version__}"


def markdown_table(headers, rows):
    """A GitHub markdown table; cells are printed as given (format numbers before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def save_report(name, markdown, data, out_dir=RESULTS):
    """Write ``NAME.md`` and ``NAME.json`` into `out_dir`; returns the markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(markdown + "\n")
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    return out_dir / f"{name}.md"


def header(command):
    """The lines that say how, where and when a report was made."""
    return [f"Command: `{command}`", f"Machine: {machine()}", f"Date: {date.today().isoformat()}"]
