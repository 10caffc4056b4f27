"""The HTTP app of ``mediaformers serve``: Starlette routes over an open :class:`Library`.

What keeps it safe on a desktop, where any web page the user visits can send requests to localhost:
- only the Host names the server was started for are answered (DNS rebinding);
- files are addressed by a stable id (a digest of path and content), never by a path from the request,
  and served only while they are still the regular file the index recorded (no symlink on the way,
  same size and mtime), opened once with O_NOFOLLOW and streamed from that descriptor;
- a POST needs the per-run token the page carries (a cross-origin page cannot read it, and its custom
  header needs a CORS preflight the app never grants); uploads are capped and streamed to disk;
- the model and FFmpeg run in worker threads, a few at a time, with a bounded queue: pages stay fast.
"""
from __future__ import annotations

import hashlib
import html
import math
import os
import secrets
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

from .page import PAGE
from .records import LibraryError

TOKEN_HEADER = "x-mediaformers-token"
MAX_UPLOAD = 256 << 20  # bytes of one search-by-example upload
MAX_WAITING = 256  # requests queued for the model/FFmpeg before 503 (uvicorn's own limit comes first)
MAX_UPLOADS = 4  # uploads received at once (each may take MAX_UPLOAD of disk); more get 503
BODY_TIMEOUT = 10.0  # seconds an upload may go without a byte; a /media reader without reading


def file_id(path: str, digest: str) -> str:
    """A page id that stays with the file (not its position in a list): it changes only with the file."""
    return hashlib.blake2b(f"{path}\0{digest}".encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def open_indexed(row: dict[str, Any]) -> int | None:
    """An fd on the indexed file, or None when it is no longer the regular file the index recorded."""
    path = row["path"]
    if os.path.realpath(path) != path:  # a link now sits on the way (the index stores resolved paths)
        return None
    try:  # only a regular file is opened: a FIFO put there would block open() (and the server) for ever
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    os.set_blocking(fd, True)  # O_NONBLOCK was for the open alone (swapped for a FIFO after the lstat)
    st = os.fstat(fd)
    if (not stat.S_ISREG(st.st_mode) or st.st_size != row["size"] or st.st_mtime_ns != row["mtime_ns"]
            or not _opened_at(fd, path, st)):
        os.close(fd)
        return None
    return fd


def _opened_at(fd: int, path: str, st: os.stat_result) -> bool:
    """The file opened is the one at ``path``: a folder on the way swapped for a link between the check
    above and the open would have led O_NOFOLLOW (which guards only the last part) elsewhere."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == path
    except OSError:  # no /proc: the path, checked again, must still lead to this very file
        try:
            now = os.stat(path, follow_symlinks=False)
        except OSError:
            return False
        return os.path.realpath(path) == path and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


def allowed_hosts(host: str) -> set[str]:
    names = {"localhost", "127.0.0.1", "::1", host.strip("[]").lower().rstrip(".")}
    if host.strip("[]") in ("0.0.0.0", "::"):  # a wildcard bind (--allow-remote): this machine's own name too
        import socket

        names.add(socket.gethostname().lower())
    return names - {"0.0.0.0", "::", ""}  # a wildcard is reached by an address or a name, never by itself


def host_name(header: str) -> str:
    """``[::1]:8000`` -> ``::1``; ``LocalHost.:80`` -> ``localhost``; anything malformed (``[::1]x``,
    ``host:abc``, ``a:b:c``) -> ``""``, which is never ours."""
    import re

    header = header.strip().lower()
    m = re.fullmatch(r"\[([0-9a-f:.]+)\](?::\d{1,5})?", header) or re.fullmatch(r"([^:\[\]]+?)\.?(?::\d{1,5})?", header)
    return m.group(1) if m else ""


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _loopback_ip(name: str) -> bool:
    """An address literal on this machine (127.0.0.2, ::ffff:127.0.0.1): a rebinding page always comes
    under a domain name, never an address."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)  # type: ignore[union-attr]


_HARDENING = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
              (b"content-security-policy", b"frame-ancestors 'none'"), (b"referrer-policy", b"no-referrer")]


class HostGuard:
    """ASGI middleware: a request whose Host header is not one of ours gets 421 (DNS rebinding). Every
    response says: no type sniffing, no framing by another page (clickjacking the drop target), no referrer."""

    def __init__(self, app, hosts: set[str], extra: set[str] = frozenset()):  # type: ignore[assignment]
        self.app, self.hosts = app, set(hosts) | set(extra)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            name = host_name(headers.get(b"host", b"").decode("latin-1"))
            server = (scope.get("server") or ("",))[0] or ""
            # the address literal the connection arrived at is ours too (a --host 0.0.0.0 server reached
            # from another machine); a rebinding attack always comes under a domain name
            if len([v for k, v in scope.get("headers") or [] if k == b"host"]) > 1:
                name = ""  # two Host headers: which one a proxy or the app would use is anyone's guess
            if name not in self.hosts and not _loopback_ip(name) and not (name and name == server.lower()
                                                                         and _is_ip(name)):
                from starlette.responses import PlainTextResponse

                await PlainTextResponse(f"Host {name!r} is not served here", status_code=421)(scope, receive, send)
                return

            async def hardened(message):
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), *_HARDENING]}
                await send(message)
            return await self.app(scope, receive, hardened)
        await self.app(scope, receive, send)


