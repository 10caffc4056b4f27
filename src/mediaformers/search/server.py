"""``mediaformers serve``: bind, guard the connections, announce a usable URL, and leave a state file
(``<library>/.serve.json``: pid, port, token) so ``mediaformers search`` can ask this server instead of
loading the models again."""
from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import socket
import sys
import threading
from pathlib import Path

from . import client
from .client import STATE_FILE
from .hosts import is_loopback
from .records import LibraryError

__all__ = ["STATE_FILE", "is_loopback", "serve"]

HEAD_TIMEOUT = 10.0  # seconds a connection may take to send a complete request head (slowloris)
MAX_CONNECTIONS = 64  # open connections idle before their request; beyond this the oldest are closed
LIMIT_FACTOR = 4  # uvicorn's hard limit (503 past it): this many times MAX_CONNECTIONS, for bursts of real requests
EVICT_DELAY = 0.1  # seconds a new connection has to send something before it counts as idle


def check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise LibraryError(f"--port: expected 0..65535 (0 picks a free port), got {port!r}")
    return port


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one line saying why not (port in use, no such address)."""
    check_port(port)
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise LibraryError(f"--host: cannot use {host!r} ({err.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        hint = "; pick another with --port (0 picks a free one)" if port else ""
        raise LibraryError(f"--port: cannot listen on {host}:{port} ({err.strerror}){hint}") from None
    sock.set_inheritable(True)
    return sock


def guarded_protocol(head_timeout: float, max_connections: int = MAX_CONNECTIONS):
    """uvicorn's h11 protocol, plus a deadline for each request head: a connection that opens and then
    sends a request slowly (or never) is closed after ``head_timeout`` seconds; and a cap: past
    ``max_connections`` open connections, the oldest idle one (no complete request head, none unread in
    the kernel, open for ``EVICT_DELAY`` at least) is closed, so a flood of idle connections cannot crowd out
    a real request (nor exhaust the fds), while a burst of real clients gets answers or 503s, not resets."""
    import itertools

    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    born = itertools.count()

    class Guarded(H11Protocol):
        _head_timer = None
        _born = 0
        _since = 0.0

        def _waiting_for_head(self) -> bool:
            return self.conn.their_state is h11.IDLE and not self.transport.is_closing()

        def _idle(self, now: float) -> bool:
            """Waiting for a head that is not on the way: nothing unread in the kernel (a burst of real
            clients is accepted in one batch, before any of their heads is read) and not just opened."""
            return self._waiting_for_head() and now - self._since >= EVICT_DELAY and not _unread(self.transport)

        def _evict(self) -> None:
            excess = len(self.connections) - max_connections
            if excess > 0:
                now = self.loop.time()
                idle = sorted((c for c in self.connections if c is not self and isinstance(c, Guarded)
                               and c._idle(now)), key=lambda c: c._born)
                for victim in idle[:excess]:
                    victim.transport.close()

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(head_timeout, self._expired)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expired(self) -> None:
            if self._waiting_for_head():
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._born, self._since = next(born), self.loop.time()
            self._evict()
            self.loop.call_later(EVICT_DELAY, self._evict)  # again once the ones opened with it can be judged
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # a complete head arrived
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._since = self.loop.time()  # keep-alive: idle from now
                self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return Guarded


def _exit_on_term(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _unread(transport) -> bool:
    """Bytes wait in the kernel for this connection (FIONREAD): its request is on the way."""
    import array
    import fcntl
    import termios

    sock = transport.get_extra_info("socket")
    try:
        count = array.array("i", [0])
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
        return count[0] > 0
    except (OSError, AttributeError, ValueError):
        return False


def url_for(host: str, port: int) -> str:
    """A URL a browser on this machine can open: a wildcard bind is reached through loopback."""
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def serve(library, host: str = "127.0.0.1", port: int = 8000, allow_remote: bool = False, *,
          max_upload: int | None = None, head_timeout: float = HEAD_TIMEOUT,
          max_connections: int = MAX_CONNECTIONS, announce=None) -> None:
    """Serve the page until interrupted. ``announce(url)`` is called once listening (default: print it)."""
    if not isinstance(host, str) or not host.strip() or any(c.isspace() or c in "/?#@" for c in host):
        raise LibraryError(f"--host: expected a host name or address (127.0.0.1, localhost, ::1), got {host!r}")
    if host.count(":") == 1 or (host.startswith("[") and not host.endswith("]")):
        raise LibraryError(f"--host: expected a host name or address without a port (give it with --port), "
                           f"got {host!r}")
    if not is_loopback(host) and not allow_remote:
        raise LibraryError(f"--host: {host} is reachable from other machines; pass --allow-remote to serve the "
                           "library there (anyone who can reach it can search and play every indexed file)")
    if max_upload is not None and max_upload < 1:
        raise LibraryError(f"--max-upload: expected megabytes > 0, got {max_upload}")
    sock = bind(host, port)
    state = Path(library.path) / STATE_FILE
    # uvicorn stops cleanly on SIGTERM, then raises it again with the old handler in place: the default
    # one would end the process before the `finally` below (the state file, with its token, left behind);
    # set before the state file is written, so a SIGTERM at any point after it still removes it
    main = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _exit_on_term) if main else None
    try:
        _run(library, sock, host, state, max_upload, head_timeout, max_connections, announce)
    finally:
        if main:
            signal.signal(signal.SIGTERM, old_term)
        sock.close()
        try:
            if json.loads(state.read_text()).get("pid") == os.getpid():
                state.unlink()
        except (OSError, ValueError):
            pass


def _run(library, sock: socket.socket, host: str, state: Path, max_upload: int | None, head_timeout: float,
         max_connections: int, announce) -> None:
    import uvicorn

    from .app import MAX_UPLOAD, make_app

    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(24)
    app = make_app(library, host=host, token=token, max_upload=max_upload or MAX_UPLOAD, body_timeout=head_timeout)
    url = url_for(host, port)
    try:
        if client.running_server(library.path) is not None:  # a second server: the first keeps answering `search`
            raise OSError(errno.EEXIST, "another server of this library is running")
        state.unlink(missing_ok=True)  # a new file gets the owner-only mode; an old one would keep its own
        fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the token is a secret: owner only
        with os.fdopen(fd, "w") as fh:
            json.dump({"pid": os.getpid(), "port": port, "url": url, "token": token}, fh)
    except OSError as err:  # a read-only library is still served; `search` just loads its own models
        print(f"mediaformers: note: cannot write {state} ({err.strerror}); `search` will not use this server",
              file=sys.stderr)
    (announce or (lambda u: print(f"mediaformers: serving {library.path} on {u}"
                                  + (f" (listening on {host})" if u != f"http://{host}:{port}" else ""),
                                  file=sys.stderr, flush=True)))(url)
    # uvicorn's own limit (503 past it) sits above the cap: the cap closes idle connections first
    config = uvicorn.Config(app, log_level="warning", http=guarded_protocol(head_timeout, max_connections),
                            limit_concurrency=LIMIT_FACTOR * max_connections, timeout_keep_alive=5,
                            h11_max_incomplete_event_size=16 * 1024)
    uvicorn.Server(config).run(sockets=[sock])
