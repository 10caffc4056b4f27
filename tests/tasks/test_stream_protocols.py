"""Live input over the protocols a camera or a broadcaster uses, on loopback only: UDP MPEG-TS, HLS (a
finished playlist and one that grows while it is read), RTSP (a sender pushing to our listening reader),
an FFmpeg input device (lavfi). Every wait is bounded: readers run in ``_collect``'s thread joined with a
timeout, servers and senders stop on their own, a sender process is killed at the end."""
import functools
import http.server
import json
import re
import socket
import threading
import time

import av
import pytest

import mediaformers as mf
from mediaformers.cli import main
from mediaformers.processors.live import LiveOptions, LiveSource, _timeouts
from mediaformers.processors.video.pyav.windows import audio_chunks
from mediaformers.tasks.stream import stream_records
from tests.media import _write_tone, make_video
from tests.rtsp_relay import RtspRelay, sender
from tests.tasks.test_stream import _collect

# 7 null MPEG-TS packets (PID 0x1FFF): what a demuxer skips, so probing the receiver with them is harmless
_NULLS = (b"\x47\x1f\xff\x10" + b"\xff" * 184) * 7


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """4 s of 10 fps video as MPEG-TS, a keyframe every second (where HLS cuts its segments)."""
    return make_video(tmp_path_factory.mktemp("proto") / "v.ts", frames=40, size=(32, 48), fps=10, gop=10)


@pytest.fixture(scope="module")
def video(ckpts):
    return mf.pipeline(model=ckpts["videomae"], timeline=True, stride=1.0)


def _free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _udp_sender(port, data, sent):
    """Send ``data`` to 127.0.0.1:port in datagrams of 7 TS packets, once the reader listens (a datagram to
    a closed port comes back as ECONNREFUSED on a connected socket), then stop: UDP has no end."""
    def run():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.connect(("127.0.0.1", port))
            deadline, ok = time.monotonic() + 20, 0
            while ok < 2 and time.monotonic() < deadline:
                try:
                    tx.send(_NULLS)
                    ok += 1
                except ConnectionRefusedError:
                    ok = 0
                time.sleep(0.02)
            for i in range(0, len(data), 7 * 188):
                tx.send(data[i:i + 7 * 188])
                time.sleep(0.002)
        sent.set()

    threading.Thread(target=run, daemon=True).start()


def test_udp_mpegts_gives_every_frame_then_a_silent_sender_ends_within_the_bound(clip):
    port, sent, lines = _free_port(socket.SOCK_DGRAM), threading.Event(), []
    _udp_sender(port, clip.read_bytes(), sent)

    def frames():
        source = LiveSource(f"udp://127.0.0.1:{port}", LiveOptions(read_timeout=2, reconnect=1, backoff=0.05),
                            log=lines.append)
        try:
            yield from ((t, arrived) for t, _, arrived in source.frames())
        finally:
            source.close()

    got = _collect(frames(), timeout=30)
    assert sent.is_set()
    # all 40 frames: the ones the decoder still held when the sender went silent are kept
    assert [round(t, 2) for t, _ in got] == [round(k / 10, 2) for k in range(40)]
    # no EOF on UDP: the silence is a stall, one reopening (which hears nothing either), then the end
    assert lines[0] == f"udp://127.0.0.1:{port}: dropped (no data for 2s); reconnecting in 0.05s (1/1)"
    assert lines[-1].startswith(f"udp://127.0.0.1:{port}: ended (") and len(lines) == 2


def test_udp_stream_records_per_window_with_ffmpeg_options(video, clip):
    port, sent = _free_port(socket.SOCK_DGRAM), threading.Event()
    _udp_sender(port, clip.read_bytes(), sent)
    options = LiveOptions(read_timeout=2, reconnect=0, options={"fifo_size": "100000", "overrun_nonfatal": "1"})
    recs = _collect(stream_records(video, f"udp://127.0.0.1:{port}", options, log=lambda line: None))
    windows = [r for r in recs if r["kind"] == "window"]
    assert [w["start"] for w in windows] == [0.0, 1.0, 2.0, 3.0]
    assert all(w["labels"] and w["latency"] >= 0 for w in windows)


