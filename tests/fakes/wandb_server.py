"""A small in-process fake of the W&B HTTP API, for tests.

The real ``wandb`` client (its Go service, ``wandb-core``) is pointed at this
server with ``WANDB_BASE_URL=http://127.0.0.1:<port>``; see :func:`online_env`.
It serves only what a run needs: GraphQL (``POST /graphql``), the file stream
(``POST /files/<entity>/<project>/<run>/file_stream``) and the upload URLs it
hands out (``PUT``/``POST``/``GET`` under ``/storage/``). Anything else is
answered ``200 {}`` and recorded.

Usage (import the fixtures into a conftest, or into the test module)::

    from tests.fakes.wandb_server import online_env, wandb_online, wandb_server  # noqa: F401

    def test_something(wandb_server):
        env = online_env(wandb_server)          # for a subprocess running wandb
        ...
        assert [r["_step"] for r in wandb_server.history(run_id)] == [0, 1, 2]

Faults are switchable at any time from the test thread::

    server.fault = "refuse"     # close the listening socket and cut open
                                # connections: connect() gets ECONNREFUSED
    server.fault = "500"        # or "429" (with Retry-After: 1)
    server.fault = "hang"       # read the request, never answer; on clear (or
                                # stop) the connection is closed unanswered
    server.fault = "malformed"  # 200 with a body that is not JSON
    server.set_fault("malformed", only="file_stream")  # one endpoint kind
    server.fault = None         # back to normal ("refuse": the same port again)

Endpoint kinds (``only=``): ``"graphql"``, ``"file_stream"``, ``"storage"``
(upload/download URLs) and ``"other"``. A request answered under a fault is
recorded (``RecordedRequest.fault``) but does not change the fake's state.

GraphQL answers are shaped after the query the client sent: the fake parses the
selection set (fragments, aliases, ``@include``/``@skip``), fills what it knows
and leaves every other requested leaf ``null``, so fields a later client adds
do not break it. Operations without a handler are listed in
:attr:`FakeWandbServer.unknown_operations` and answered with ``null`` for a
query (nothing found) or a payload of ``null`` leaves for a mutation.

wandb-core settings that this module's :func:`online_env` relies on are read
as whole seconds (see there); the measured behaviour of wandb 0.31 under each
fault is pinned by ``tests/fakes/test_wandb_server.py``.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

__all__ = [
    "FAKE_API_KEY",
    "FAULTS",
    "KINDS",
    "FakeArtifact",
    "FakeWandbServer",
    "RecordedRequest",
    "online_env",
    "wandb_online",
    "wandb_server",
]

FAKE_API_KEY = "fake0000" * 5  # 40 characters, the length of a real W&B key
DEFAULT_ENTITY = "fake-entity"
FAULTS = frozenset({"refuse", "500", "429", "hang", "malformed"})
KINDS = frozenset({"graphql", "file_stream", "storage", "other"})
MALFORMED_BODY = b'{"data": {"this is": not json <html>'

_FILE_STREAM_RE = re.compile(r"^/files/([^/]+)/([^/]+)/([^/]+)/file_stream/?$")
_RUN_FILE_RE = re.compile(r"^/storage/runs/([^/]+)/([^/]+)/([^/]+)/(.+)$")
_ARTIFACT_FILE_RE = re.compile(r"^/storage/artifacts/([^/]+)/(.+)$")
_MANIFEST_RE = re.compile(r"^/storage/manifests/([^/]+)/(.+)$")


# --------------------------------------------------------------------------
# Recorded state
# --------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request the fake received (in arrival order)."""

    method: str
    path: str
    kind: str  # graphql | file_stream | storage | other
    operation: str | None  # GraphQL operationName (or parsed from the query)
    body: Any  # parsed JSON body, or None when it is not JSON
    raw: bytes  # the (decompressed) body
    headers: dict[str, str]
    time: float  # time.monotonic() at arrival
    fault: str | None = None  # the fault that answered it, if any
    status: int | None = None  # None: no answer (hang, or still in progress)
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeArtifact:
    """An artifact as the client created it through GraphQL."""

    id: str
    name: str  # collection (sequence) name
    type: str
    entity: str
    project: str
    digest: str
    run_id: str | None
    client_id: str | None
    sequence_client_id: str | None
    aliases: list[str]
    metadata: Any
    description: str | None
    state: str = "PENDING"
    files: dict[str, bytes] = field(default_factory=dict)  # uploaded, by entry name
    manifest: dict[str, Any] | None = None  # the uploaded wandb_manifest.json
    used_by: list[str] = field(default_factory=list)  # run ids (UseArtifact)
    version_index: int = 0


@dataclass
class _Run:
    name: str  # the run id the user sees (``run.id``)
    entity: str
    project: str
    storage_id: str
    display_name: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # {"key": {"value": ...}}
    summary: dict[str, Any] | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None
    group: str | None = None
    job_type: str | None = None
    state: str | None = None
    history: dict[int, dict[str, Any]] = field(default_factory=dict)  # line -> row
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    console: dict[int, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    uploaded: list[str] = field(default_factory=list)  # names the stream marked uploaded
    exit_code: int | None = None
    complete: bool = False
    preempting: bool = False
    upserts: int = 0


# --------------------------------------------------------------------------
# A very small GraphQL reader: enough to shape answers after the query.
# --------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r'"""(?:.|\n)*?"""|"(?:\\.|[^"\\])*"|\.\.\.|[_A-Za-z][_0-9A-Za-z]*'
    r"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[{}()\[\]:=@$!&|]"
)


@dataclass
class _Field:
    name: str
    alias: str | None
    selections: list[Any] | None
    directives: list[tuple[str, dict[str, str]]]


@dataclass
class _Fragment:  # inline fragment (name None) or spread (name set)
    type_cond: str | None
    selections: list[Any] | None
    spread: str | None
    directives: list[tuple[str, dict[str, str]]]


@dataclass
class _Operation:
    kind: str  # query | mutation | subscription
    name: str | None
    selections: list[Any]


