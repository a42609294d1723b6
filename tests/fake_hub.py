"""Offline imitation of the Hugging Face Hub, for tests of the real ``huggingface_hub`` client.

There is no network on the machines that run the tests, yet the weights code goes through
``huggingface_hub`` (``hf_hub_download``, ``snapshot_download``, ``HfApi.create_repo``,
``upload_folder``/``create_commit``, and therefore ``PyTorchModelHubMixin.from_pretrained`` and
``push_to_hub``).  :class:`FakeHub` is a small threaded HTTP server (stdlib only) that answers the
endpoints those calls use, with the headers and JSON that huggingface_hub 2.4.0 checks, so the
*real* client code runs end to end against it.

Usage::

    with FakeHub(tmp_path / "hub") as hub, use_fake_hub(hub, tmp_path / "hf-home"):
        sha = hub.add_repo("user/model", {"config.json": b"{}"})
        path = huggingface_hub.hf_hub_download("user/model", "config.json")

In pytest, use the ``fake_hub`` fixture from ``tests/conftest.py`` (it does exactly that, per test).

How HF_ENDPOINT is applied (huggingface_hub 2.4.0)
---------------------------------------------------
``huggingface_hub.constants`` reads ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE``, ``HF_TOKEN_PATH`` ... **once, at import time**, and several values are copied
further at import time:

* ``constants.ENDPOINT`` and ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` (used by ``hf_hub_url``, so
  by ``hf_hub_download`` and the mixin's ``from_pretrained``);
* ``huggingface_hub.hf_api.api``, the module-level ``HfApi()`` behind the functions
  ``huggingface_hub.create_repo``/``upload_folder``/``model_info``/... keeps the endpoint it had when
  it was built (``HfApi(...)`` instances created later, as ``push_to_hub`` and ``snapshot_download``
  do, read ``constants.ENDPOINT`` when they are created);
* ``utils._http._HUB_ORIGINS`` and ``constants.HF_URL_HOSTS`` (trusted hosts for redirects);
* ``constants.HF_HUB_OFFLINE`` (checked on every request by the session's event hook).

Setting ``os.environ["HF_ENDPOINT"]`` after ``import huggingface_hub`` therefore changes nothing.
Two ways work, both are provided here:

1. In-process (fast, what the fixtures use): :func:`use_fake_hub` sets the environment variables
   *and* patches the already-imported module globals listed above, restoring everything on exit.
   :func:`client_offline` does the same for ``HF_HUB_OFFLINE``.
2. Fresh process (the genuine environment-variable route, as in production): pass
   ``env=FakeHub.client_env(hf_home)`` to ``subprocess.run([sys.executable, ...])``; the child imports
   huggingface_hub with ``HF_ENDPOINT`` already set.  About 0.4 s per process without torch.

What is imitated
----------------
* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}``: ``X-Repo-Commit``, ``ETag`` (git blob
  sha1), ``Content-Length``, ``Accept-Ranges``/``Range`` (206) for ordinary files.  Files the Hub
  would keep in LFS (suffixes of its default ``.gitattributes``, see :data:`LFS_SUFFIXES`, or larger
  than 10 MiB) answer ``302`` with ``Location`` on a second server standing in for the CDN (another
  port, hence another origin: the client does not follow it for metadata, takes ``X-Linked-Etag``
  (sha256) / ``X-Linked-Size`` from the redirect and drops the ``Authorization`` header when it
  downloads, exactly like with the real CDN).  Errors: ``404`` with ``X-Error-Code: RepoNotFound``
  / ``RevisionNotFound`` / ``EntryNotFound`` (the client maps them to ``RepositoryNotFoundError``,
  ``RevisionNotFoundError``, ``RemoteEntryNotFoundError`` (an ``EntryNotFoundError``)); private
  repos answer ``RepoNotFound`` like the Hub: ``401`` without a valid token, ``404`` to a token
  whose user may not read them (the same error as a repo that does not exist).
* Namespaces, as on the Hub: a token (``tokens``: token -> user) may read private repos and write
  only in its user's own namespace and in the organisations the user belongs to (``orgs``: user ->
  organisation names). Creating or deleting a repo elsewhere answers ``403``; writing to another's
  public repo ``403``; to another's private repo ``404`` ``RepoNotFound``.
* Revisions: branches (``main``, ``refs/pr/N``), tags, full or abbreviated (>= 7) commit hashes.
  Every commit is a complete snapshot folder ``<root>/repos/<ns>/<name>/commits/<sha>/``; refs and
  commit metadata live in ``repo.json``.  A FakeHub restarted on the same ``root`` serves the same
  repos.
* ``GET /api/models/{repo_id}[/revision/{rev}]`` (``sha``, ``siblings``, ``blobs=true`` sizes and
  LFS info, ``expand``), ``GET /api/models/{repo_id}/tree/{rev}[/{path}]`` (what
  ``snapshot_download`` lists since 2.x), ``GET /api/models/{repo_id}/refs``.
* Writes, all requiring ``Authorization: Bearer <token>`` with a token known to the hub (else
  ``401``) whose user may write to the namespace (else ``403``): ``POST /api/repos/create`` (``409`` if it exists; a new repo gets an initial commit with
  ``.gitattributes`` like on the Hub), ``DELETE /api/repos/delete``,
  ``POST /api/models/{repo_id}/preupload/{rev}`` (answers ``uploadMode: "regular"`` for every file,
  with the remote git oid so unchanged files are skipped), ``POST /api/models/{repo_id}/commit/{rev}``
  (NDJSON: ``header``, ``file`` (base64), ``deletedFile``, ``deletedFolder``; ``parentCommit`` checked
  (412); ``create_pr=1`` opens ``refs/pr/N``), ``POST .../branch/{name}``, ``POST .../tag/{rev}``.
* ``POST /api/validate-yaml`` (the client calls it before committing a ``README.md``, e.g. in
  ``push_to_hub``), ``GET /api/whoami-v2`` (``name``, ``fullname``, ``avatarUrl``, ``orgs``), and ``GET /api/agent-harnesses`` (huggingface_hub 2.4
  fetches this registry once per process, on the first request, to tag its User-Agent unless
  telemetry is disabled; answered with an empty registry).

Not imitated: datasets/spaces/buckets, LFS or Xet *uploads* (``lfsFile`` lines are refused with 422;
with ``hf_xet`` installed, ``upload_folder`` switches to another pipeline), pagination (one page),
``paths-info``, commits listing, discussions, gated repos, token scopes and read-only roles (every
known token may write where its user may), single-segment legacy repo ids (``gpt2``).

Every request is recorded: ``hub.requests`` is a list of ``(method, raw path without query)``, and
``hub.recorded`` keeps the full :class:`RecordedRequest` (headers, query, body, ``.ndjson()``) so
tests can assert on upload payloads and on which requests carried a token.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = [
    "DEFAULT_TOKEN",
    "DEFAULT_ORG",
    "DEFAULT_USER",
    "LFS_SUFFIXES",
    "FakeHub",
    "RecordedRequest",
    "client_offline",
    "git_blob_sha1",
    "use_fake_hub",
]

#: Write token accepted by a FakeHub unless ``tokens=`` says otherwise.
DEFAULT_TOKEN = "hf_fake_write_token"
#: User that :data:`DEFAULT_TOKEN` belongs to (namespace of repos created without one).
DEFAULT_USER = "fake-user"
#: Organisation that :data:`DEFAULT_USER` belongs to (with write rights), unless ``orgs=`` says otherwise:
#: the namespace that tests push to with :data:`DEFAULT_TOKEN`.
DEFAULT_ORG = "someone"

#: Suffixes tracked by LFS in the ``.gitattributes`` the Hub puts in new repos (abridged). Files
#: with these suffixes, or larger than ``lfs_min_size``, are served through the fake CDN redirect.
LFS_SUFFIXES = (
    ".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gz", ".h5", ".joblib", ".mlmodel", ".model",
    ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet", ".pb", ".pickle", ".pkl", ".pt", ".pth",
    ".rar", ".safetensors", ".tar", ".tflite", ".tgz", ".wasm", ".xz", ".zip", ".zst",
)  # fmt: skip

_GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX_PREFIX = re.compile(r"[0-9a-f]{7,40}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob (what the Hub sends as ``ETag`` for non-LFS files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class RecordedRequest:
    """One request received by the hub (or by its fake CDN: ``server == "cdn"``)."""

    method: str
    path: str  # raw path as sent, without the query string
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    server: str  # "hub" or "cdn"

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[dict]:
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


class HubError(Exception):
    """An error answer: status, message (JSON ``error`` + ``X-Error-Message``), optional code."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