class Work:
    """Blocking work (model, FFmpeg) in worker threads, ``workers`` at a time, at most MAX_WAITING queued."""

    def __init__(self, workers: int = 2):
        import anyio

        self.limiter = anyio.CapacityLimiter(workers)
        self.waiting = 0
        self.model_lock = threading.Lock()  # one model call at a time: torch already uses every core

    async def run(self, fn, *args):
        from anyio import to_thread

        if self.waiting >= MAX_WAITING:
            raise Busy
        self.waiting += 1
        try:
            return await to_thread.run_sync(fn, *args, limiter=self.limiter)
        finally:
            self.waiting -= 1


class Busy(Exception):
    pass


def make_app(library, *, host: str = "127.0.0.1", token: str | None = None, max_upload: int = MAX_UPLOAD,
             workers: int = 2, extra_hosts: set[str] = frozenset(), body_timeout: float = BODY_TIMEOUT):  # type: ignore[assignment]
    """The Starlette app over an open :class:`mediaformers.search.Library`. ``extra_hosts``: Host names
    answered besides loopback and ``host``; ``token``: what a POST must carry (default: a new random one);
    ``body_timeout``: seconds an upload may send nothing, or a /media client read nothing, before it is dropped."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    token = token or secrets.token_urlsafe(24)
    work = Work(workers)
    page_html = PAGE.replace("{TOKEN}", token)
    uploads = [0]  # uploads being received now

    def catalogue() -> dict[str, dict[str, Any]]:
        return {file_id(p, r["sha256"]): r for p, r in library.files().items() if r["status"] == "ok"}

    def error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def searched(prefix: str = "", **query) -> Response:
        def find():
            with work.model_lock:
                hits = library.search(group=True, **query)
            return hits, {r["path"]: i for i, r in catalogue().items()}  # a big files table: off the loop too
        try:
            hits, ids = await work.run(find)
        except Busy:
            return error("busy: too many searches waiting; try again", 503)
        except (ValueError, OSError) as err:  # a bad query or an unreadable upload: the user's error
            return error(prefix + _shown(err, query.get("like")))
        except Exception as err:  # an upload the decoders or the model choke on: still that file's fault
            if "like" not in query:
                raise
            first = _shown(err, query["like"]).splitlines()[0] if str(err) else ""
            return error(f"{prefix}cannot search by this file ({type(err).__name__}: {first})", 422)
        return JSONResponse({"results": [{**h.record(), "id": ids[h.path], "name": html.escape(Path(h.path).name)}
                                         for h in hits if h.path in ids]})

    async def page(request: Request):
        return HTMLResponse(page_html)

    def authorised(request: Request) -> bool:
        return secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), token)

    async def ping(request: Request):
        if not authorised(request):
            return error("token: expected this server's token", 403)
        return JSONResponse({"library": str(library.path.resolve()), "pid": os.getpid()})

    async def search(request: Request):
        q = request.query_params.get("q", "")
        try:
            from .records import check_k

            k = check_k(request.query_params.get("k", "24"))
        except LibraryError as err:
            return error(str(err))
        return await searched(text=q, k=k)

    async def like(request: Request):
        if not authorised(request):
            return error("token: a search by example needs the page's token (X-Mediaformers-Token)", 403)
        name = request.query_params.get("name", "upload")
        if request.headers.get("content-type", "").lower().startswith("multipart/"):
            return error(f"{name}: expected the file's bytes as the request body, got a multipart form "
                         "(curl: --data-binary @FILE, not -F)", 415)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_upload:
            return error(f"{name}: expected at most {max_upload} bytes, got {declared}", 413)
        if uploads[0] >= MAX_UPLOADS:  # each may fill max_upload bytes of disk: a few at a time
            return error(f"busy: {MAX_UPLOADS} uploads are already running; try again", 503)
        uploads[0] += 1
        try:
            return await received(request, name)
        finally:
            uploads[0] -= 1

    async def received(request: Request, name: str) -> Response:
        import re

        import anyio
        from starlette.requests import ClientDisconnect

        suffix = Path(name).suffix.lower()  # only to tell the media kind: letters and digits only
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else ""
        stream = request.stream()
        deadline = anyio.current_time() + 30 * body_timeout  # a trickle of bytes cannot hold it for ever
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:  # removed however this ends
            size = 0
            while True:
                wait = min(body_timeout, deadline - anyio.current_time())
                chunk = None
                with anyio.move_on_after(max(wait, 0)) as waited:
                    try:
                        chunk = await stream.__anext__()
                    except StopAsyncIteration:
                        break
                    except ClientDisconnect:
                        return Response(status_code=400)  # nobody is left to read it
                if waited.cancelled_caught:
                    return error(f"{name}: the upload stalled (no bytes for {body_timeout:g} s, or too slow); "
                                 "expected the whole file", 408)
                size += len(chunk)  # type: ignore[arg-type]
                if size > max_upload:
                    return error(f"{name}: expected at most {max_upload} bytes, got more", 413)
                try:
                    tmp.write(chunk)  # type: ignore[arg-type]
                except OSError as err:  # a full disk: the upload cannot be searched, the server goes on
                    return error(f"{name}: cannot keep the upload ({err.strerror})", 507)
            try:
                tmp.flush()
            except OSError as err:
                return error(f"{name}: cannot keep the upload ({err.strerror})", 507)
            if size == 0:
                return error("file: expected an uploaded file, got no bytes")
            return await searched(f"{name}: ", like=tmp.name, k=24)

    async def opened(request: Request) -> tuple[int, dict] | None:
        """The checked, open file of the id: in a thread, as reading the files table and the file's
        metadata (a slow or network disk) must not stall the other requests."""
        from anyio import to_thread

        def find():
            row = catalogue().get(request.path_params["id"])
            fd = open_indexed(row) if row is not None else None
            return (fd, row) if fd is not None else None
        return await to_thread.run_sync(find)

    async def media(request: Request):
        found = await opened(request)
        if found is None:
            return Response("not found", status_code=404)
        fd, row = found
        return _FdResponse(fd, row["path"], FileResponse, body_timeout)

    async def thumb(request: Request):
        try:
            t = float(request.query_params.get("t", "0"))
        except ValueError:
            t = math.nan
        if not math.isfinite(t) or t < 0:
            return Response(f"t: expected finite seconds >= 0, got {request.query_params.get('t')!r}",
                            status_code=400)
        found = await opened(request)
        if found is None:
            return Response("not found", status_code=404)
        fd, row = found
        from .thumbs import frame_jpeg, waveform_png

        def draw() -> tuple[bytes, str]:
            with os.fdopen(fd, "rb") as fh:
                if row["kind"] == "audio":
                    return waveform_png(fh, t), "image/png"
                try:
                    return frame_jpeg(fh, t), "image/jpeg"
                except (ValueError, OSError) as err:  # a video file with sound only: its waveform
                    fh.seek(0)
                    try:
                        return waveform_png(fh, t), "image/png"
                    except (ValueError, OSError):
                        raise err from None
        try:
            body, kind = await work.run(draw)
        except Busy:
            os.close(fd)
            return Response("busy", status_code=503)
        except Exception as err:  # a file the decoders choke on, whatever they raise: one line, not a 500
            return Response(f"thumbnail: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
                            status_code=422)
        return Response(body, media_type=kind)

    app = Starlette(routes=[Route("/", page), Route("/api/search", search), Route("/api/ping", ping),
                            Route("/api/like", like, methods=["POST"]), Route("/media/{id}", media),
                            Route("/thumb/{id}", thumb)])
    return HostGuard(app, allowed_hosts(host), extra_hosts)


class _FdResponse:
    """The checked, open file as a FileResponse (range requests, for seeking), closed however the response
    ends (a browser aborts many video range requests). /proc/self/fd/N (/dev/fd/N on macOS) reopens this
    very file even if the path is swapped meanwhile; with neither, the path is reopened."""

    def __init__(self, fd: int, path: str, response_class, send_timeout: float = BODY_TIMEOUT):
        self.fd, self.send_timeout = fd, send_timeout
        via = next((f"{d}/{fd}" for d in ("/proc/self/fd", "/dev/fd") if os.path.isdir(d)), path)
        self.response = response_class(via, stat_result=os.fstat(fd), media_type=_media_type(path))

    async def __call__(self, scope, receive, send):
        import anyio

        async def timed(message):  # a client that stops reading would hold the connection and fd for ever
            with anyio.fail_after(self.send_timeout):
                await send(message)
        try:
            await self.response(scope, receive, timed)
        except TimeoutError:
            pass  # the response stays incomplete: the server closes the connection
        finally:
            os.close(self.fd)


def _shown(err: BaseException, upload: str | None) -> str:
    """The error's text with the upload's temp path (the server's business, not the user's) left out."""
    text = str(err)
    return text.replace(f" '{upload}'", "").replace(upload, "the upload") if upload else text


def _media_type(path: str) -> str | None:
    import mimetypes

    return mimetypes.guess_type(path)[0]