def _hls(clip, folder):
    """The clip as an HLS playlist x.m3u8 of 1 s segments, written by FFmpeg's hls muxer; its text."""
    folder.mkdir()
    with av.open(str(clip)) as src, av.open(str(folder / "x.m3u8"), "w", format="hls", options={
            "hls_time": "1", "hls_list_size": "0", "hls_playlist_type": "vod",
            "hls_segment_filename": str(folder / "s%d.ts")}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return (folder / "x.m3u8").read_text()


def _serve(folder, playlist=None):
    """A loopback HTTP server of ``folder``; ``playlist()``, when given, answers x.m3u8."""
    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if playlist is None or not self.path.endswith(".m3u8"):
                return super().do_GET()
            body = playlist().encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _read_hls(video, folder, options, playlist=None):
    """(url, records, log lines) of reading ``folder``'s x.m3u8 from a loopback server till the stream ends."""
    server = _serve(folder, playlist)
    url, lines = f"http://127.0.0.1:{server.server_port}/x.m3u8", []
    try:
        return url, _collect(stream_records(video, url, options, log=lines.append)), lines
    finally:
        server.shutdown()
        server.server_close()


def test_a_finished_hls_playlist_is_read_once_not_replayed_by_reconnection(video, clip, tmp_path):
    assert "#EXT-X-ENDLIST" in _hls(clip, tmp_path / "hls")
    url, recs, lines = _read_hls(video, tmp_path / "hls", LiveOptions(read_timeout=2, reconnect=3, backoff=0.05))
    assert [r["start"] for r in recs if r["kind"] == "window"] == [0.0, 1.0, 2.0, 3.0]
    assert lines == [f"{url}: ended (end of the recording)"]


def test_a_live_hls_playlist_is_followed_as_segments_are_added(video, clip, tmp_path):
    """The playlist lists one more segment at each request (FFmpeg reloads it every target duration, 1 s),
    then its end: the reader starts when one segment exists and follows the rest."""
    head, *segments = re.split(r"(?=#EXTINF)", _hls(clip, tmp_path / "hls").replace("#EXT-X-ENDLIST\n", "")
                               .replace("#EXT-X-PLAYLIST-TYPE:VOD\n", ""))
    assert len(segments) == 4
    asked = []

    def playlist():
        asked.append(len(asked))
        shown = segments[:len(asked)]
        return head + "".join(shown) + ("#EXT-X-ENDLIST\n" if len(shown) == len(segments) else "")

    url, recs, lines = _read_hls(video, tmp_path / "hls", LiveOptions(read_timeout=3, reconnect=2, backoff=0.05),
                                 playlist)
    assert len(asked) >= 4  # it was read while it grew
    assert [r["start"] for r in recs if r["kind"] == "window"] == [0.0, 1.0, 2.0, 3.0]
    assert lines == [f"{url}: ended (end of the recording)"]


def test_rtsp_from_a_sender_pushing_to_the_listening_reader(ckpts, clip, tmp_path, capsys):
    """``--stream-option`` reaches FFmpeg's RTSP demuxer: ``rtsp_flags=listen`` makes it the server a sender
    announces to, over TCP-interleaved RTP; the wait for the sender is bounded by --read-timeout."""
    url = f"rtsp://127.0.0.1:{_free_port()}/live"
    out, code = tmp_path / "rtsp.jsonl", []

    def run():
        code.append(main(["classify", str(ckpts["videomae"]), "--stream", url, "--stride", "1",
                          "--stream-option", "rtsp_flags=listen", "--stream-option", "rtsp_transport=tcp",
                          "--read-timeout", "20", "--reconnect", "0", "-o", str(out)]))
        yield from ()

    with sender(url, clip) as proc:
        _collect(run(), timeout=60)
        assert proc.wait(10) == 0, proc.stderr.read().decode()
    assert code == [0]
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["start"] for r in recs if r["kind"] == "window"] == [0.0, 1.0, 2.0, 3.0]
    assert "ended (end of stream)" in capsys.readouterr().err