class _GqlDocument:
    """Operations and fragments of one GraphQL document."""

    def __init__(self, text: str) -> None:
        self.tokens = [t for t in _TOKEN_RE.findall(re.sub(r"#[^\n]*", "", text)) if t != ","]
        self.pos = 0
        self.operations: list[_Operation] = []
        self.fragments: dict[str, _Fragment] = {}
        while self.pos < len(self.tokens):
            self._definition()

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self) -> str:
        if self.pos >= len(self.tokens):
            raise ValueError("unexpected end of GraphQL document")
        tok: str = self.tokens[self.pos]
        self.pos += 1
        return tok

    def _skip_balanced(self, open_: str, close: str) -> list[str]:
        depth = 0
        taken: list[str] = []
        while True:
            tok = self._next()
            taken.append(tok)
            if tok == open_:
                depth += 1
            elif tok == close:
                depth -= 1
                if depth == 0:
                    return taken

    def _directives(self) -> list[tuple[str, dict[str, str]]]:
        found: list[tuple[str, dict[str, str]]] = []
        while self._peek() == "@":
            self._next()
            name = self._next()
            args: dict[str, str] = {}
            if self._peek() == "(":
                toks = self._skip_balanced("(", ")")[1:-1]
                i = 0
                while i + 2 < len(toks):  # key ":" ( "$" name | literal )
                    if toks[i + 2] == "$" and i + 3 < len(toks):
                        args[toks[i]] = "$" + toks[i + 3]
                        i += 4
                    else:
                        args[toks[i]] = toks[i + 2]
                        i += 3
            found.append((name, args))
        return found

    def _definition(self) -> None:
        tok = self._peek()
        if tok == "{":
            self.operations.append(_Operation("query", None, self._selection_set()))
            return
        kind = self._next()
        if kind == "fragment":
            frag_name = self._next()
            self._next()  # "on"
            type_cond = self._next()
            directives = self._directives()
            self.fragments[frag_name] = _Fragment(
                type_cond, self._selection_set(), None, directives
            )
            return
        if kind not in ("query", "mutation", "subscription"):
            raise ValueError(f"unexpected GraphQL token {kind!r}")
        name = None
        if self._peek() not in ("(", "{", "@"):
            name = self._next()
        if self._peek() == "(":
            self._skip_balanced("(", ")")
        self._directives()
        self.operations.append(_Operation(kind, name, self._selection_set()))

    def _selection_set(self) -> list[Any]:
        if self._next() != "{":
            raise ValueError("expected '{' in GraphQL document")
        selections: list[Any] = []
        while self._peek() != "}":
            if self._peek() == "...":
                self._next()
                if self._peek() == "on":
                    self._next()
                    type_cond = self._next()
                    directives = self._directives()
                    selections.append(_Fragment(type_cond, self._selection_set(), None, directives))
                elif self._peek() in ("{", "@"):
                    directives = self._directives()
                    selections.append(_Fragment(None, self._selection_set(), None, directives))
                else:
                    spread = self._next()
                    selections.append(_Fragment(None, None, spread, self._directives()))
                continue
            name = self._next()
            alias = None
            if self._peek() == ":":
                self._next()
                alias, name = name, self._next()
            if self._peek() == "(":
                self._skip_balanced("(", ")")
            directives = self._directives()
            sub = self._selection_set() if self._peek() == "{" else None
            selections.append(_Field(name, alias, sub, directives))
        self._next()
        return selections


_LIST_FIELDS = frozenset({"edges", "features", "uploadUrlParts", "tags", "aliases"})
# Concrete types -> the interfaces they implement (for "... on Interface").
_IMPLEMENTS: dict[str, frozenset[str]] = {
    "ArtifactSequence": frozenset({"ArtifactCollection"}),
    "ArtifactPortfolio": frozenset({"ArtifactCollection"}),
}
_LEAF_DEFAULTS: dict[str, Any] = {"success": True}


def _included(directives: list[tuple[str, dict[str, str]]], variables: dict[str, Any]) -> bool:
    for name, args in directives:
        raw = args.get("if")
        if raw is None:
            continue
        value = bool(variables.get(raw[1:])) if raw.startswith("$") else raw == "true"
        if name == "include" and not value:
            return False
        if name == "skip" and value:
            return False
    return True


