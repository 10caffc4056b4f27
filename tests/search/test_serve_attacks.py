"""More attacks on the search server (red team of issue 24): Host header variants, odd upload names,
stalled and parallel uploads (their temp files removed), a client that stops reading a large file.
Loopback only; every wait bounded by a socket timeout."""
from __future__ import annotations

import glob
import os
import socket
import tempfile
import time

import pytest

from tests.search.test_serve_security import FakeLibrary, _client, _id, files, running  # noqa: F401 (fixtures)

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


def test_host_header_variants(files):
    client = _client(FakeLibrary(files["lib"], [files["a"]]))
    for host in ("localhost.", "LOCALHOST.:80", "127.0.0.1.:8000", "127.0.0.2", "[::ffff:127.0.0.1]:80", "[::1]"):
        assert client.get("/api/search", params={"q": "x"}, headers={"host": host}).status_code == 200, host
    for host in ("[::1]evil.example.com", "[::1].evil.example.com:80", "127.0.0.1:abc", "127.0.0.1:80:80",
                 "evil.example.com.", "localhost.evil.example.com", "localhost..", ":80", "2130706433", "127.1"):
        r = client.get("/api/search", params={"q": "x"}, headers={"host": host})
        assert r.status_code == 421 and "path" not in r.text, host


def test_odd_upload_names_are_not_server_errors(files):
    lib = FakeLibrary(files["lib"], [files["a"]])
    client = _client(lib)
    body = files["a"].read_bytes()
    for name in ("a.%00png", "a.p%2F..%2Fng", "..%5C..%5Cx.png", "x." + "p" * 300, "caf%E9.png", "%FF%FE.%FFpng"):
        r = client.post(f"/api/like?name={name}", content=body, headers={"X-Mediaformers-Token": "tok"})
        assert r.status_code == 200, (name, r.text)
        assert os.path.dirname(lib.queries[-1]["like"]) == tempfile.gettempdir()
    assert not lib.queries[-6]["like"].endswith("png")  # a NUL in the suffix: no suffix at all


