"""Third red-team pass on the search server (issue 24): an indexed file replaced by a FIFO or a folder,
a thumbnail time past any video's end, odd k and query text, a multipart upload, an upload's temp path in
messages, and SIGTERM. Loopback only; every wait bounded."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.search.test_serve_security import FakeLibrary, _client, _get, _id, files, running  # noqa: F401 (fixtures)

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


def _bounded_get(client, url: str, seconds: float = 10.0):
    """client.get in a thread: a server stuck in open() fails the test instead of hanging it."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(client.get(url)), daemon=True)
    thread.start()
    thread.join(seconds)
    return out[0] if out else None


@pytest.mark.parametrize("what", ["fifo", "folder"])
def test_an_indexed_file_replaced_by_a_fifo_or_a_folder_is_404(files, what):
    """open() of a FIFO blocks until a writer comes: it froze the whole server (the open ran on its loop)."""
    client = _client(FakeLibrary(files["lib"], [files["a"]]))
    i = _id(files["a"])
    files["a"].unlink()
    os.mkfifo(files["a"]) if what == "fifo" else files["a"].mkdir()
    try:
        for url in (f"/media/{i}", f"/thumb/{i}"):
            r = _bounded_get(client, url)
            assert r is not None, f"{url} hung on a {what}"
            assert r.status_code == 404, (url, r.status_code)
    finally:
        if what == "fifo":  # release a reader the fix failed to keep out (a writer unblocks its open)
            try:
                os.close(os.open(files["a"], os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass


def test_a_thumbnail_time_past_any_end_is_the_last_frame(files, tmp_path):
    from tests.media import make_video

    video = make_video(tmp_path / "media" / "v.mp4", frames=4, size=(32, 48))
    client = _client(FakeLibrary(files["lib"], [video], {"v.mp4": "video"}))
    for t in ("1e300", "1.7e308", "99999"):  # 1e300 overflowed the seek's int64 timestamp: a 422
        r = client.get(f"/thumb/{_id(video)}", params={"t": t})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", (t, r.text)


def test_k_is_ascii_digits_only(files):
    client = _client(FakeLibrary(files["lib"], [files["a"]]))
    for k in ("1_0", "\u0663", "\uff13", "1e1", "0x3", "+-1"):  # int() took the first three
        r = client.get("/api/search", params={"q": "x", "k": k})
        assert r.status_code == 400 and "k: expected" in r.json()["error"], k
    assert client.get("/api/search", params={"q": "x", "k": " 3 "}).status_code == 200


def test_a_multipart_upload_is_named_and_temp_paths_are_not_shown(files):
    client = _client(FakeLibrary(files["lib"], [files["a"]]))
    r = client.post("/api/like", params={"name": "a.png"}, headers={"x-mediaformers-token": "tok"},
                    files={"file": ("a.png", files["a"].read_bytes(), "image/png")})
    assert r.status_code == 415 and "multipart" in r.json()["error"] and "--data-binary" in r.json()["error"]

    class Choking(FakeLibrary):
        def search(self, *, like=None, **kw):
            raise ValueError(f"cannot decode video '{like}': no decodable video frames")
    client = _client(Choking(files["lib"], [files["a"]]))
    r = client.post("/api/like", params={"name": "x.png"}, headers={"x-mediaformers-token": "tok"}, content=b"junk")
    message = r.json()["error"]
    assert r.status_code == 400 and message == "x.png: cannot decode video: no decodable video frames", message
    assert "/tmp" not in message and "tmp" not in message.split(": ", 1)[1], message


@pytest.mark.timeout(120)
def test_sigterm_stops_the_server_and_removes_its_state_file(files):
    """uvicorn re-raises SIGTERM after its shutdown with the default handler back: the process died before
    serve()'s cleanup, leaving .serve.json (with the token) behind."""
    root = Path(__file__).resolve().parents[2]
    code = ("import sys; from pathlib import Path; from tests.search.test_serve_security import FakeLibrary;"
            "from mediaformers.search.server import serve;"
            "serve(FakeLibrary(Path(sys.argv[1]), []), '127.0.0.1', 0, announce=lambda u: None)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", code, str(files["lib"])], env=env, cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = files["lib"] / ".serve.json"
    try:
        for _ in range(600):
            if state.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert state.exists(), proc.communicate(timeout=10)
        assert json.loads(state.read_text())["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    assert not state.exists()
    assert b"Traceback" not in err, err.decode()[-2000:]


def test_host_forms(files):
    from mediaformers.search import LibraryError
    from mediaformers.search.app import allowed_hosts
    from mediaformers.search.server import is_loopback, serve

    lib = FakeLibrary(files["lib"], [files["a"]])
    for host in ("localhost:8000", "[::1]:8000", "127.0.0.1:80"):  # was "reachable from other machines"
        with pytest.raises(LibraryError, match="without a port .*--port"):
            serve(lib, host, 0)
    for host in ("127.1", "0x7f000001", "localhost.", "LocalHost", "::ffff:127.0.0.1", "[::1]"):
        assert is_loopback(host), host
    for host in ("0", "0.0.0.0", "::", "evil.example.com", "10.0.0.1", "localhost.evil.example.com"):
        assert not is_loopback(host), host
    import socket

    # a wildcard bind (--allow-remote) also answers under this machine's name; a loopback one does not
    assert socket.gethostname().lower() in allowed_hosts("0.0.0.0")
    assert "" not in allowed_hosts("0.0.0.0") and "0.0.0.0" not in allowed_hosts("0.0.0.0")
    assert allowed_hosts("127.0.0.1") == {"localhost", "127.0.0.1", "::1"}


def test_a_second_server_leaves_the_first_ones_state_file(files, monkeypatch):
    """It overwrote .serve.json: the first server, still running, was no longer found by `search`."""
    from mediaformers.search import client, server

    state = files["lib"] / ".serve.json"
    first = {"pid": os.getppid(), "port": 1, "url": "http://127.0.0.1:1", "token": "first"}
    state.write_text(json.dumps(first))
    monkeypatch.setattr(client, "running_server", lambda path: first)  # the first one answers its ping
    urls: list[str] = []

    class Stop(Exception):
        pass

    def run(self, sockets=None):
        assert json.loads(state.read_text()) == first
        raise Stop
    monkeypatch.setattr("uvicorn.Server.run", run)
    with pytest.raises(Stop):
        server.serve(FakeLibrary(files["lib"], [files["a"]]), "127.0.0.1", 0, announce=urls.append)
    assert urls and json.loads(state.read_text()) == first


def test_reading_the_files_table_does_not_block_the_page(running):
    """/media and /thumb read the whole files table (and stat the file) for each request: that ran on the
    event loop, so a big table or a slow disk stalled every other request."""
    lib, url, _ = running
    entered, release = threading.Event(), threading.Event()
    rows = lib.files

    def slow_files():
        entered.set()
        assert release.wait(20), "test gate never opened"
        return rows()
    lib.files = slow_files
    slow = threading.Thread(target=_get, args=(f"{url}/media/{next(iter(rows().values()))['sha256']}", 20),
                            daemon=True)
    slow.start()
    try:
        assert entered.wait(10), "the media request never read the table"
        status, body = _get(url + "/", timeout=5)  # answered while the table is still being read
        assert status == 200 and slow.is_alive()
    finally:
        release.set()
    slow.join(timeout=20)
    assert not slow.is_alive()


def test_responses_refuse_framing_and_sniffing(files):
    client = _client(FakeLibrary(files["lib"], [files["a"]]))
    for url in ("/", "/api/search?q=x", f"/media/{_id(files['a'])}", "/nothing"):
        r = client.get(url)
        assert r.headers["x-content-type-options"] == "nosniff", url
        assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_library_json_keeps_its_mode(tmp_path):
    from mediaformers.search.records import write_text_atomic

    target = tmp_path / "library.json"
    write_text_atomic(target, "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # a new file: as any file made here (was 0600)
    target.chmod(0o640)
    write_text_atomic(target, "{}\n")
    assert target.stat().st_mode & 0o777 == 0o640 and target.read_text() == "{}\n"


def test_a_burst_of_real_requests_is_answered_not_reset(running):
    """Past the connection cap, idle connections are closed; a burst accepted in one batch looked idle
    (none of its heads read yet) and was reset: 129 of 200 concurrent searches."""
    _, url, _ = running  # cap 8 connections
    codes: list = []

    def ask(i):
        try:
            codes.append(_get(f"{url}/api/search?q=x{i}", timeout=30)[0])
        except OSError as err:
            codes.append(type(err).__name__)
    threads = [threading.Thread(target=ask, args=(i,), daemon=True) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert codes.count(200) == 24, codes