def _merge(into: dict[str, Any], more: dict[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(into.get(key), dict) and isinstance(value, dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _shape(
    selections: list[Any],
    value: Any,
    doc: _GqlDocument,
    variables: dict[str, Any],
) -> dict[str, Any]:
    """Project ``value`` onto the selection set; missing leaves become null."""
    src = value if isinstance(value, dict) else {}
    out: dict[str, Any] = {}
    for sel in selections:
        if not _included(sel.directives, variables):
            continue
        if isinstance(sel, _Fragment):
            frag = doc.fragments.get(sel.spread) if sel.spread else sel
            if frag is None or frag.selections is None:
                continue
            typename = src.get("__typename")
            if (
                frag.type_cond
                and typename
                and frag.type_cond != typename
                and frag.type_cond not in _IMPLEMENTS.get(typename, ())
            ):
                continue
            _merge(out, _shape(frag.selections, src, doc, variables))
            continue
        key = sel.alias or sel.name
        present = sel.name in src
        item = src.get(sel.name)
        if sel.selections is None:
            out[key] = item if present else _LEAF_DEFAULTS.get(sel.name)
        elif present and item is None:
            out[key] = None
        elif isinstance(item, list):
            out[key] = [_shape(sel.selections, x, doc, variables) for x in item]
        elif present:
            out[key] = _shape(sel.selections, item, doc, variables)
        else:
            out[key] = (
                [] if sel.name in _LIST_FIELDS else _shape(sel.selections, {}, doc, variables)
            )
    return out


def _operation_name(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    name = body.get("operationName")
    if isinstance(name, str) and name:
        return name
    query = body.get("query")
    if isinstance(query, str):
        m = re.search(r"\b(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)", query)
        if m:
            return m.group(1)
    return None


def _json_loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _b64id(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeWandbServer) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Like ThreadingMixIn, but the fake keeps the threads and sockets so
        # that it can cut connections ("refuse", stop) and join the threads.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"fake-wandb-conn-{client_address[1]}",
            daemon=True,
        )
        self.fake._track(thread, request)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connections cut on purpose (refuse/stop) raise in the handler; the
        # default prints a traceback to stderr.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeWandb/1.0"
    timeout = 120  # idle keep-alive connections close eventually
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            raw = b"".join(chunks)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
        encoding = self.headers.get("Content-Encoding", "").lower()
        with contextlib.suppress(OSError, zlib.error, EOFError):
            if encoding == "gzip":
                raw = gzip.decompress(raw)
            elif encoding == "deflate":
                raw = zlib.decompress(raw)
        return raw

    def _serve(self) -> None:
        fake = self.server.fake
        raw = self._read_body()
        path = urlsplit(self.path).path
        kind = fake._kind_of(self.command, path)
        body = _json_loads(raw) if raw else None
        rec = RecordedRequest(
            method=self.command,
            path=self.path,
            kind=kind,
            operation=_operation_name(body) if kind == "graphql" else None,
            body=body,
            raw=raw,
            headers={k.lower(): v for k, v in self.headers.items()},
            time=time.monotonic(),
        )
        if kind == "graphql" and isinstance(body, dict):
            rec.variables = body.get("variables") or {}
        fault = fake._fault_for(kind)
        rec.fault = fault
        fake._record(rec)

        if fault in ("hang", "refuse"):
            # "refuse" here: a request that slipped in as the listener closed.
            fake._wait_while_hanging(kind)
            self.close_connection = True
            return
        if fault in ("500", "429"):
            status = int(fault)
            extra = {"Retry-After": "1"} if status == 429 else {}
            msg = "fake server error" if status == 500 else "rate limited"
            self._reply(rec, status, {"errors": [{"message": msg}]}, extra)
            return
        if fault == "malformed":
            self._reply_bytes(rec, 200, MALFORMED_BODY, "application/json")
            return

        try:
            status, payload, ctype = fake._dispatch(rec, path)
        except Exception as exc:  # a bug in the fake: say so, loudly
            fake._note_error(f"{self.command} {self.path}: {exc!r}")
            status, payload, ctype = 500, {"errors": [{"message": f"fake: {exc!r}"}]}, None
        if isinstance(payload, bytes):
            self._reply_bytes(rec, status, payload, ctype or "application/octet-stream")
        else:
            self._reply(rec, status, payload)

    def _reply(
        self,
        rec: RecordedRequest,
        status: int,
        payload: Any,
        extra: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        self._reply_bytes(rec, status, data, "application/json", extra)

    def _reply_bytes(
        self,
        rec: RecordedRequest,
        status: int,
        data: bytes,
        ctype: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        rec.status = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


# --------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------


class FakeWandbServer:
    """A fake W&B backend on 127.0.0.1; see the module docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        entity: str = DEFAULT_ENTITY,
        root_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not host.startswith("127."):
            raise ValueError("the fake serves on the loopback interface only")
        self.host = host
        self.port = port
        self.entity = entity
        self._own_root = root_dir is None
        self._root = str(root_dir) if root_dir is not None else None
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._fault: str | None = None
        self._fault_only: frozenset[str] | None = None
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._conn_threads: set[threading.Thread] = set()
        self._conn_sockets: dict[threading.Thread, socket.socket] = {}
        self._stopping = False
        self._started = False
        self._requests: list[RecordedRequest] = []
        self._runs: dict[tuple[str, str, str], _Run] = {}
        self._artifacts: dict[str, FakeArtifact] = {}
        self._client_ids: dict[str, str] = {}
        self._blobs: dict[str, bytes] = {}
        self._unknown: list[str] = []
        self._errors: list[str] = []
        self._counter = 0

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> FakeWandbServer:
        with self._lock:
            if self._started:
                return self
            if self._root is None:
                self._root = tempfile.mkdtemp(prefix="fake-wandb-")
            self._open_listener()
            self._started = True
        if self._fault == "refuse":  # set before start: keep the port, refuse on it
            self._close_listener()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, release hung handlers, join every thread."""
        with self._lock:
            if not self._started:
                return
            self._stopping = True
            self._cond.notify_all()
        self._close_listener()
        deadline = time.monotonic() + timeout
        for thread in list(self._conn_threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._started = False
            self._stopping = False
            self._conn_threads = {t for t in self._conn_threads if t.is_alive()}
        if self._own_root and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> FakeWandbServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def root_dir(self) -> str:
        """A scratch directory (for ``WANDB_DIR`` and friends) removed at stop."""
        if self._root is None:
            raise RuntimeError("start the server first")
        return self._root

    def live_threads(self) -> list[threading.Thread]:
        """Threads of this fake still alive (empty after :meth:`stop`)."""
        threads = [t for t in self._conn_threads if t.is_alive()]
        if self._serve_thread is not None and self._serve_thread.is_alive():
            threads.append(self._serve_thread)
        return threads

    def _open_listener(self) -> None:
        last: OSError | None = None
        for _ in range(50):
            try:
                httpd = _HTTPServer((self.host, self.port), self)
                break
            except OSError as exc:  # the old socket may linger an instant
                last = exc
                time.sleep(0.02)
        else:
            raise RuntimeError(f"cannot listen on {self.host}:{self.port}") from last
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._serve_thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-wandb-serve-{self.port}",
            daemon=True,
        )
        self._serve_thread.start()

    def _close_listener(self) -> None:
        httpd, thread = self._httpd, self._serve_thread
        self._httpd = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(5)
        self._cut_connections()

    def _cut_connections(self) -> None:
        with self._lock:
            sockets = list(self._conn_sockets.values())
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _track(self, thread: threading.Thread, sock: socket.socket) -> None:
        with self._lock:
            self._conn_threads = {t for t in self._conn_threads if t.is_alive()}
            self._conn_threads.add(thread)
            self._conn_sockets[thread] = sock
            if self._fault == "refuse" or self._stopping:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _untrack_dead(self) -> None:
        with self._lock:
            for t in [t for t in self._conn_sockets if not t.is_alive()]:
                del self._conn_sockets[t]

    # ---- faults ----------------------------------------------------------

    @property
    def fault(self) -> str | None:
        return self._fault

    @fault.setter
    def fault(self, value: str | None) -> None:
        self.set_fault(value)

    @property
    def fault_only(self) -> frozenset[str] | None:
        return self._fault_only

    def set_fault(self, fault: str | None, only: str | Iterable[str] | None = None) -> None:
        """Switch a fault on (``None`` clears it); ``only`` scopes it to endpoint kinds."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {sorted(FAULTS)}")
        scope: frozenset[str] | None = None
        if only is not None:
            scope = frozenset([only] if isinstance(only, str) else only)
            if not scope <= KINDS:
                raise ValueError(f"unknown endpoint kind in {sorted(scope)}; use {sorted(KINDS)}")
            if fault == "refuse":
                raise ValueError("'refuse' closes the whole listener; it cannot be scoped")
        with self._lock:
            if not self._started:
                self._fault, self._fault_only = fault, scope
                return
            was = self._fault
            self._fault, self._fault_only = fault, scope
            self._cond.notify_all()
        if fault == "refuse" and was != "refuse":
            self._close_listener()
        elif was == "refuse" and fault != "refuse":
            with self._lock:
                self._open_listener()

    def clear_fault(self) -> None:
        self.set_fault(None)

    def _fault_for(self, kind: str) -> str | None:
        with self._lock:
            if self._fault is None:
                return None
            if self._fault_only is not None and kind not in self._fault_only:
                return None
            return self._fault

    def _wait_while_hanging(self, kind: str) -> None:
        with self._cond:
            self._cond.wait_for(
                lambda: self._stopping or self._fault_for(kind) not in ("hang", "refuse")
            )

    # ---- recording -------------------------------------------------------

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(rec)
        self._untrack_dead()

    def _note_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def operations(self) -> list[str | None]:
        """GraphQL operation names, in arrival order."""
        return [r.operation for r in self.requests if r.kind == "graphql"]

    @property
    def unknown_operations(self) -> list[str]:
        """GraphQL operations answered with the null-filled default shape."""
        with self._lock:
            return list(self._unknown)

    @property
    def errors(self) -> list[str]:
        """Exceptions raised inside the fake's handlers (should stay empty)."""
        with self._lock:
            return list(self._errors)

    # ---- queries for tests -----------------------------------------------

    def _find_run(self, run_id: str) -> _Run | None:
        for run in self._runs.values():
            if run.name == run_id:
                return run
        return None

    def run_ids(self) -> list[str]:
        with self._lock:
            return [r.name for r in self._runs.values()]

    def history(self, run_id: str) -> list[dict[str, Any]]:
        """History rows of the run (parsed), ordered by their line in the stream."""
        with self._lock:
            run = self._find_run(run_id)
            return [] if run is None else [dict(run.history[i]) for i in sorted(run.history)]

    def summary(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            run = self._find_run(run_id)
            return None if run is None or run.summary is None else dict(run.summary)

    def config(self, run_id: str, *, raw: bool = False) -> dict[str, Any] | None:
        """The run's config as ``{key: value}`` (``_wandb`` left out unless ``raw``).

        With ``raw=True``: the stored ``{key: {"value": ..., "desc": ...}}`` form.
        """
        with self._lock:
            run = self._find_run(run_id)
            if run is None or not run.config:
                return None
            if raw:
                copied: dict[str, Any] = json.loads(json.dumps(run.config))
                return copied
            return {
                k: (v.get("value") if isinstance(v, dict) else v)
                for k, v in run.config.items()
                if k != "_wandb"
            }

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """System-metrics rows (``wandb-events.jsonl``)."""
        with self._lock:
            run = self._find_run(run_id)
            return [] if run is None else [run.events[i] for i in sorted(run.events)]

    def console(self, run_id: str) -> list[str]:
        """Console lines (``output.log``)."""
        with self._lock:
            run = self._find_run(run_id)
            return [] if run is None else [run.console[i] for i in sorted(run.console)]

    def files(self, run_id: str) -> dict[str, bytes]:
        """Run files uploaded to the fake's upload URLs, by name."""
        with self._lock:
            run = self._find_run(run_id)
            return {} if run is None else dict(run.files)

    def exit_code(self, run_id: str) -> int | None:
        """The exit code sent in the final file-stream request, if it arrived."""
        with self._lock:
            run = self._find_run(run_id)
            return None if run is None else run.exit_code

    def run_info(self, run_id: str) -> dict[str, Any] | None:
        """Everything else the fake knows about a run."""
        with self._lock:
            run = self._find_run(run_id)
            if run is None:
                return None
            return {
                "id": run.name,
                "storage_id": run.storage_id,
                "entity": run.entity,
                "project": run.project,
                "display_name": run.display_name,
                "tags": list(run.tags),
                "notes": run.notes,
                "group": run.group,
                "job_type": run.job_type,
                "state": run.state,
                "complete": run.complete,
                "exit_code": run.exit_code,
                "preempting": run.preempting,
                "upserts": run.upserts,
                "uploaded": list(run.uploaded),
            }

    @property
    def artifacts(self) -> dict[str, FakeArtifact]:
        """Artifacts by server id (live objects; read them, don't change them)."""
        with self._lock:
            return dict(self._artifacts)

    @property
    def uploads(self) -> dict[str, bytes]:
        """Every body stored under ``/storage/``, by URL path."""
        with self._lock:
            return dict(self._blobs)

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05
    ) -> bool:
        """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def seed_run(
        self,
        run_id: str,
        *,
        project: str = "uncategorized",
        entity: str | None = None,
        history: Iterable[dict[str, Any]] = (),
        config: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
    ) -> None:
        """Make a run exist already (for resume tests)."""
        with self._lock:
            run = self._get_run(entity or self.entity, project, run_id, create=True)
            assert run is not None
            for row in history:
                run.history[len(run.history)] = dict(row)
            if config is not None:
                run.config.update({k: {"value": v, "desc": None} for k, v in config.items()})
            run.config.setdefault("_wandb", {"value": {"t": {}}, "desc": None})
            if summary is not None:
                run.summary = dict(summary)
            elif run.history:
                run.summary = dict(run.history[max(run.history)])

    # ---- dispatch ----------------------------------------------------------

    def _kind_of(self, method: str, path: str) -> str:
        if path.rstrip("/") == "/graphql":
            return "graphql"
        if _FILE_STREAM_RE.match(path):
            return "file_stream"
        if path.startswith("/storage/"):
            return "storage"
        return "other"

    def _dispatch(self, rec: RecordedRequest, path: str) -> tuple[int, Any, str | None]:
        if rec.kind == "graphql":
            return self._graphql(rec)
        if rec.kind == "file_stream":
            m = _FILE_STREAM_RE.match(path)
            assert m is not None
            entity, project, run_id = (unquote(g) for g in m.groups())
            return 200, self._file_stream(entity, project, run_id, rec.body), None
        if rec.kind == "storage":
            return self._storage(rec, path)
        return 200, {}, None

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return _b64id(f"{prefix}:{self._counter}")

    def _get_run(self, entity: str, project: str, run_id: str, *, create: bool) -> _Run | None:
        key = (entity, project, run_id)
        run = self._runs.get(key)
        if run is None and create:
            run = _Run(
                name=run_id,
                entity=entity,
                project=project,
                storage_id=_b64id(f"Run:v1:{run_id}:{project}:{entity}"),
            )
            self._runs[key] = run
        return run

    def _run_by_storage_id(self, storage_id: str) -> _Run | None:
        for run in self._runs.values():
            if run.storage_id == storage_id:
                return run
        return None

    # ---- storage -----------------------------------------------------------

    def _storage(self, rec: RecordedRequest, path: str) -> tuple[int, Any, str | None]:
        if rec.method in ("GET", "HEAD"):
            with self._lock:
                data = self._blobs.get(path)
            if data is None:
                return 404, {"error": "not found"}, None
            return 200, data, "application/octet-stream"
        with self._lock:
            self._blobs[path] = rec.raw
            if m := _RUN_FILE_RE.match(path):
                entity, project, run_id, name = (unquote(g) for g in m.groups())
                run = self._get_run(entity, project, run_id, create=True)
                assert run is not None
                run.files[name] = rec.raw
            elif m := _ARTIFACT_FILE_RE.match(path):
                art = self._artifacts.get(unquote(m.group(1)))
                if art is not None:
                    art.files[unquote(m.group(2))] = rec.raw
            elif m := _MANIFEST_RE.match(path):
                art = self._artifacts.get(unquote(m.group(1)))
                if art is not None:
                    art.manifest = _json_loads(rec.raw)
        return 200, b"", "text/plain"

    # ---- file stream -------------------------------------------------------

    def _file_stream(self, entity: str, project: str, run_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            return {"exitcode": None, "limits": {}}
        with self._lock:
            run = self._get_run(entity, project, run_id, create=True)
            assert run is not None
            files = body.get("files") or {}
            for fname, chunk in files.items():
                if not isinstance(chunk, dict):
                    continue
                offset = int(chunk.get("offset") or 0)
                lines = chunk.get("content") or []
                for i, line in enumerate(lines):
                    if fname == "wandb-history.jsonl":
                        row = _json_loads(line.encode())
                        if isinstance(row, dict):
                            run.history[offset + i] = row
                    elif fname == "wandb-events.jsonl":
                        row = _json_loads(line.encode())
                        if isinstance(row, dict):
                            run.events[offset + i] = row
                    elif fname == "wandb-summary.json":
                        summary = _json_loads(line.encode())
                        if isinstance(summary, dict):
                            run.summary = summary
                    elif fname == "output.log":
                        run.console[offset + i] = line
            for name in body.get("uploaded") or []:
                run.uploaded.append(name)
            if body.get("preempting"):
                run.preempting = True
            if "exitcode" in body and body.get("exitcode") is not None:
                run.exit_code = int(body["exitcode"])
            if body.get("complete"):
                run.complete = True
        return {"exitcode": None, "limits": {}}

    # ---- GraphQL -----------------------------------------------------------

    def _graphql(self, rec: RecordedRequest) -> tuple[int, Any, str | None]:
        body = rec.body
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return 400, {"errors": [{"message": "fake: expected a GraphQL JSON body"}]}, None
        try:
            doc = _GqlDocument(body["query"])
        except (ValueError, IndexError) as exc:
            return 400, {"errors": [{"message": f"fake: cannot parse query: {exc}"}]}, None
        variables = rec.variables
        name = rec.operation
        op = next((o for o in doc.operations if o.name == name), None) or (
            doc.operations[0] if doc.operations else None
        )
        if op is None:
            return 400, {"errors": [{"message": "fake: no operation"}]}, None
        resolver = getattr(self, f"_gql_{name}", None) if name else None
        if resolver is None:
            with self._lock:
                self._unknown.append(name or "<anonymous>")
            # A lookup the fake knows nothing about finds nothing (null); a
            # mutation "succeeds" with a payload of nulls.
            value: dict[str, Any] = (
                {sel.name: None for sel in op.selections if isinstance(sel, _Field)}
                if op.kind == "query"
                else {}
            )
        else:
            value = resolver(variables)
        return 200, {"data": _shape(op.selections, value, doc, variables)}, None

    # Each resolver returns a value tree; _shape projects it onto the query.

    def _viewer_value(self) -> dict[str, Any]:
        return {
            "id": _b64id("User:1"),
            "entity": self.entity,
            "username": "fake-user",
            "email": "fake-user@example.invalid",
            "admin": False,
            "flags": "{}",
            "teams": {"edges": []},
            "defaultEntity": {"id": _b64id("Entity:1"), "name": self.entity},
        }

    def _gql_Viewer(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"viewer": self._viewer_value()}

    def _gql_ServerFeaturesQuery(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"serverInfo": {"features": []}}

    def _gql_ServerInfo(self, v: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "features": [],
            "cliVersionInfo": "{}",
            "latestLocalVersionInfo": None,
        }
        return {"serverInfo": info}

    def _run_value(self, run: _Run) -> dict[str, Any]:
        return {
            "id": run.storage_id,
            "name": run.name,
            "displayName": run.display_name or run.name,
            "description": run.notes,
            "notes": run.notes,
            "config": json.dumps(run.config),
            "sweepName": None,
            "historyLineCount": len(run.history),
            "project": {
                "id": _b64id(f"Project:{run.entity}/{run.project}"),
                "name": run.project,
                "entity": {"id": _b64id(f"Entity:{run.entity}"), "name": run.entity},
            },
        }

    def _gql_UpsertBucket(self, v: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            run: _Run | None = None
            if v.get("id"):
                run = self._run_by_storage_id(v["id"])
            if run is None:
                entity = v.get("entity") or self.entity
                project = v.get("project") or "uncategorized"
                name = v.get("name") or self._next_id("Run").rstrip("=").lower()[-8:]
                existed = self._get_run(entity, project, name, create=False) is not None
                run = self._get_run(entity, project, name, create=True)
                assert run is not None
            else:
                existed = True
            run.upserts += 1
            if v.get("displayName"):
                run.display_name = v["displayName"]
            if v.get("notes") is not None:
                run.notes = v["notes"]
            if v.get("tags") is not None:
                run.tags = list(v["tags"])
            for key, attr in (("groupName", "group"), ("jobType", "job_type"), ("state", "state")):
                if v.get(key) is not None:
                    setattr(run, attr, v[key])
            if v.get("config"):
                cfg = _json_loads(v["config"].encode())
                if isinstance(cfg, dict):
                    run.config.update(cfg)
            if v.get("summaryMetrics"):
                summ = _json_loads(v["summaryMetrics"].encode())
                if isinstance(summ, dict):
                    run.summary = {**(run.summary or {}), **summ}
            return {"upsertBucket": {"bucket": self._run_value(run), "inserted": not existed}}

    def _gql_RunResumeStatus(self, v: dict[str, Any]) -> dict[str, Any]:
        entity = v.get("entity") or self.entity
        project = v.get("project") or "uncategorized"
        with self._lock:
            run = self._get_run(entity, project, v.get("name") or "", create=False)
            bucket: dict[str, Any] | None = None
            if run is not None:
                rows = [run.history[i] for i in sorted(run.history)]
                events = [run.events[i] for i in sorted(run.events)]
                wandb_cfg = run.config.get("_wandb", {})
                t = wandb_cfg.get("value", {}).get("t") if isinstance(wandb_cfg, dict) else None
                bucket = {
                    **self._run_value(run),
                    "summaryMetrics": json.dumps(run.summary or {}),
                    "logLineCount": len(run.console),
                    "historyLineCount": len(run.history),
                    "eventsLineCount": len(run.events),
                    "historyTail": json.dumps([json.dumps(r) for r in rows[-10:]]),
                    "eventsTail": json.dumps([json.dumps(e) for e in events[-10:]]),
                    "tags": list(run.tags),
                    "wandbConfig": json.dumps({"t": t if t is not None else {}}),
                }
            return {
                "model": {
                    "id": _b64id(f"Project:{entity}/{project}"),
                    "name": project,
                    "entity": {"id": _b64id(f"Entity:{entity}"), "name": entity},
                    "bucket": bucket,
                }
            }

    def _project_run(self, v: dict[str, Any]) -> dict[str, Any]:
        entity = v.get("entity") or v.get("entityName") or self.entity
        project = v.get("project") or v.get("projectName") or "uncategorized"
        run_id = v.get("run") or v.get("runName") or v.get("name") or ""
        with self._lock:
            run = self._get_run(entity, project, run_id, create=False)
            run_value = None
            if run is not None:
                run_value = {
                    **self._run_value(run),
                    "state": "finished" if run.complete else "running",
                    "summaryMetrics": json.dumps(run.summary or {}),
                }
        return {"project": {"run": run_value}}

    _gql_RunState = _project_run
    _gql_QueryRunInfo = _project_run

    def _gql_CreateRunFiles(self, v: dict[str, Any]) -> dict[str, Any]:
        entity = v.get("entity") or self.entity
        project, run_id = v.get("project") or "uncategorized", v.get("run") or ""
        with self._lock:
            run = self._get_run(entity, project, run_id, create=True)
            assert run is not None
            storage_id = run.storage_id
        files = [
            {
                "name": name,
                "uploadUrl": f"{self.base_url}/storage/runs/{quote(entity, safe='')}/"
                f"{quote(project, safe='')}/{quote(run_id, safe='')}/{quote(name)}",
            }
            for name in v.get("files") or []
        ]
        return {"createRunFiles": {"runID": storage_id, "uploadHeaders": [], "files": files}}

    def _gql_MarkRunFilesUploaded(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"markRunFilesUploaded": {"success": True}}

    # ---- artifacts ---------------------------------------------------------

    def _gql_XXHashDigestsEnabled(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"entity": {"xxhashDigestsEnabled": False}}

    def _gql_FetchArtifactDigestAlgorithm(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"project": {"artifactType": {"artifactCollection": None}}}

    def _gql_FetchOrgEntityFromEntity(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"entity": {"organization": None}}

    def _gql_ArtifactType(self, v: dict[str, Any]) -> dict[str, Any]:
        name, _, alias = (v.get("name") or "").partition(":")
        project = v.get("project") or "uncategorized"
        with self._lock:
            found = [
                a
                for a in self._artifacts.values()
                if a.name == name
                and a.project == project
                and alias in ("", "latest", f"v{a.version_index}", *a.aliases)
            ]
        if not found:
            return {"project": {"artifact": None}}
        return {"project": {"artifact": {"artifactType": {"name": found[-1].type}}}}

    def _artifact_value(self, art: FakeArtifact) -> dict[str, Any]:
        project = {
            "id": _b64id(f"Project:{art.entity}/{art.project}"),
            "internalId": _b64id(f"Project:{art.entity}/{art.project}"),
            "name": art.project,
            "entity": {"id": _b64id(f"Entity:{art.entity}"), "name": art.entity},
        }
        sequence = {
            "__typename": "ArtifactSequence",
            "id": _b64id(f"ArtifactSequence:{art.name}"),
            "name": art.name,
            "project": project,
        }
        aliases = [f"v{art.version_index}", *art.aliases]
        return {
            "__typename": "Artifact",
            "id": art.id,
            "artifactSequence": sequence,
            "versionIndex": art.version_index,
            "artifactType": {"name": art.type},
            "description": art.description,
            "metadata": json.dumps(art.metadata) if art.metadata is not None else None,
            "ttlDurationSeconds": -1,
            "ttlIsInherited": True,
            "tags": [],
            "historyStep": None,
            "state": art.state,
            "size": sum(len(b) for b in art.files.values()),
            "digest": art.digest,
            "digestAlgorithm": "MANIFEST_MD5",
            "commitHash": None,
            "fileCount": len(art.files),
            "createdAt": "2024-01-01T00:00:00",
            "updatedAt": None,
            "aliases": [
                {
                    "__typename": "ArtifactAlias",
                    "id": _b64id(f"ArtifactAlias:{art.id}:{alias}"),
                    "alias": alias,
                    "artifactCollection": sequence,
                }
                for alias in dict.fromkeys(aliases)
            ],
        }

    def _gql_ArtifactByID(self, v: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            art = self._artifacts.get(v.get("id") or "")
            return {"artifact": None if art is None else self._artifact_value(art)}

    def _gql_ClientIDMapping(self, v: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            server_id = self._client_ids.get(v.get("clientID") or "")
        return {"clientIDMapping": None if server_id is None else {"serverID": server_id}}

    def _gql_CreateArtifact(self, v: dict[str, Any]) -> dict[str, Any]:
        inp = v.get("input") or {}
        names = inp.get("artifactCollectionNames") or [inp.get("artifactCollectionName") or "?"]
        with self._lock:
            art_id = self._next_id("Artifact")
            same = [a for a in self._artifacts.values() if a.name == names[0]]
            art = FakeArtifact(
                id=art_id,
                name=names[0],
                type=inp.get("artifactTypeName") or "",
                entity=inp.get("entityName") or self.entity,
                project=inp.get("projectName") or "uncategorized",
                digest=inp.get("digest") or "",
                run_id=inp.get("runName"),
                client_id=inp.get("clientID"),
                sequence_client_id=inp.get("sequenceClientID"),
                aliases=[
                    a.get("alias", "") if isinstance(a, dict) else str(a)
                    for a in inp.get("aliases") or []
                ],
                metadata=_json_loads(inp["metadata"].encode())
                if isinstance(inp.get("metadata"), str)
                else inp.get("metadata"),
                description=inp.get("description"),
                version_index=len(same),
            )
            self._artifacts[art_id] = art
            if art.client_id:
                self._client_ids[art.client_id] = art_id
            latest = same[-1].id if same else None
        return {
            "createArtifact": {
                "artifact": {
                    "id": art_id,
                    "state": "PENDING",
                    "digest": art.digest,
                    "versionIndex": art.version_index,
                    "artifactSequence": {
                        "id": _b64id(f"ArtifactSequence:{art.name}"),
                        "name": art.name,
                        "latestArtifact": None if latest is None else {"id": latest},
                    },
                }
            }
        }

    def _manifest_value(self, art_id: str, name: str) -> dict[str, Any]:
        return {
            "id": _b64id(f"ArtifactManifest:{art_id}"),
            "file": {
                "id": _b64id(f"File:manifest:{art_id}"),
                "name": name,
                "displayName": name,
                "uploadUrl": f"{self.base_url}/storage/manifests/{quote(art_id, safe='')}/"
                f"{quote(name)}",
                "directUrl": f"{self.base_url}/storage/manifests/{quote(art_id, safe='')}/"
                f"{quote(name)}",
                "uploadHeaders": [],
            },
        }

    def _gql_CreateArtifactManifest(self, v: dict[str, Any]) -> dict[str, Any]:
        art_id = v.get("artifactID") or ""
        name = v.get("name") or "wandb_manifest.json"
        return {"createArtifactManifest": {"artifactManifest": self._manifest_value(art_id, name)}}

    def _gql_UpdateArtifactManifest(self, v: dict[str, Any]) -> dict[str, Any]:
        man_id = v.get("artifactManifestID") or ""
        art_id = base64.b64decode(man_id).decode().split(":", 1)[-1] if man_id else ""
        value = self._manifest_value(art_id, "wandb_manifest.json")
        return {"updateArtifactManifest": {"artifactManifest": value}}

    def _gql_CreateArtifactFiles(self, v: dict[str, Any]) -> dict[str, Any]:
        inp = v.get("input") or {}
        edges: list[dict[str, Any]] = []
        for f in inp.get("artifactFiles") or []:
            art_id, name = f.get("artifactID") or "", f.get("name") or ""
            digest = f.get("md5") or hashlib.md5(name.encode()).hexdigest()
            edges.append(
                {
                    "node": {
                        "id": _b64id(f"File:{art_id}:{name}"),
                        "name": name,
                        "displayName": name,
                        "storagePath": f"fake/{art_id}/{digest}",
                        "uploadUrl": f"{self.base_url}/storage/artifacts/"
                        f"{quote(art_id, safe='')}/{quote(name)}",
                        "uploadHeaders": [],
                        "uploadMultipartUrls": None,
                        "artifact": {"id": art_id},
                    }
                }
            )
        return {"createArtifactFiles": {"files": {"edges": edges}}}

    def _gql_CommitArtifact(self, v: dict[str, Any]) -> dict[str, Any]:
        art_id = v.get("artifactID") or ""
        with self._lock:
            art = self._artifacts.get(art_id)
            if art is not None:
                art.state = "COMMITTED"
            digest = art.digest if art is not None else ""
        return {"commitArtifact": {"artifact": {"id": art_id, "digest": digest}}}

    def _gql_UseArtifact(self, v: dict[str, Any]) -> dict[str, Any]:
        inp = v.get("input") or {}
        art_id = inp.get("artifactID") or ""
        with self._lock:
            art = self._artifacts.get(art_id)
            if art is not None and inp.get("runName"):
                art.used_by.append(inp["runName"])
        return {"useArtifact": {"artifact": {"id": art_id}}}

    def _gql_UpdateArtifact(self, v: dict[str, Any]) -> dict[str, Any]:
        art_id = v.get("artifactID") or ""
        with self._lock:
            art = self._artifacts.get(art_id)
            if art is not None and isinstance(v.get("metadata"), str):
                art.metadata = _json_loads(v["metadata"].encode())
        return {"updateArtifact": {"artifact": {"id": art_id}}}


# --------------------------------------------------------------------------
# Client environment and fixture
# --------------------------------------------------------------------------


def online_env(
    server: FakeWandbServer,
    *,
    wandb_dir: str | os.PathLike[str] | None = None,
    fast: bool = True,
) -> dict[str, str]:
    """Environment variables pointing the real wandb client at ``server``.

    Merge them over ``os.environ`` for a subprocess (or ``monkeypatch.setenv``
    them before the first ``wandb`` call in-process). ``fast=True`` shortens
    wandb-core's retry policies and timeouts so that a faulty server fails a
    test in seconds, not the client's defaults of many minutes; ``fast=False``
    keeps the client's own retry policy (only isolation settings are applied).
    """
    root = os.fspath(wandb_dir) if wandb_dir is not None else server.root_dir
    os.makedirs(root, exist_ok=True)
    sub = {name: os.path.join(root, name) for name in ("config", "cache", "data", "artifacts")}
    for path in sub.values():
        os.makedirs(path, exist_ok=True)
    # Non-loopback traffic (if anything tried) goes to a closed loopback port;
    # Go and Python both bypass the proxy for 127.0.0.1 / localhost.
    blackhole = "http://127.0.0.1:9"
    env = {
        "WANDB_BASE_URL": server.base_url,
        "WANDB_API_KEY": FAKE_API_KEY,
        "WANDB_MODE": "online",
        "WANDB_DIR": root,
        "WANDB_CONFIG_DIR": sub["config"],  # no ~/.config/wandb/settings, no netrc writes
        "WANDB_CACHE_DIR": sub["cache"],
        "WANDB_DATA_DIR": sub["data"],
        "WANDB_ARTIFACT_DIR": sub["artifacts"],
        "WANDB_ENTITY": server.entity,
        "WANDB_SILENT": "true",
        "WANDB_CONSOLE": "off",
        "WANDB_ERROR_REPORTING": "false",  # no Sentry
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
        "WANDB__DISABLE_STATS": "true",  # no system monitor (GPU/cloud metadata probes)
        "WANDB__DISABLE_META": "true",  # no host metadata collection
        "WANDB__DISABLE_MACHINE_INFO": "true",
        "WANDB__SAVE_REQUIREMENTS": "false",
        "HTTP_PROXY": blackhole,
        "HTTPS_PROXY": blackhole,
        "http_proxy": blackhole,
        "https_proxy": blackhole,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    if fast:
        # wandb-core reads every *_seconds / interval setting as whole seconds
        # (time.Second * time.Duration(x)): 0.5 becomes 0, and 0 (like any
        # value <= 0, retry counts included) means "use the built-in default".
        # So 1 is the smallest wait/interval that takes effect.
        env.update(
            {
                "WANDB_INIT_TIMEOUT": "20",
                # GraphQL (run upsert, file URLs, artifacts): 3 attempts, 1 s apart
                "WANDB__GRAPHQL_RETRY_MAX": "2",
                "WANDB__GRAPHQL_RETRY_WAIT_MIN_SECONDS": "1",
                "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": "1",
                "WANDB_HTTP_TIMEOUT": "2",  # x_graphql_timeout_seconds, per attempt
                # file stream (history, summary, console): 6 attempts, 1 s apart
                "WANDB__FILE_STREAM_RETRY_MAX": "5",
                "WANDB__FILE_STREAM_RETRY_WAIT_MIN_SECONDS": "1",
                "WANDB__FILE_STREAM_RETRY_WAIT_MAX_SECONDS": "1",
                "WANDB__FILE_STREAM_TIMEOUT_SECONDS": "2",
                "WANDB__FILE_STREAM_TRANSMIT_INTERVAL": "1",  # default 15 s
                # uploads to the URLs the server hands out
                "WANDB__FILE_TRANSFER_RETRY_MAX": "2",
                "WANDB__FILE_TRANSFER_RETRY_WAIT_MIN_SECONDS": "1",
                "WANDB__FILE_TRANSFER_RETRY_WAIT_MAX_SECONDS": "1",
                "WANDB_FILE_PUSHER_TIMEOUT": "2",  # x_file_transfer_timeout_seconds
            }
        )
    return env


@pytest.fixture
def wandb_server() -> Iterator[FakeWandbServer]:
    """A started :class:`FakeWandbServer` on a free 127.0.0.1 port; stopped after the test."""
    server = FakeWandbServer().start()
    try:
        yield server
    finally:
        server.stop()
    leaked = server.live_threads()
    assert not leaked, f"fake W&B server threads still alive after stop: {leaked}"


@pytest.fixture
def wandb_online(
    wandb_server: FakeWandbServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeWandbServer]:
    """``wandb_server`` with ``os.environ`` pointed at it, for wandb used in-process.

    wandb caches its settings (base URL, API key) in a process-wide singleton at
    its first use, so this calls ``wandb.teardown()`` after the test; without
    it the next test's wandb would still talk to the previous (stopped) server.
    """
    for key, value in online_env(wandb_server).items():
        monkeypatch.setenv(key, value)
    try:
        yield wandb_server
    finally:
        import wandb

        wandb.teardown()