def _post_head(port: int, token: str, length: int | None, name: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    s.sendall(f"POST /api/like?name={name} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mediaformers-Token: {token}\r\n"
              f"{framing}\r\n\r\n".encode())
    return s


def _status(s: socket.socket) -> int:
    s.settimeout(10)
    return int(s.recv(200).split(b" ", 2)[1])


@pytest.mark.parametrize("running", [{"head_timeout": 2.0}], indirect=True)  # room for 6 connects on a busy box
def test_stalled_and_parallel_uploads(running):
    lib, url, _ = running
    import json

    token = json.loads((lib.path / ".serve.json").read_text())["token"]
    port = int(url.rsplit(":", 1)[1])
    name = f"q.mf{os.getpid()}"  # this process's own: another run's uploads share the temp folder
    leftovers = os.path.join(tempfile.gettempdir(), f"*.mf{os.getpid()}")
    slow = _post_head(port, token, 1000, name)
    slow.sendall(b"x" * 10)  # and then nothing: the body never ends
    chunked = _post_head(port, token, None, name)
    chunked.sendall(b"5\r\nxxxxx\r\n")
    assert _status(slow) == 408 and _status(chunked) == 408  # after the body timeout, not never
    slow.close()
    chunked.close()
    socks = [_post_head(port, token, 10**6, name) for _ in range(6)]
    try:
        for s in socks:
            s.sendall(b"x" * 1000)
        codes = sorted(_status(s) for s in socks)
        assert codes.count(503) >= 2 and set(codes) <= {408, 503}, codes  # at most 4 received at once
    finally:
        for s in socks:
            s.close()
    assert not glob.glob(leftovers)  # every upload above was answered, so its temp file is gone
    gone = _post_head(port, token, 10**6, name)  # the client leaves halfway
    gone.sendall(b"x" * 100_000)
    deadline = time.monotonic() + 30  # its upload has begun (else the check below could run before it does)
    while not glob.glob(leftovers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert glob.glob(leftovers), "the upload never reached the server"
    gone.close()
    deadline = time.monotonic() + 30  # the server notices the departure on its next read; a loaded machine is slow
    while glob.glob(leftovers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not glob.glob(leftovers)  # every temp file removed, however the upload ended


def test_a_client_that_stops_reading_is_dropped(running, tmp_path):
    lib, url, _ = running
    big = tmp_path / "big.mp4"
    with open(big, "wb") as fh:
        fh.truncate(64 << 20)  # sparse: more than loopback socket buffers hold
    lib.index(big, "video")
    port = int(url.rsplit(":", 1)[1])
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET /media/{_id(big)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    time.sleep(2.0)  # reads nothing for 4 body timeouts
    got = 0
    while chunk := s.recv(1 << 20):  # the server closed it: recv ends (a hang is the 10 s socket timeout)
        got += len(chunk)
    s.close()
    assert got < 64 << 20
    if fds is not None:
        for _ in range(50):
            if len(os.listdir("/proc/self/fd")) <= fds:
                break
            time.sleep(0.05)
        assert len(os.listdir("/proc/self/fd")) <= fds  # the file's descriptor closed with it


@pytest.mark.parametrize("proc", [True, False], ids=["proc", "no-proc"])
def test_a_folder_swapped_between_check_and_open(files, monkeypatch, proc):
    """The swap lands after the realpath check and before the open, with a look-alike file (same name,
    size and mtime) behind the link: O_NOFOLLOW alone would serve it."""
    from mediaformers.search import app as app_module

    lib = FakeLibrary(files["lib"], [files["b"]])
    client = _client(lib)
    evil = files["root"].parent / "evil"
    evil.mkdir()
    st = files["b"].stat()
    (evil / "b.png").write_bytes(b"S" * st.st_size)
    os.utime(evil / "b.png", ns=(st.st_atime_ns, st.st_mtime_ns))
    if not proc:  # as on macOS: no /proc/self/fd
        real_readlink, real_isdir = os.readlink, os.path.isdir

        def readlink(p, *a, **kw):
            if str(p).startswith("/proc/self/fd"):
                raise FileNotFoundError(p)
            return real_readlink(p, *a, **kw)
        monkeypatch.setattr(app_module.os, "readlink", readlink)
        monkeypatch.setattr(app_module.os.path, "isdir", lambda p: p != "/proc/self/fd" and real_isdir(p))
    i = _id(files["b"])
    good = client.get(f"/media/{i}")
    assert good.status_code == 200 and good.content == files["b"].read_bytes()  # (/dev/fd without /proc)
    real_realpath, target = os.path.realpath, str(files["b"].resolve())

    def realpath_then_swap(p, *a, **kw):
        out = real_realpath(p, *a, **kw)
        if p == target and not files["root"].is_symlink():
            files["root"].rename(files["root"].parent / "moved")
            files["root"].symlink_to(evil)
        return out
    monkeypatch.setattr(app_module.os.path, "realpath", realpath_then_swap)
    r = client.get(f"/media/{i}")
    assert r.status_code == 404 and b"SSSS" not in r.content


def test_a_sound_only_video_gets_a_waveform_thumbnail(files, tmp_path):
    from tests.media import make_audio_only

    mp4 = make_audio_only(tmp_path / "voice.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0not a video" * 100)
    lib = FakeLibrary(files["lib"], [mp4, junk, files["a"]], kinds={"voice.mp4": "video", "junk.mp4": "video"})
    client = _client(lib)
    r = client.get(f"/thumb/{_id(mp4)}", params={"t": "0.2"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    bad = client.get(f"/thumb/{_id(junk)}")
    assert bad.status_code == 422 and bad.text.startswith("thumbnail: ")
    from mediaformers.search import thumbs

    def crash(*a, **kw):
        raise RuntimeError("decoder state\nmore")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(thumbs, "frame_jpeg", crash)
        mp.setattr(thumbs, "waveform_png", crash)
        r = client.get(f"/thumb/{_id(files['a'])}")
        assert r.status_code == 422 and r.text == "thumbnail: decoder state"


def test_search_asks_only_a_server_on_this_machine(tmp_path, monkeypatch):
    import json
    import urllib.request

    from mediaformers.search import client as client_module

    def no_network(*a, **kw):
        raise AssertionError("the query went to another machine")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    for url in ("http://10.1.2.3:8000", "http://evil.example.com:80", "file:///etc/passwd"):
        (tmp_path / ".serve.json").write_text(json.dumps({"pid": os.getpid(), "url": url, "token": "t"}))
        assert client_module.running_server(tmp_path) is None


@pytest.mark.parametrize("host", ["", " ", "127.0.0.1/x", "user@127.0.0.1", "127.0.0.1 "])
def test_malformed_hosts_are_refused_by_name(files, host):
    from mediaformers.search import LibraryError
    from mediaformers.search.server import serve

    with pytest.raises(LibraryError, match="--host: expected a host name or address"):
        serve(FakeLibrary(files["lib"], []), host, 0)


def test_an_upload_the_model_chokes_on_is_a_422(files):
    class Choking(FakeLibrary):
        def search(self, *, like=None, **kw):
            if like is not None:
                raise RuntimeError("shape mismatch\nsecond line")
            return super().search(**kw)
    client = _client(Choking(files["lib"], [files["a"]]))
    r = client.post("/api/like?name=x.wav", content=b"RIFF", headers={"X-Mediaformers-Token": "tok"})
    assert r.status_code == 422 and r.json()["error"] == "x.wav: cannot search by this file (RuntimeError: shape mismatch)"


def test_a_full_disk_during_an_upload_is_a_507(files, monkeypatch):
    import errno

    real = tempfile.NamedTemporaryFile
    made = []

    class Full:
        def __init__(self, *a, **kw):
            self.fh = real(*a, **kw)
            self.name = self.fh.name
            made.append(self.name)

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", Full)
    client = _client(FakeLibrary(files["lib"], [files["a"]]))
    r = client.post("/api/like?name=q.png", content=b"x" * 100, headers={"X-Mediaformers-Token": "tok"})
    assert r.status_code == 507 and "No space left" in r.json()["error"] and not os.path.exists(made[0])
