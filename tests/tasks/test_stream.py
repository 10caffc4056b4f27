"""Live input on loopback only: MPEG-TS over TCP and HTTP from a thread, a growing file, stdin (a pipe).
Every wait is bounded: streams run in a thread joined with a timeout, so a hang fails the test."""
import http.server
import json
import os
import socket
import threading
import time

import av
import pytest
import torch

import mediaformers as mf
from mediaformers.cli import main
from mediaformers.processors.live import LiveOptions, LiveSource
from mediaformers.tasks.stream import stream_records
from tests.media import _write_tone, make_video

FAST = dict(read_timeout=1.0, reconnect=0)


@pytest.fixture(scope="module")
def ts(tmp_path_factory):
    """MPEG-TS bytes: 'video' (4 s, 10 fps) and 'audio' (4 s AAC tone)."""
    root = tmp_path_factory.mktemp("live")
    video = make_video(root / "v.ts", frames=40, size=(32, 48), fps=10).read_bytes()
    c = av.open(str(root / "a.ts"), "w")
    s = c.add_stream("aac", rate=16000)
    s.layout = "mono"
    _write_tone(c, s, 4.0)
    c.close()
    return {"video": video, "audio": (root / "a.ts").read_bytes()}


@pytest.fixture(scope="module")
def pipes(ckpts):
    return {"video": mf.pipeline(model=ckpts["videomae"], timeline=True, stride=1.0),
            "audio": mf.pipeline(model=ckpts["ast"], timeline=True)}


def _server(parts, *, hold=None, pace=0.002, seconds=None):
    """A TCP server on 127.0.0.1 sending ``parts[k]`` to its k-th connection, then closing it (or waiting on
    the ``hold`` event first: a stall); with ``seconds``, each part is sent evenly over that many seconds (a
    live sender), else a 4 KB piece every ``pace`` seconds."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(20)

    def run():
        try:
            for part in parts:
                conn, _ = srv.accept()
                with conn:
                    t0 = time.monotonic()
                    for i in range(0, len(part), 4096):
                        conn.sendall(part[i:i + 4096])
                        due = t0 + min(i + 4096, len(part)) / len(part) * seconds if seconds else None
                        time.sleep(pace if due is None else max(0.0, due - time.monotonic()))
                    if hold is not None:
                        hold.wait(20)
        except OSError:
            pass
        finally:
            srv.close()

    threading.Thread(target=run, daemon=True).start()
    return f"tcp://127.0.0.1:{srv.getsockname()[1]}"


def _collect(gen, timeout=30.0):
    """Run a record generator in a thread; a hang fails here instead of stalling the suite."""
    out, errors = [], []

    def run():
        try:
            out.extend(gen)
        except Exception as err:  # noqa: BLE001 - handed to the test
            errors.append(err)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"the stream did not end within {timeout}s"
    if errors:
        raise errors[0]
    return out


def test_tcp_video_windows_come_as_they_complete_with_latency(pipes, ts):
    gate = threading.Event()
    half = len(ts["video"]) // 2
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(20)

    def run():  # the second half waits until the first window's record is out: records are not held back
        conn, _ = srv.accept()
        with conn:
            conn.sendall(ts["video"][:half])
            gate.wait(20)
            conn.sendall(ts["video"][half:])
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    url = f"tcp://127.0.0.1:{srv.getsockname()[1]}"
    records = []

    def consume():
        for rec in stream_records(pipes["video"], url, LiveOptions(**FAST), log=lambda line: None):
            records.append(rec)
            gate.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive()
    windows = [r for r in records if r["kind"] == "window"]
    assert [w["start"] for w in windows] == [0.0, 1.0, 2.0, 3.0]
    assert all(w["input"] == url and 0 <= w["latency"] < 30 and w["labels"] for w in windows)
    assert records[-1]["kind"] == "segment"


def test_a_dropped_stream_is_reconnected_and_media_time_runs_on(pipes, ts):
    data = ts["audio"]
    url = _server([data[: len(data) // 2], data[len(data) // 2:]])
    lines = []
    recs = _collect(stream_records(pipes["audio"], url, LiveOptions(read_timeout=2, reconnect=2, backoff=0.05),
                                   log=lines.append))
    starts = [r["start"] for r in recs if r["kind"] == "window"]
    assert starts == sorted(starts) and starts[-1] > 2.0  # the second connection's audio follows the first's
    assert any("reconnecting in 0.05s (1/2)" in line for line in lines)
    assert "ended" in lines[-1]


def test_a_stalled_stream_ends_after_the_read_timeout(pipes, ts):
    hold = threading.Event()
    url = _server([ts["audio"][:188 * 64]], hold=hold)  # whole TS packets, then silence
    lines = []
    t0 = time.monotonic()
    recs = _collect(stream_records(pipes["audio"], url, LiveOptions(**FAST), log=lines.append), timeout=20)
    hold.set()
    assert time.monotonic() - t0 < 15
    assert recs and "no data for 1s" in lines[-1]


def test_reconnection_is_bounded_when_nothing_answers():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    srv.close()  # nothing listens: every connection is refused
    lines = []
    with pytest.raises(ValueError, match=rf"stream: cannot open tcp://127.0.0.1:{port} \("):
        LiveSource(f"tcp://127.0.0.1:{port}", LiveOptions(read_timeout=1, reconnect=2, backoff=0.01), log=lines.append)
    assert len(lines) == 2 and "retrying in 0.02s" in lines[1]


def test_http_stream(pipes, ts):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            for i in range(0, len(ts["video"]), 8192):
                self.wfile.write(ts["video"][i:i + 8192])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        recs = _collect(stream_records(pipes["video"], f"http://127.0.0.1:{server.server_port}/live.ts",
                                       LiveOptions(**FAST), log=lambda line: None))
    finally:
        server.shutdown()
        server.server_close()
    assert [r["start"] for r in recs if r["kind"] == "window"] == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("fmt", [None, "mpegts"])  # a format named (--stream-format) keeps the file followed
def test_a_growing_file_is_followed_until_it_stops_growing(pipes, ts, tmp_path, fmt):
    path = tmp_path / "growing.ts"
    path.write_bytes(b"")
    data = ts["audio"]

    def write():
        with open(path, "ab") as f:
            for i in range(0, len(data), 8192):
                f.write(data[i:i + 8192])
                f.flush()
                time.sleep(0.01)

    threading.Thread(target=write, daemon=True).start()
    lines = []
    recs = _collect(stream_records(pipes["audio"], str(path), LiveOptions(**FAST, format=fmt), log=lines.append))
    windows = [r for r in recs if r["kind"] == "window"]
    assert windows[-1]["end"] == pytest.approx(4.0, abs=0.2)  # all of it, though it was empty at the start


def test_stdin(pipes, ts):
    r, w = os.pipe()

    def feed():
        for i in range(0, len(ts["audio"]), 8192):
            os.write(w, ts["audio"][i:i + 8192])
        os.close(w)

    threading.Thread(target=feed, daemon=True).start()
    recs = _collect(stream_records(pipes["audio"], "-", LiveOptions(**FAST), log=lambda line: None, stdin_fd=r))
    os.close(r)
    assert [r["kind"] for r in recs].count("window") == 6


def test_live_options_are_checked():
    with pytest.raises(ValueError, match=r"read_timeout: expected a positive number of seconds, got 0"):
        LiveOptions(read_timeout=0)
    with pytest.raises(ValueError, match=r"reconnect: expected 0 or more reopenings, got -1"):
        LiveOptions(reconnect=-1)
    with pytest.raises(FileNotFoundError, match=r"stream: no such file"):
        LiveSource("/no/such/file.ts")


def test_cli_stream_writes_one_record_per_window(ckpts, ts, tmp_path, capsys):
    url = _server([ts["video"]])
    out = tmp_path / "live.jsonl"
    code = []

    def run():  # in _collect's thread: a hang fails the test
        code.append(main(["classify", str(ckpts["videomae"]), "--stream", url, "--stride", "2",
                          "--read-timeout", "1", "--reconnect", "0", "-o", str(out)]))
        yield from ()

    _collect(run())
    assert code == [0]
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["start"] for r in recs if r["kind"] == "window"] == [0.0, 2.0]
    assert "ended (end of stream)" in capsys.readouterr().err


def test_ctrl_c_closes_the_open_segments_then_stops(pipes):
    from mediaformers.processors.media_windows import Window

    def scored():
        for k in range(3):
            yield Window(k * 1.0, k + 1.0, None, 0.0), torch.tensor([0.2, 0.7, 0.1])
        raise KeyboardInterrupt

    got = []
    with pytest.raises(KeyboardInterrupt):
        for rec in pipes["video"].merged("live", scored()):
            got.append(rec)
    assert [r["kind"] for r in got] == ["window"] * 3 + ["segment"]
    assert got[-1]["start"] == 0.0 and got[-1]["end"] == 3.0


def test_a_short_read_timeout_holds_on_a_real_time_stream(ts):
    """The open reads a second of media, which a live sender takes a second to send: the first read after it
    was held to the open's deadline, so --read-timeout 1 ended every real-time stream at once."""
    source = LiveSource(_server([ts["video"]], seconds=4.0), LiveOptions(**FAST), log=lambda line: None)
    try:
        times = [t for t, _, _ in source.frames()]
    finally:
        source.close()
    assert len(times) == 40 and times[-1] == pytest.approx(3.9)