def _repo_not_found(repo_id: str, status: int = 404) -> HubError:
    return HubError(status, f"Repository not found: {repo_id}", "RepoNotFound")


@dataclass
class _Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: Path | None = None  # streamed instead of body
    file_range: tuple[int, int] | None = None  # inclusive byte range of `file`


def _json_response(data: Any, status: int = 200) -> _Response:
    return _Response(status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(data).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections of the client's pool must not block stop()
    request_queue_size = 64  # snapshot_download opens 8 connections at once
    allow_reuse_address = True

    def __init__(self, hub: FakeHub, role: str):
        self.hub = hub
        self.role = role
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    timeout = 30  # idle keep-alive connections give their thread back eventually
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        split = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
            server=self.server.role,
        )
        hub = self.server.hub
        hub._record(request)
        try:
            response = hub._dispatch(request)
        except HubError as err:
            response = _json_response({"error": err.message}, err.status)
            response.headers["X-Error-Message"] = err.message
            if err.code:
                response.headers["X-Error-Code"] = err.code
            response.headers.update(err.headers)
        except Exception as err:  # a bug in the fake: loud in the client's error, kept in hub.errors
            hub.errors.append(traceback.format_exc())
            # 501, not 500: the client retries 5xx in (408, 429, 500, 502, 503, 504) for up to ~20 s.
            response = _json_response({"error": f"FakeHub internal error: {err!r}"}, 501)
        self._send(response)

    def _send(self, response: _Response) -> None:
        if response.file is not None:
            start, end = response.file_range or (0, response.file.stat().st_size - 1)
            length = max(end - start + 1, 0)
        else:
            length = len(response.body)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.file is not None:
            with response.file.open("rb") as f:
                f.seek(start)
                remaining = length
                while remaining > 0:
                    chunk = f.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
        else:
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle


class FakeHub:
    """A tiny Hugging Face Hub serving model repos stored under ``root``.

    Args:
        root: folder holding the repos (created if needed; existing repos are served).
        tokens: token -> user name; a valid token is required for every write and for reading
            private repos. Defaults to ``{DEFAULT_TOKEN: DEFAULT_USER}``.
        orgs: user -> organisations the user belongs to: a user reads private repos and writes in
            its own namespace and in these. Defaults to ``{DEFAULT_USER: [DEFAULT_ORG]}`` when
            ``tokens`` is not given, else to no organisations.
        lfs_min_size: files at least this large are served LFS-style (CDN redirect), like the
            files matching :data:`LFS_SUFFIXES`. ``None`` disables the size rule.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        tokens: Mapping[str, str] | None = None,
        orgs: Mapping[str, list[str]] | None = None,
        lfs_min_size: int | None = 10 * 1024 * 1024,
    ):
        self.root = Path(root)
        self.tokens = dict(tokens) if tokens is not None else {DEFAULT_TOKEN: DEFAULT_USER}
        if orgs is None:
            orgs = {DEFAULT_USER: [DEFAULT_ORG]} if tokens is None else {}
        self.orgs = {user: list(names) for user, names in orgs.items()}
        self.lfs_min_size = lfs_min_size
        self.recorded: list[RecordedRequest] = []
        self.errors: list[str] = []  # tracebacks of bugs in the fake itself (answered with 501)
        self._lock = threading.RLock()
        self._cdn_objects: dict[str, Path] = {}  # sha256 -> file served by the fake CDN
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        (self.root / "repos").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeHub:
        if self._servers:
            return self
        for role in ("hub", "cdn"):
            server = _Server(self, role)
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.02}, name=f"FakeHub-{role}", daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _url(self, role: str) -> str:
        if not self._servers:
            raise RuntimeError("FakeHub is not started (use `with FakeHub(...) as hub` or .start())")
        server = self._servers[0 if role == "hub" else 1]
        host, port = server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def endpoint(self) -> str:
        """Base URL to use as ``HF_ENDPOINT``."""
        return self._url("hub")

    @property
    def cdn_endpoint(self) -> str:
        """Base URL of the fake CDN that LFS-style files redirect to (a different origin)."""
        return self._url("cdn")

    @property
    def token(self) -> str:
        """A valid write token (the first of ``tokens``)."""
        return next(iter(self.tokens))

    def client_env(self, hf_home: str | os.PathLike, *, token: str | None = None) -> dict[str, str]:
        """Environment for a *fresh* Python process whose huggingface_hub must use this hub.

        Based on ``os.environ`` minus any real token, with ``HF_ENDPOINT`` and a private
        ``HF_HOME``/``HF_HUB_CACHE``. ``token`` (e.g. ``hub.token``) is exported as ``HF_TOKEN``.
        """
        env = {k: v for k, v in os.environ.items() if k not in _CLIENT_ENV_CLEARED}
        env.update(_client_env_values(self.endpoint, Path(hf_home)))
        if token is not None:
            env["HF_TOKEN"] = token
        return env

    # ------------------------------------------------------------------ test-side API

    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, raw path)`` of every request received so far (hub and CDN), in order."""
        with self._lock:
            return [(r.method, r.path) for r in self.recorded]

    def clear_requests(self) -> None:
        with self._lock:
            self.recorded.clear()

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str],
        revision: str = "main",
        *,
        private: bool = False,
        message: str = "add files (FakeHub.add_repo)",
    ) -> str:
        """Create ``repo_id`` if needed and commit ``files`` as the whole tree of branch ``revision``.

        A new branch starts from ``main`` (replaced by ``files`` all the same). Returns the commit sha.
        """
        _split_repo_id(repo_id)
        with self._lock:
            if self._load(repo_id) is None:
                self._create(repo_id, private=private, initial_files={})
            meta = self._load(repo_id)
            assert meta is not None
            if revision not in meta["branches"]:
                if revision in meta["tags"] or _HEX40.fullmatch(revision):
                    raise ValueError(f"{revision!r} is a tag or a commit, not a branch")
                meta["branches"][revision] = meta["branches"].get("main")
                self._save(repo_id, meta)
            contents = {p: (c.encode() if isinstance(c, str) else bytes(c)) for p, c in files.items()}
            return self._commit(repo_id, revision, contents, {}, message, "", replace=True)

    def add_tag(self, repo_id: str, tag: str, revision: str = "main") -> str:
        """Tag ``revision`` of ``repo_id``; returns the tagged commit sha."""
        with self._lock:
            meta = self._require_repo(repo_id)
            sha = self._resolve(repo_id, meta, revision)
            meta["tags"][tag] = sha
            self._save(repo_id, meta)
            return sha

    def resolve(self, repo_id: str, revision: str = "main") -> str:
        """Commit sha that ``revision`` points to."""
        with self._lock:
            return self._resolve(repo_id, self._require_repo(repo_id), revision)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Content of every file of ``repo_id`` at ``revision`` (path -> bytes)."""
        with self._lock:
            snapshot = self._snapshot_dir(repo_id, self.resolve(repo_id, revision))
        return {p: (snapshot / p).read_bytes() for p in _list_files(snapshot)}

    def repo_exists(self, repo_id: str) -> bool:
        with self._lock:
            return self._load(repo_id) is not None

    def commit_payloads(self, repo_id: str | None = None) -> list[list[dict]]:
        """Parsed NDJSON bodies of the commit requests received (optionally for one repo)."""
        with self._lock:
            recorded = list(self.recorded)
        prefix = f"/api/models/{repo_id}/commit/" if repo_id else None
        return [
            r.ndjson()
            for r in recorded
            if r.method == "POST"
            and re.fullmatch(r"/api/models/[^/]+/[^/]+/commit/[^/]+", r.path)
            and (prefix is None or r.path.startswith(prefix))
        ]

    # ------------------------------------------------------------------ storage

    def _repo_dir(self, repo_id: str) -> Path:
        ns, name = _split_repo_id(repo_id)
        return self.root / "repos" / ns / name

    def _snapshot_dir(self, repo_id: str, sha: str) -> Path:
        return self._repo_dir(repo_id) / "commits" / sha

    def _load(self, repo_id: str) -> dict | None:
        path = self._repo_dir(repo_id) / "repo.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def _save(self, repo_id: str, meta: dict) -> None:
        path = self._repo_dir(repo_id) / "repo.json"
        tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
        tmp.replace(path)

    def _require_repo(self, repo_id: str) -> dict:
        meta = self._load(repo_id)
        if meta is None:
            raise _repo_not_found(repo_id)
        return meta

    def _create(self, repo_id: str, *, private: bool, initial_files: Mapping[str, bytes]) -> dict:
        repo_dir = self._repo_dir(repo_id)
        (repo_dir / "commits").mkdir(parents=True, exist_ok=True)
        meta = {
            "id": repo_id,
            "private": private,
            "createdAt": _now(),
            "branches": {"main": None},
            "tags": {},
            "commits": {},
            "prs": 0,
        }
        self._save(repo_id, meta)
        if initial_files:
            self._commit(repo_id, "main", dict(initial_files), {}, "initial commit", "", replace=True)
        return meta

    def _resolve(self, repo_id: str, meta: dict, revision: str) -> str:
        sha = meta["branches"].get(revision) or meta["tags"].get(revision)
        if sha is None and _HEX_PREFIX.fullmatch(revision):
            matches = [c for c in meta["commits"] if c.startswith(revision)]
            sha = matches[0] if len(matches) == 1 else None
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return sha

    def _commit(
        self,
        repo_id: str,
        branch: str,
        writes: Mapping[str, bytes],
        deletes: Mapping[str, bool],  # path -> is_folder
        summary: str,
        description: str,
        *,
        replace: bool = False,
        parent_commit: str | None = None,
    ) -> str:
        with self._lock:
            meta = self._require_repo(repo_id)
            if branch not in meta["branches"]:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            head = meta["branches"][branch]
            if parent_commit is not None and parent_commit != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            work = self._repo_dir(repo_id) / f"tmp-{uuid.uuid4().hex}"
            if head is not None and not replace:
                shutil.copytree(self._snapshot_dir(repo_id, head), work)
            else:
                work.mkdir()
            try:
                for path, is_folder in deletes.items():
                    target = work / _safe_path(path.rstrip("/"))
                    if is_folder and target.is_dir():
                        shutil.rmtree(target)
                    elif not is_folder and target.is_file():
                        target.unlink()
                    else:
                        kind = "folder" if is_folder else "file"
                        raise HubError(404, f"A {kind} with this name doesn't exist: {path}", "EntryNotFound")
                for path, content in writes.items():
                    target = work / _safe_path(path)
                    if target.is_dir():
                        raise HubError(400, f"Cannot write file {path}: a folder has this name")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(content)
                tree = {p: git_blob_sha1((work / p).read_bytes()) for p in _list_files(work)}
                seed = json.dumps([repo_id, head, tree, summary, time.time_ns(), uuid.uuid4().hex])
                sha = hashlib.sha1(seed.encode()).hexdigest()
                work.rename(self._snapshot_dir(repo_id, sha))
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            meta["commits"][sha] = {
                "parents": [head] if head else [],
                "title": summary,
                "message": description,
                "date": _now(),
            }
            meta["branches"][branch] = sha
            self._save(repo_id, meta)
            return sha

    def _is_lfs(self, path: str, size: int) -> bool:
        return path.lower().endswith(LFS_SUFFIXES) or (self.lfs_min_size is not None and size >= self.lfs_min_size)

    def _file_entry(self, path: str, file: Path) -> dict:
        """Tree entry of a file, as in ``/api/models/{id}/tree``."""
        data = file.read_bytes()
        entry: dict[str, Any] = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
        if self._is_lfs(path, len(data)):
            digest = hashlib.sha256(data).hexdigest()
            pointer = _lfs_pointer(digest, len(data))
            entry["oid"] = git_blob_sha1(pointer)
            entry["lfs"] = {"oid": digest, "size": len(data), "pointerSize": len(pointer)}
        return entry

    # ------------------------------------------------------------------ HTTP

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.recorded.append(request)

    def _user(self, request: RecordedRequest) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return self.tokens.get(auth[7:].strip())
        return None

    def _require_user(self, request: RecordedRequest) -> str:
        user = self._user(request)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _may_write(self, user: str | None, namespace: str) -> bool:
        """A user writes (and reads private repos) in its own namespace and in its organisations."""
        return user is not None and (namespace == user or namespace in self.orgs.get(user, ()))

    def _readable_repo(self, request: RecordedRequest, repo_id: str) -> dict:
        meta = self._load(repo_id)
        if meta is None:
            raise _repo_not_found(repo_id)
        user = self._user(request)
        if meta["private"] and not self._may_write(user, repo_id.split("/")[0]):
            # As the Hub: 401 without credentials, else 404 -- a private repo of someone else does not exist.
            raise _repo_not_found(repo_id, status=401 if user is None else 404)
        return meta

    def _check_writable(self, request: RecordedRequest, repo_id: str) -> None:
        """Raise unless the request's token may write to the repo: 401, 404 (private, or missing) or 403."""
        user = self._require_user(request)
        with self._lock:
            self._readable_repo(request, repo_id)
        if not self._may_write(user, repo_id.split("/")[0]):
            raise HubError(403, f"You don't have the rights to write to {repo_id}: it is not in your namespace "
                                f"({user}) or one of your organisations")

    def _dispatch(self, request: RecordedRequest) -> _Response:
        if request.server == "cdn":
            return self._cdn(request)
        seg = request.path.split("/")[1:]
        method = request.method
        if seg[:1] == ["api"]:
            rest = seg[1:]
            if rest == ["agent-harnesses"] and method == "GET":
                return _json_response({"standardEnvVars": [], "harnesses": {}})
            if rest == ["whoami-v2"] and method == "GET":
                user = self._require_user(request)
                role = {"role": "write"}
                orgs = [{"type": "org", "name": org, "roleInOrg": "write"} for org in self.orgs.get(user, ())]
                return _json_response({"type": "user", "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                                       "name": user, "fullname": user, "email": None,
                                       "avatarUrl": f"{self.endpoint}/avatars/{user}.png", "isPro": False,
                                       "orgs": orgs, "auth": {"accessToken": role}})
            if rest == ["validate-yaml"] and method == "POST":
                return _json_response({"errors": [], "warnings": []})
            if rest == ["repos", "create"] and method == "POST":
                return self._api_create(request)
            if rest == ["repos", "delete"] and method == "DELETE":
                return self._api_delete(request)
            if len(rest) >= 3 and rest[0] == "models":
                return self._api_model(request, f"{unquote(rest[1])}/{unquote(rest[2])}", rest[3:])
            if len(rest) >= 1 and rest[0] in ("datasets", "spaces", "kernels", "buckets"):
                raise HubError(404, "FakeHub only serves model repos", "RepoNotFound")
        elif len(seg) >= 4 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id = f"{unquote(seg[0])}/{unquote(seg[1])}"
            return self._resolve_file(request, repo_id, unquote(seg[3]), "/".join(unquote(s) for s in seg[4:]))
        raise HubError(404, f"FakeHub: no route for {method} {request.path}")

    # -- /api/repos

    def _api_create(self, request: RecordedRequest) -> _Response:
        user = self._require_user(request)
        payload = request.json()
        if payload.get("type") not in (None, "model"):
            raise HubError(400, "FakeHub only creates model repos")
        name, org = payload.get("name"), payload.get("organization")
        repo_id = f"{org or user}/{name}"
        _split_repo_id(repo_id)  # validates
        if not self._may_write(user, org or user):
            raise HubError(403, f'You don\'t have the rights to create a model under the namespace "{org}"')
        with self._lock:
            if self._load(repo_id) is not None:
                return _json_response(
                    {"error": "You already created this model repo", "url": f"{self.endpoint}/{repo_id}"}, 409
                )
            private = payload.get("visibility", "public") != "public" or bool(payload.get("private"))
            self._create(repo_id, private=private, initial_files={".gitattributes": _GITATTRIBUTES})
        return _json_response({"url": f"{self.endpoint}/{repo_id}", "name": repo_id, "id": repo_id})

    def _api_delete(self, request: RecordedRequest) -> _Response:
        user = self._require_user(request)
        payload = request.json()
        namespace = payload.get("organization") or user
        repo_id = f"{namespace}/{payload.get('name')}"
        with self._lock:
            self._readable_repo(request, repo_id)
            if not self._may_write(user, namespace):
                raise HubError(403, f"You don't have the rights to delete {repo_id}")
            shutil.rmtree(self._repo_dir(repo_id))
        return _Response(200)

    # -- /api/models/{repo_id}/...

    def _api_model(self, request: RecordedRequest, repo_id: str, rest: list[str]) -> _Response:
        method = request.method
        action = rest[0] if rest else None
        if method == "GET" and action is None:
            return self._model_info(request, repo_id, "main")
        if method == "GET" and action == "revision" and len(rest) == 2:
            return self._model_info(request, repo_id, unquote(rest[1]))
        if method == "GET" and action == "tree" and len(rest) >= 2:
            return self._tree(request, repo_id, unquote(rest[1]), "/".join(unquote(s) for s in rest[2:]))
        if method == "GET" and action == "refs" and len(rest) == 1:
            return self._refs(request, repo_id)
        if method == "POST" and action in ("preupload", "commit", "branch", "tag") and len(rest) == 2:
            self._check_writable(request, repo_id)
            handler = {
                "preupload": self._preupload,
                "commit": self._api_commit,
                "branch": self._api_branch,
                "tag": self._api_tag,
            }[action]
            return handler(request, repo_id, unquote(rest[1]))
        raise HubError(404, f"FakeHub: no route for {method} {request.path}")

    def _model_info(self, request: RecordedRequest, repo_id: str, revision: str) -> _Response:
        with self._lock:
            meta = self._readable_repo(request, repo_id)
            sha = self._resolve(repo_id, meta, revision)
        snapshot = self._snapshot_dir(repo_id, sha)
        with_blobs = request.query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        used = 0
        for path in _list_files(snapshot):
            entry = self._file_entry(path, snapshot / path)
            used += entry["size"]
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if "lfs" in entry:
                    lfs = entry["lfs"]
                    sibling["lfs"] = {"sha256": lfs["oid"], "size": lfs["size"], "pointerSize": lfs["pointerSize"]}
            siblings.append(sibling)
        info = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": sha,
            "lastModified": meta["commits"][sha]["date"],
            "createdAt": meta["createdAt"],
            "private": meta["private"],
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "spaces": [],
            "usedStorage": used,
        }
        expand = request.query.get("expand") or request.query.get("expand[]")
        if expand:
            info = {k: v for k, v in info.items() if k in ("_id", "id") or k in expand}
        return _json_response(info)

    def _tree(self, request: RecordedRequest, repo_id: str, revision: str, path: str) -> _Response:
        with self._lock:
            meta = self._readable_repo(request, repo_id)
            sha = self._resolve(repo_id, meta, revision)
        snapshot = self._snapshot_dir(repo_id, sha)
        base = snapshot / _safe_path(path) if path else snapshot
        if not base.is_dir():
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        recursive = request.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        candidates = sorted(base.rglob("*") if recursive else base.iterdir())
        entries = []
        for item in candidates:
            rel = item.relative_to(snapshot).as_posix()
            if item.is_dir():
                tree_oid = hashlib.sha1(f"tree {sha} {rel}".encode()).hexdigest()
                entries.append({"type": "directory", "path": rel, "oid": tree_oid, "size": 0})
            else:
                entries.append(self._file_entry(rel, item))
        return _json_response(entries)

    def _refs(self, request: RecordedRequest, repo_id: str) -> _Response:
        with self._lock:
            meta = self._readable_repo(request, repo_id)

        def refs(kind: str, items: dict) -> list[dict]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": s} for n, s in items.items() if s]

        branches = {n: s for n, s in meta["branches"].items() if not n.startswith("refs/pr/")}
        prs = [
            {"name": n, "ref": n, "targetCommit": s} for n, s in meta["branches"].items() if n.startswith("refs/pr/")
        ]
        data = {"branches": refs("heads", branches), "tags": refs("tags", meta["tags"]), "converts": []}
        if "include_prs" in request.query:
            data["pullRequests"] = prs
        return _json_response(data)

    def _preupload(self, request: RecordedRequest, repo_id: str, revision: str) -> _Response:
        with self._lock:
            meta = self._require_repo(repo_id)
            sha = self._resolve(repo_id, meta, revision)
        snapshot = self._snapshot_dir(repo_id, sha)
        files = []
        for item in request.json().get("files", []):
            path = item["path"]
            existing = snapshot / _safe_path(path)
            oid = git_blob_sha1(existing.read_bytes()) if existing.is_file() else None
            # Always "regular": the commit then carries the content base64-encoded, no LFS upload.
            files.append({"path": path, "uploadMode": "regular", "shouldIgnore": False, "oid": oid})
        return _json_response({"files": files, "commitOid": sha})

    def _api_commit(self, request: RecordedRequest, repo_id: str, revision: str) -> _Response:
        lines = request.ndjson()
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line of a commit must be its header")
        header = lines[0]["value"]
        writes: dict[str, bytes] = {}
        deletes: dict[str, bool] = {}
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            if key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r}")
                writes[value["path"]] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                deletes[value["path"]] = key == "deletedFolder"
            elif key == "lfsFile":
                raise HubError(422, "FakeHub stores no LFS objects (preupload always answers 'regular')")
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        create_pr = request.query.get("create_pr", ["0"])[0] in ("1", "true")
        with self._lock:
            meta = self._require_repo(repo_id)
            if revision not in meta["branches"]:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            branch, pr_url = revision, None
            if create_pr:
                meta["prs"] += 1
                branch = f"refs/pr/{meta['prs']}"
                meta["branches"][branch] = meta["branches"][revision]
                self._save(repo_id, meta)
                pr_url = f"{self.endpoint}/{repo_id}/discussions/{meta['prs']}"
            sha = self._commit(
                repo_id,
                branch,
                writes,
                deletes,
                header.get("summary", ""),
                header.get("description", ""),
                parent_commit=header.get("parentCommit"),
            )
        return _json_response(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.endpoint}/{repo_id}/commit/{sha}",
                "hookOutput": "",
                "pullRequestUrl": pr_url,
            }
        )

    def _api_branch(self, request: RecordedRequest, repo_id: str, branch: str) -> _Response:
        payload = request.json() if request.body else {}
        with self._lock:
            meta = self._require_repo(repo_id)
            if branch in meta["branches"]:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            meta["branches"][branch] = self._resolve(repo_id, meta, payload.get("startingPoint") or "main")
            self._save(repo_id, meta)
        return _Response(200)

    def _api_tag(self, request: RecordedRequest, repo_id: str, revision: str) -> _Response:
        tag = request.json()["tag"]
        with self._lock:
            meta = self._require_repo(repo_id)
            if tag in meta["tags"]:
                raise HubError(409, f"Tag already exists: {tag}")
            meta["tags"][tag] = self._resolve(repo_id, meta, revision)
            self._save(repo_id, meta)
        return _Response(200)

    # -- /{repo_id}/resolve/{revision}/{path} and the fake CDN

    def _resolve_file(self, request: RecordedRequest, repo_id: str, revision: str, path: str) -> _Response:
        with self._lock:
            meta = self._readable_repo(request, repo_id)
            sha = self._resolve(repo_id, meta, revision)
        file = self._snapshot_dir(repo_id, sha) / _safe_path(path) if path else None
        if file is None or not file.is_file():
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        entry = self._file_entry(path, file)
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if "lfs" in entry:
            digest = entry["lfs"]["oid"]
            with self._lock:
                self._cdn_objects[digest] = file
            location = f"{self.cdn_endpoint}/repos/{quote(repo_id)}/{digest}?X-Amz-Signature=fake"
            headers.update(
                {
                    "Location": location,
                    "ETag": f'"{digest}"',
                    "X-Linked-Etag": f'"{digest}"',
                    "X-Linked-Size": str(entry["size"]),
                }
            )
            return _Response(302, headers)
        headers.update({"ETag": f'"{entry["oid"]}"', "Content-Type": "application/octet-stream"})
        return _file_response(request, file, headers)

    def _cdn(self, request: RecordedRequest) -> _Response:
        digest = request.path.rsplit("/", 1)[-1]
        with self._lock:
            file = self._cdn_objects.get(digest)
        if request.method not in ("GET", "HEAD") or file is None:
            return _Response(404, {"Content-Type": "application/xml"}, b"<Error><Code>NoSuchKey</Code></Error>")
        headers = {"ETag": f'"{digest}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        return _file_response(request, file, headers)


def _file_response(request: RecordedRequest, file: Path, headers: dict[str, str]) -> _Response:
    size = file.stat().st_size
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", request.headers.get("range", ""))
    if match and (match[1] or match[2]):
        if match[1]:
            start, end = int(match[1]), int(match[2]) if match[2] else size - 1
        else:
            start, end = max(size - int(match[2]), 0), size - 1
        end = min(end, size - 1)
        if start > end:
            return _Response(416, {**headers, "Content-Range": f"bytes */{size}"})
        headers = {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
        return _Response(206, headers, file=file, file_range=(start, end))
    return _Response(200, headers, file=file)


def _split_repo_id(repo_id: str) -> tuple[str, str]:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_NAME.fullmatch(p) for p in parts) or "--" in repo_id or ".." in repo_id:
        raise HubError(400, f"Invalid repo id {repo_id!r} (FakeHub wants 'namespace/name')")
    return parts[0], parts[1]


def _safe_path(path: str) -> PurePosixPath:
    p = PurePosixPath(path)
    if not path or p.is_absolute() or any(part in ("", ".", "..", ".git") for part in path.split("/")):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return p


def _list_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------- client configuration

# Variables a test client must not inherit from the developer's shell (real tokens, real cache, offline...).
_CLIENT_ENV_CLEARED = frozenset(
    {
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_ENDPOINT",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_ASSETS_CACHE",
        "HUGGINGFACE_ASSETS_CACHE",
        "HF_XET_CACHE",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HUGGINGFACE_CO_STAGING",
    }
)


def _client_env_values(endpoint: str, hf_home: Path) -> dict[str, str]:
    return {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_ASSETS_CACHE": str(hf_home / "assets"),
        "HF_XET_CACHE": str(hf_home / "xet"),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",  # in case hf_xet gets installed: keep the plain HTTP paths imitated here
        "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"])),
    }