def test_rtsp_from_a_server_as_a_camera_is_read(video, clip):
    """FFmpeg's RTSP client as a user runs it, no option: DESCRIBE, SETUP (UDP refused, so TCP), PLAY."""
    relay = RtspRelay()
    lines = []
    try:
        with sender(relay.url, clip):
            assert relay.announced()
            recs = _collect(stream_records(video, relay.url, LiveOptions(read_timeout=5, reconnect=0),
                                           log=lines.append), timeout=40)
    finally:
        relay.close()
    assert [t.split(";")[0] for t in relay.transports] == ["RTP/AVP/UDP", "RTP/AVP/TCP"]
    assert [r["start"] for r in recs if r["kind"] == "window"] == [0.0, 1.0, 2.0, 3.0]
    assert lines[-1].startswith(f"{relay.url}: ended (")


def test_an_rtsp_server_gone_silent_ends_after_the_read_timeout(video, clip):
    relay = RtspRelay(hold=True)  # the sender's end never reaches the player: its connection just goes quiet
    lines = []
    try:
        with sender(relay.url, clip):
            assert relay.announced()
            recs = _collect(stream_records(video, relay.url, LiveOptions(
                read_timeout=2, reconnect=0, options={"rtsp_transport": "tcp"}), log=lines.append), timeout=40)
    finally:
        relay.close()
    assert relay.transports == ["RTP/AVP/TCP;unicast;interleaved=0-1"]
    assert [r["start"] for r in recs if r["kind"] == "window"] == [0.0, 1.0, 2.0, 3.0]
    assert lines == [f"{relay.url}: ended (no data for 2s)"]


def test_an_rtsp_listener_nobody_sends_to_ends_after_the_read_timeout():
    url = f"rtsp://127.0.0.1:{_free_port()}/live"

    def run():
        yield LiveSource(url, LiveOptions(read_timeout=1, reconnect=0, options={"rtsp_flags": "listen"}))

    with pytest.raises(ValueError, match=rf"stream: cannot open {url} \("):
        _collect(run(), timeout=20)


def test_an_ffmpeg_input_device_by_its_format(video):
    """``format`` opens what is not a file or URL: a capture device (alsa, x11grab), here lavfi's test source."""
    recs = _collect(stream_records(video, "testsrc=size=48x32:rate=10:duration=3",
                                   LiveOptions(read_timeout=2, reconnect=0, format="lavfi"), log=lambda line: None))
    assert [r["start"] for r in recs if r["kind"] == "window"] == [0.0, 1.0, 2.0]


def test_each_protocol_gets_ffmpeg_timeouts_and_the_users_options_win():
    assert _timeouts("udp://127.0.0.1:1234", 2.5, {}) == {"rw_timeout": "2500000"}
    assert _timeouts("RTSP://cam/1", 2.5, {}) == {"rw_timeout": "2500000", "timeout": "2500000"}
    assert _timeouts("rtsp://0.0.0.0/x", 2.5, {"rtsp_flags": "listen"})["listen_timeout"] == "3"
    # a user's option replaces ours (the read timeout still bounds every read through PyAV)
    opts = LiveOptions(options={"rw_timeout": "99"})
    assert {**_timeouts("tcp://h:1", 1.0, opts.options), **opts.options}["rw_timeout"] == "99"