def test_max_lag_skips_the_windows_a_slow_model_cannot_keep_up_with(ckpts, ts):
    """A model 2x slower than real time: every window is classified and the records fall further behind
    live; with max_lag, windows already too far behind are skipped (and said so), and the records stay nearer."""
    def run(max_lag):
        tl = mf.pipeline(model=ckpts["videomae"], timeline=True, stride=1.0)
        scored = tl.scored

        def slow(windows, **kw):  # a model call that takes 2 s per 1 s window
            for item in scored(windows, **kw):
                time.sleep(2.0)
                yield item
        tl.scored = slow
        lines: list[str] = []
        recs = _collect(stream_records(tl, _server([ts["video"]], seconds=4.0), LiveOptions(**FAST), log=lines.append,
                                       max_lag=max_lag), timeout=60)
        return [r for r in recs if r["kind"] == "window"], [line for line in lines if "skipped" in line]

    every, said = run(None)
    assert [w["start"] for w in every] == [0.0, 1.0, 2.0, 3.0] and not said
    assert every[-1]["behind"] > every[0]["behind"] + 2  # about 1 s more per window
    kept, said = run(1.0)
    assert 1 <= len(kept) < 4 and said and "behind live (--max-lag 1)" in said[0]
    assert max(w["behind"] for w in kept) < every[-1]["behind"]
    with pytest.raises(ValueError, match="max_lag: expected a positive number of seconds"):
        next(stream_records(tl_any := mf.pipeline(model=ckpts["videomae"], timeline=True), "tcp://127.0.0.1:9",
                            max_lag=float("nan")))
    del tl_any