@contextlib.contextmanager
def _patched(obj: Any, values: Mapping[str, Any]) -> Iterator[None]:
    missing = object()
    saved = {name: getattr(obj, name, missing) for name in values}
    try:
        for name, value in values.items():
            setattr(obj, name, value)
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                delattr(obj, name)
            else:
                setattr(obj, name, value)


@contextlib.contextmanager
def _patched_environ(values: Mapping[str, str | None]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def use_fake_hub(hub: FakeHub | str, hf_home: str | os.PathLike) -> Iterator[None]:
    """Point the already-imported huggingface_hub at ``hub`` (a FakeHub or an endpoint URL).

    Sets the environment (for code that reads it late and for child processes) and patches the
    module globals huggingface_hub computed at import time (see the module docstring); uses
    ``hf_home`` as HF_HOME (cache in ``hf_home/hub``, no token file); removes any real token from
    the environment; leaves offline mode off. Everything is restored on exit, and the client's
    shared HTTP session is closed on both ends so no pooled connection outlives the hub.
    """
    from urllib.parse import urlsplit as _urlsplit

    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _cache_manager, _http, close_session

    endpoint = (hub.endpoint if isinstance(hub, FakeHub) else str(hub)).rstrip("/")
    hf_home = Path(hf_home)
    env = _client_env_values(endpoint, hf_home)
    environ: dict[str, str | None] = {name: None for name in _CLIENT_ENV_CLEARED}
    environ.update(env)
    origin = _http._url_origin(endpoint)
    host = _urlsplit(endpoint).hostname or ""
    constant_values = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": frozenset(constants.HF_URL_HOSTS | {host}),
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": env["HF_HUB_CACHE"],
        "HUGGINGFACE_HUB_CACHE": env["HF_HUB_CACHE"],
        "HF_ASSETS_CACHE": env["HF_ASSETS_CACHE"],
        "HUGGINGFACE_ASSETS_CACHE": env["HF_ASSETS_CACHE"],
        "HF_XET_CACHE": env["HF_XET_CACHE"],
        "HF_TOKEN_PATH": env["HF_TOKEN_PATH"],
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "AGENT_HARNESSES_PATH": str(hf_home / ".agent_harnesses.json"),
    }
    constant_values = {k: v for k, v in constant_values.items() if hasattr(constants, k)}
    close_session()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_patched_environ(environ))
            stack.enter_context(_patched(constants, constant_values))
            stack.enter_context(_patched(_http, {"_HUB_ORIGINS": frozenset(_http._HUB_ORIGINS | {origin})}))
            stack.enter_context(_patched(hf_api.api, {"endpoint": endpoint}))
            stack.enter_context(_patched(_cache_manager, {"HF_HUB_CACHE": env["HF_HUB_CACHE"]}))
            yield
    finally:
        close_session()


@contextlib.contextmanager
def client_offline() -> Iterator[None]:
    """Offline mode for the already-imported client, as ``HF_HUB_OFFLINE=1`` at import time would give."""
    from huggingface_hub import constants

    with _patched_environ({"HF_HUB_OFFLINE": "1"}), _patched(constants, {"HF_HUB_OFFLINE": True}):
        yield