@pytest.mark.parametrize("flags, message", [
    (["--stream-option", "rtsp_transport"], r"--stream-option: expected KEY=VALUE \(an FFmpeg option, e\.g\. "
                                            r"rtsp_transport=tcp\), got 'rtsp_transport'"),
    (["--stream-option", "=tcp"], r"--stream-option: expected KEY=VALUE"),
    (["--stream-option", "a=1", "--stream-option", "a=2"], r"--stream-option: a given twice \('1' and '2'\)"),
    (["--stream-option", "rtsp_transprot=tcp"], r"options: FFmpeg has no option named 'rtsp_transprot'"),
    (["--stream-format", "nosuchformat"], r"format: expected an input format of this FFmpeg build .*got "
                                          r"'nosuchformat'"),
])
def test_stream_flags_are_checked_before_the_model_loads(flags, message, capsys):
    assert main(["classify", "/no/such/model", "--stream", "udp://127.0.0.1:9", *flags]) != 0
    assert re.search(message, capsys.readouterr().err)


def test_stream_flags_apply_with_stream_only(capsys):
    assert main(["classify", "/no/such/model", "x.mp4", "--stream-option", "a=1"]) != 0
    assert "--stream-option: applies with --timeline or --stream" in capsys.readouterr().err


def test_options_are_checked_and_copied():
    with pytest.raises(ValueError, match=r"options: expected FFmpeg options as \{name: value\} strings, got"):
        LiveOptions(options={"fifo_size": 100000})
    given = {"rtsp_transport": "tcp"}
    opts = LiveOptions(options=given)
    given["rtsp_transport"] = "udp"
    assert opts.options == {"rtsp_transport": "tcp"}


def test_an_option_name_ffmpeg_does_not_know_is_refused():
    """As ``ffmpeg`` does: FFmpeg's library would drop it silently and the stream would run without it."""
    from mediaformers.processors.video.pyav.option_names import unknown_options

    assert unknown_options(["rtsp_transport", "fifo_size", "rw_timeout", "live_start_index", "threads",
                            "rtsp_transprot"]) == ["rtsp_transprot"]
    with pytest.raises(ValueError, match=r"options: FFmpeg has no option named 'rtsp_transprot' \(names: ffmpeg -h"):
        LiveOptions(options={"rtsp_transprot": "tcp"})


def test_a_stall_keeps_the_audio_the_decoder_held(tmp_path):
    """A stall (UDP's only end, a camera gone quiet) ends a read with an error, not an EOF: the audio the
    decoder and the resampler (48 kHz to 16 kHz) still hold is flushed out, as at an end of file."""
    path = tmp_path / "a.ts"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=48000)
        s.layout = "mono"
        _write_tone(c, s, 2.0)
    data, done = path.read_bytes(), threading.Event()
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(20)

        def serve():  # all of it, then silence on an open connection
            conn, _ = srv.accept()
            with conn:
                conn.sendall(data)
                done.wait(20)

        threading.Thread(target=serve, daemon=True).start()

        def samples():
            source = LiveSource(f"tcp://127.0.0.1:{srv.getsockname()[1]}", LiveOptions(read_timeout=1, reconnect=0),
                                log=lambda line: None)
            try:
                yield sum(len(x) for x, _ in source.chunks(16000))
            finally:
                source.close()

        stalled = _collect(samples())
        done.set()
    with av.open(str(path)) as c:  # the same bytes read to an end of file
        assert stalled == [sum(len(x) for x, _ in audio_chunks(c, "a.ts", 16000))]


def test_a_video_model_on_a_stream_without_video_says_so(video, tmp_path):
    path = tmp_path / "sound.ts"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        s.layout = "mono"
        _write_tone(c, s, 0.5)
    with pytest.raises(ValueError, match=r"cannot read video '.*sound\.ts': it has no video stream"):
        _collect(stream_records(video, str(path), LiveOptions(read_timeout=1, reconnect=0), log=lambda line: None))


def test_ffmpegs_own_timeout_reads_as_the_read_timeout():
    """FFmpeg's timeouts (rw_timeout, RTSP's timeout) are set to the read timeout, and race PyAV's callback:
    whichever fires, the line says the same."""
    import errno

    from mediaformers.processors.live import _why

    assert _why(av.error.TimeoutError(errno.ETIMEDOUT, "Connection timed out"), 2.0) == "no data for 2s"
    assert _why(av.error.ExitError(errno.EPERM, "Immediate exit requested"), 2.0) == "no data for 2s"
