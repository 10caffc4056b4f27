"""The search server attacked from the outside, with a stand-in library (no model): DNS rebinding, swapped
files, cross-site POSTs, big uploads, slow clients, a blocked event loop, bad parameters, port errors, and
`mediaformers search` answered by a running server. Everything on loopback, every wait bounded."""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mediaformers.search import Hit, LibraryError
from mediaformers.search.app import file_id, make_app
from mediaformers.search.server import bind, serve, url_for
from mediaformers.search.records import file_hash

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


class FakeLibrary:
    """What the app uses of a Library: its folder, its files table and search."""

    def __init__(self, folder: Path, files: list[Path], kinds: dict[str, str] | None = None):
        self.path, self.rows = folder, {}
        self.gate = threading.Event()
        self.gate.set()
        self.queries: list[dict] = []
        for f in files:
            self.index(f, (kinds or {}).get(f.name, "image"))

    def index(self, f: Path, kind: str = "image") -> None:
        st = f.stat()
        p = str(f.resolve())
        self.rows[p] = {"path": p, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_hash(p),
                        "kind": kind, "status": "ok"}

    def files(self):
        return dict(self.rows)

    def search(self, *, text=None, like=None, k=10, group=False, where=None):
        self.queries.append({"text": text, "like": like, "k": k})
        assert self.gate.wait(20), "test gate never opened"
        if text == "bad":
            raise LibraryError("text: a bad query")
        return [Hit(p, 0.0, 1.0, 0.9, r["kind"], True) for p, r in list(self.rows.items())[:k]]


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    from PIL import Image
    import soundfile as sf

    root = tmp_path / "media"
    root.mkdir()
    Image.fromarray(np.full((24, 32, 3), 200, np.uint8)).save(root / "a.png")
    Image.fromarray(np.full((24, 32, 3), 50, np.uint8)).save(root / "b.png")
    t = np.arange(8000) / 8000
    sf.write(root / "tone.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 8000)
    (tmp_path / "secret.txt").write_text("outside the library")
    lib = tmp_path / "lib"
    lib.mkdir()
    return {"root": root, "a": root / "a.png", "b": root / "b.png", "wav": root / "tone.wav",
            "secret": tmp_path / "secret.txt", "lib": lib}


def _client(library, **kw):
    from starlette.testclient import TestClient

    return TestClient(make_app(library, token="tok", **kw), base_url="http://127.0.0.1")


def _id(path: Path) -> str:
    p = str(path.resolve())
    return file_id(p, file_hash(p))


def test_only_our_host_names_are_answered(files):
    client = _client(FakeLibrary(files["lib"], [files["a"]]))
    for host in ("127.0.0.1:8000", "localhost", "LOCALHOST:1", "[::1]:8000"):
        assert client.get("/", headers={"host": host}).status_code == 200, host
    for host in ("evil.example.com", "evil.example.com:8000", "127.0.0.1.evil.example", "", "[::1", "0.0.0.0"):
        r = client.get("/api/search", params={"q": "x"}, headers={"host": host})
        assert r.status_code == 421 and "path" not in r.text, host
        assert client.get(f"/media/{_id(files['a'])}", headers={"host": host}).status_code == 421
    named = _client(FakeLibrary(files["lib"], [files["a"]]), host="box.lan")
    assert named.get("/", headers={"host": "box.lan:8000"}).status_code == 200
    from starlette.testclient import TestClient

    # a wildcard bind reached from another machine by the address the connection arrived at
    remote = TestClient(make_app(FakeLibrary(files["lib"], [files["a"]]), host="0.0.0.0"), base_url="http://10.1.2.3")
    assert remote.get("/").status_code == 200
    assert remote.get("/", headers={"host": "10.9.9.9"}).status_code == 421
    assert remote.get("/", headers={"host": "evil.example.com"}).status_code == 421


def test_files_are_served_by_stable_id_only_while_unchanged(files):
    lib = FakeLibrary(files["lib"], [files["b"]])
    client = _client(lib)
    first = client.get("/api/search", params={"q": "x"}).json()["results"][0]["id"]
    lib.index(files["a"])  # a new file sorts before b.png: a position would now point at it
    after = {h["name"]: h["id"] for h in client.get("/api/search", params={"q": "x", "k": 5}).json()["results"]}
    assert after["b.png"] == first and after["a.png"] != first
    assert client.get(f"/media/{first}").content == files["b"].read_bytes()
    # swapped for a link to a file outside the library after indexing
    a = _id(files["a"])
    files["a"].unlink()
    files["a"].symlink_to(files["secret"])
    assert client.get(f"/media/{a}").status_code == 404 and client.get(f"/thumb/{a}").status_code == 404
    # a folder on the way replaced by a link
    moved = files["root"].parent / "moved"
    files["root"].rename(moved)
    files["root"].symlink_to(moved)
    assert client.get(f"/media/{first}").status_code == 404
    files["root"].unlink()
    moved.rename(files["root"])
    assert client.get(f"/media/{first}").status_code == 200
    files["b"].write_bytes(files["b"].read_bytes() + b"more")  # changed since indexing
    assert client.get(f"/media/{first}").status_code == 404


def test_posts_need_the_token_and_uploads_are_capped(files):
    lib = FakeLibrary(files["lib"], [files["a"]])
    client = _client(lib, max_upload=1000)
    body = files["a"].read_bytes()[:900]
    assert client.post("/api/like?name=q.png", content=body).status_code == 403  # a cross-site form post
    assert client.post("/api/like?name=q.png", content=body, headers={"X-Mediaformers-Token": "x"}).status_code == 403
    ok = client.post("/api/like?name=q.png", content=body, headers={"X-Mediaformers-Token": "tok"})
    assert ok.status_code == 200 and lib.queries[-1]["like"].endswith(".png")
    assert not os.path.exists(lib.queries[-1]["like"])  # the upload went to a temporary file, removed
    big = client.post("/api/like?name=q.png", content=b"x" * 5000, headers={"X-Mediaformers-Token": "tok"})
    assert big.status_code == 413 and "at most 1000 bytes" in big.json()["error"]

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(10):
            yield b"x" * 500
    streamed = client.post("/api/like?name=q.png", content=chunks(), headers={"X-Mediaformers-Token": "tok"})
    assert streamed.status_code == 413
    assert client.post("/api/like", content=b"", headers={"X-Mediaformers-Token": "tok"}).status_code == 400


def test_parameters_are_checked(files):
    lib = FakeLibrary(files["lib"], [files["a"], files["wav"]], kinds={"tone.wav": "audio"})
    client = _client(lib)
    i = _id(files["a"])
    for t in ("nan", "inf", "-inf", "-1", "abc"):
        r = client.get(f"/thumb/{i}", params={"t": t})
        assert r.status_code == 400 and "expected finite seconds" in r.text, t
    assert client.get(f"/thumb/{i}", params={"t": "0"}).headers["content-type"] == "image/jpeg"
    wave = client.get(f"/thumb/{_id(files['wav'])}", params={"t": "0.5"})
    assert wave.status_code == 200 and wave.headers["content-type"] == "image/png"
    from PIL import Image
    import io

    drawn = np.asarray(Image.open(io.BytesIO(wave.content)))
    assert drawn.shape[2] == 3 and (drawn[..., 2] > drawn[..., 0] + 100).sum() > 100  # the blue waveform
    for k, message in (("abc", "expected a whole number"), ("0", "positive"), (str(10**23), "up to")):
        r = client.get("/api/search", params={"q": "x", "k": k})
        assert r.status_code == 400 and message in r.json()["error"], k
    assert client.get("/api/search", params={"q": "bad"}).json() == {"error": "text: a bad query"}


@pytest.fixture
def running(files, request):
    """serve() in a thread on a free loopback port, with short timeouts; stopped at the end."""
    options = {"head_timeout": 0.5, "max_connections": 8, **getattr(request, "param", {})}
    lib = FakeLibrary(files["lib"], [files["a"]])
    urls: list[str] = []
    servers = []
    import uvicorn

    original = uvicorn.Server.run

    def run(self, sockets=None):
        servers.append(self)
        return original(self, sockets=sockets)

    uvicorn.Server.run = run
    thread = threading.Thread(target=serve, args=(lib, "127.0.0.1", 0), daemon=True,
                              kwargs={**options, "announce": urls.append})
    thread.start()
    try:
        for _ in range(200):
            if servers and servers[0].started:
                break
            time.sleep(0.05)
        assert urls and servers[0].started
        yield lib, urls[0], servers[0]
    finally:
        uvicorn.Server.run = original
        lib.gate.set()
        if servers:
            servers[0].should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert not (files["lib"] / ".serve.json").exists()  # the state file goes with the server


def _get(url: str, timeout: float = 5.0, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_a_long_search_does_not_block_the_page(running):
    lib, url, _ = running
    lib.gate.clear()  # searches now wait until the test opens the gate
    slow = threading.Thread(target=_get, args=(url + "/api/search?q=x", 20), daemon=True)
    slow.start()
    for _ in range(100):
        if lib.queries:
            break
        time.sleep(0.05)
    assert lib.queries, "the search never started"
    status, body = _get(url + "/", timeout=5)  # answered while the search is still running
    assert status == 200 and b"mediaformers search" in body and slow.is_alive()
    lib.gate.set()
    slow.join(timeout=20)
    assert not slow.is_alive()


def test_slow_and_idle_connections_are_closed(running):
    _, url, _ = running
    port = int(url.rsplit(":", 1)[1])
    socks = []
    for _ in range(6):  # slowloris: a request head that never ends
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
        socks.append(s)
    try:
        for s in socks:
            s.settimeout(5)
            assert s.recv(100) == b""  # closed by the server after its head timeout, not left open
        assert _get(url + "/")[0] == 200  # normal requests still get through
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("running", [{"head_timeout": 60}], indirect=True)
def test_a_flood_of_idle_connections_does_not_crowd_out_requests(running):
    _, url, server = running
    port = int(url.rsplit(":", 1)[1])
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(30)]  # cap is 8
    try:
        for s in socks:
            s.sendall(b"GET / HTTP/1.1\r\n")
        assert _get(url + "/", timeout=5)[0] == 200  # at once, not after the 60 s head timeout
        closed = 0
        for s in socks:
            s.settimeout(5)
            try:
                closed += s.recv(100) == b""
            except ConnectionResetError:  # closed with our unread request bytes: a reset
                closed += 1
            except TimeoutError:
                pass
            if closed >= 22:
                break
        assert closed >= 22  # the oldest idle ones made room
    finally:
        for s in socks:
            s.close()


def test_search_command_uses_the_running_server(running, monkeypatch, capsys):
    from mediaformers import cli
    from mediaformers.search import library as library_module

    lib, url, _ = running
    state = json.loads((lib.path / ".serve.json").read_text())
    assert state["url"] == url and oct((lib.path / ".serve.json").stat().st_mode & 0o777) == "0o600"

    def no_models(*a, **kw):
        raise AssertionError("search loaded the library although a server was running")
    monkeypatch.setattr(library_module.Library, "__init__", no_models)
    assert cli.main(["search", str(lib.path), "a bright picture", "-k", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and json.loads(out[0])["path"] == str(files_a(lib)) and lib.queries[-1]["k"] == 1
    assert cli.main(["search", str(lib.path), "bad"]) == 2
    assert "text: a bad query" in capsys.readouterr().err
    # a fresh `mediaformers search` process answers without importing torch (nor loading any model)
    import subprocess
    import sys

    script = ("import sys; from mediaformers.cli import main; rc = main(['search', sys.argv[1], 'x', '-k', '1']); "
              "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", script, str(lib.path)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0 and json.loads(run.stdout)["path"] == files_a(lib), run.stderr


def files_a(lib) -> str:
    return next(iter(lib.rows))


def test_port_and_host_errors_are_one_line(files):
    lib = FakeLibrary(files["lib"], [files["a"]])
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(LibraryError, match=rf"--port: cannot listen on 127.0.0.1:{port} .*pick another"):
            serve(lib, "127.0.0.1", port)
    finally:
        taken.close()
    with pytest.raises(LibraryError, match="--port: expected 0..65535"):
        serve(lib, "127.0.0.1", 99999)
    with pytest.raises(LibraryError, match="--allow-remote"):
        serve(lib, "0.0.0.0", 0)
    assert url_for("0.0.0.0", 8000) == "http://127.0.0.1:8000" and url_for("::1", 80) == "http://[::1]:80"


def test_cli_port_error_is_one_line(files, capsys):
    from mediaformers import cli

    for typed, expected in (("99999", "expected 0..65535 (0 picks a free port), got 99999"),
                            ("-1", "expected 0..65535 (0 picks a free port), got -1"),
                            *((t, f"expected a whole number, got {t!r}")  # int() took the 1st, 2nd and 3rd
                              for t in (" 80", "8_0", "\u0668\u0660", "80.0"))):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["serve", str(files["lib"]), "--port", typed])
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and f"--port: {expected}" in err and err.count("\n") == 0, err


def test_served_files_do_not_leak_descriptors(files):
    lib = FakeLibrary(files["lib"], [files["a"], files["wav"]], kinds={"tone.wav": "audio"})
    client = _client(lib)
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _ in range(20):
        assert client.get(f"/media/{_id(files['a'])}").status_code == 200
        assert client.get(f"/media/{_id(files['wav'])}", headers={"range": "bytes=10-99"}).status_code == 206
        assert client.get(f"/thumb/{_id(files['wav'])}").status_code == 200
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) <= before + 2
