"""Keep measured light transports per scene — in memory and on disk, within byte budgets — so each is probed once.

A transport (:class:`predistort.probe.Transport`) depends on the scene config, the Mitsuba variant, the probe's
settings (:func:`predistort.probe.settings_for`) and :data:`predistort.probe.PROBE_VERSION`, all in its
:func:`cache_key`; :func:`transport_for` answers from memory, else from
``$PREDISTORT_CACHE/probes/<key>.safetensors`` (default ``~/.cache/predistort``), else probes and stores.
A transport's size grows with R² (:attr:`~predistort.probe.Transport.nbytes`: ~4 MB at 128², ~320 MB at
1024²), so both caches are bounded in bytes: the most recently used transports within
``PREDISTORT_CACHE_MEMORY_MB`` stay in memory, the most recently used files within ``PREDISTORT_CACHE_MAX_MB``
(and ``PREDISTORT_CACHE_MAX_PROBES`` files) on disk. The newest is always kept, whatever its size.

Threads: two sessions asking for the same new scene probe it once (one probe at a time); a transport
already in memory is answered without waiting for a probe in progress.
"""
import contextlib
import hashlib
import json
import os
import threading
import warnings
from pathlib import Path

from . import backend
from .probe import PROBE_VERSION, Transport, probe, settings_for
from .scene import DEFAULT

_memory = {}                             # cache key -> Transport, least recently used first
_memory_lock = threading.Lock()          # guards _memory
_probe_lock = threading.Lock()           # one probe (or load) at a time: a new scene asked twice is probed once
MEMORY_MB = 1024                         # transports kept in memory, MB (PREDISTORT_CACHE_MEMORY_MB overrides)
DISK_MB = 2048                           # probe files kept on disk, MB (PREDISTORT_CACHE_MAX_MB overrides)
MAX_ON_DISK = 64                         # ... and at most this many files (PREDISTORT_CACHE_MAX_PROBES overrides)


def cache_dir():
    """Folder of cached probes: ``$PREDISTORT_CACHE/probes`` (default ``~/.cache/predistort/probes``)."""
    root = os.environ.get("PREDISTORT_CACHE") or Path.home() / ".cache" / "predistort"
    return Path(root).expanduser() / "probes"


def cache_key(config, variant=None):
    """A short hash of everything the transport depends on: the scene config, the variant, every setting of
    the probe that changes what it measures (:func:`predistort.probe.settings_for`: the sampling, the paths
    followed, the calibration, Mitsuba's version), and PROBE_VERSION for what no setting says (its code)."""
    payload = json.dumps({"scene": config.to_dict(), "variant": variant or backend.init(),
                          "settings": settings_for(config), "probe_version": PROBE_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _setting(name, default, minimum):
    """A whole-number setting from the environment; a malformed value warns and keeps `default`."""
    value = os.environ.get(name, "").strip()
    try:
        return max(int(value), minimum) if value else default
    except ValueError:
        warnings.warn(f"{name}={value!r} is not a whole number; keeping {default}")
        return default


def memory_budget():
    """Bytes of transports kept in memory: PREDISTORT_CACHE_MEMORY_MB (default :data:`MEMORY_MB`)."""
    return _setting("PREDISTORT_CACHE_MEMORY_MB", MEMORY_MB, 0) * 2 ** 20


def disk_budget():
    """``(bytes, files)`` the disk cache keeps: PREDISTORT_CACHE_MAX_MB (default :data:`DISK_MB`) and
    PREDISTORT_CACHE_MAX_PROBES (default :data:`MAX_ON_DISK`)."""
    return (_setting("PREDISTORT_CACHE_MAX_MB", DISK_MB, 0) * 2 ** 20,
            _setting("PREDISTORT_CACHE_MAX_PROBES", MAX_ON_DISK, 1))


def _remember(key, transport):
    """Put `transport` in memory as the most recently used; evict the least recently used beyond the budget
    (the newest is kept even if it alone exceeds it)."""
    budget = memory_budget()
    with _memory_lock:
        _memory.pop(key, None)
        _memory[key] = transport
        while len(_memory) > 1 and sum(t.nbytes for t in _memory.values()) > budget:
            _memory.pop(next(iter(_memory)))


def _prune_disk(folder, keep):
    """Delete the least recently used probe files of `folder` beyond the byte and file budgets (each scene a
    visitor tries adds one: a public app must not fill its disk); `keep` (the newest file) always stays."""
    max_bytes, max_files = disk_budget()
    files = sorted(folder.glob("*.safetensors"), key=lambda f: f.stat().st_mtime, reverse=True)
    files = [keep] + [f for f in files if f != keep]
    total = 0
    for i, f in enumerate(files):
        with contextlib.suppress(OSError):
            total += f.stat().st_size
            if i > 0 and (i >= max_files or total > max_bytes):
                f.unlink()


def transport_for(config=DEFAULT, renderer=None, cache=True, progress=None):
    """The transport of `config`: from memory, else from the disk cache, else probed (and then cached).

    ``cache=False`` probes afresh and stores nothing. An unreadable or outdated cache file is probed again
    and overwritten. A cache folder that cannot be written is not an error (the probe is kept in memory).
    ``progress(fraction, message)`` is told how a probe goes (see :func:`probe`); not called on a cache hit.
    """
    if not cache:
        return probe(config, renderer=renderer, progress=progress)
    key = cache_key(config)
    with _memory_lock:
        if key in _memory:
            _memory[key] = _memory.pop(key)                         # most recently used last
            return _memory[key]
    with _probe_lock:
        with _memory_lock:                                          # probed by another thread meanwhile?
            if key in _memory:
                return _memory[key]
        path = cache_dir() / f"{key}.safetensors"
        transport = None
        if path.exists():
            try:
                transport = Transport.load(path, config)
            except (ValueError, OSError):
                transport = None
            with contextlib.suppress(OSError):                      # a read-only cache is still read
                os.utime(path)                                      # recently used: pruned last
            if transport is not None and transport.config != config:
                transport = None
        if transport is None:
            transport = probe(config, renderer=renderer, progress=progress)
            try:
                transport.save(path)
                _prune_disk(path.parent, keep=path)
            except OSError:
                pass
        _remember(key, transport)
        return transport


def is_probed(config):
    """True when :func:`transport_for` would answer `config` from memory or disk, without probing."""
    key = cache_key(config)
    with _memory_lock:
        if key in _memory:
            return True
    return (cache_dir() / f"{key}.safetensors").exists()
