"""RTSP on loopback for the live-input tests: a sender process (FFmpeg's rtsp muxer, as OBS or
``ffmpeg -f rtsp`` push) and a server as small as a test can have, so FFmpeg's RTSP client can be tested
the way a camera is read. Every wait has a timeout; the sender is killed at the end."""
import contextlib
import socket
import struct
import subprocess
import sys
import threading


class RtspRelay:
    """A loopback RTSP server as small as a test can have: a sender ANNOUNCEs its SDP and RECORDs RTP over
    TCP-interleaved frames ('$', channel, length, packet); a player DESCRIBEs, SETUPs (TCP only: 461 to
    UDP, as a server behind a firewall answers) and PLAYs, and gets every frame from the first. When the
    sender ends, the players' connections close. Every wait has a timeout."""

    def __init__(self, *, hold: bool = False):
        """``hold``: the sender's end is not passed on (a camera that goes silent, its connection open)."""
        self.sdp, self.frames, self.done, self.hold = None, [], False, hold
        self.cond = threading.Condition()
        self.transports = []  # what players asked for, in order
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(30)
        self.url = f"rtsp://127.0.0.1:{self.sock.getsockname()[1]}/live"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        try:
            while True:
                conn, _ = self.sock.accept()
                conn.settimeout(30)
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        except OSError:
            pass

    def announced(self, timeout: float = 30) -> bool:
        """Wait until a sender has announced its stream (a player that came first would wait for it)."""
        with self.cond:
            return self.cond.wait_for(lambda: self.sdp is not None, timeout=timeout)

    def close(self):
        self.sock.close()
        with self.cond:
            self.done = True
            self.cond.notify_all()

    @staticmethod
    def _message(f):
        first = f.read(1)
        if not first:
            return None
        if first == b"$":
            channel, n = struct.unpack(">BH", f.read(3))
            return "$", channel, f.read(n)
        lines = [(first + f.readline()).decode().strip()]
        while lines[-1]:
            lines.append(f.readline().decode().strip())
        method = lines[0].split(" ")[0]
        headers = dict(line.split(": ", 1) for line in lines[1:-1])
        body = f.read(int(headers.get("Content-Length", 0)))
        return method, headers, body

    def _serve(self, conn):
        publisher = False
        with conn, conn.makefile("rb") as f:
            try:
                while (msg := self._message(f)) is not None:
                    kind, headers, body = msg
                    if kind == "$":
                        if publisher:
                            with self.cond:
                                self.frames.append(b"$" + struct.pack(">BH", headers, len(body)) + body)
                                self.cond.notify_all()
                        continue
                    status, extra, out = "200 OK", {}, b""
                    if kind == "OPTIONS":
                        extra["Public"] = "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, TEARDOWN"
                    elif kind == "ANNOUNCE":
                        with self.cond:
                            self.sdp = body
                            self.cond.notify_all()
                    elif kind == "DESCRIBE":
                        with self.cond:
                            self.cond.wait_for(lambda: self.sdp is not None or self.done, timeout=20)
                        out = self.sdp or b""
                        extra = {"Content-Base": self.url + "/", "Content-Type": "application/sdp"}
                    elif kind == "SETUP":
                        transport = headers["Transport"]
                        if "mode=record" not in transport:
                            self.transports.append(transport)
                        if "TCP" not in transport:
                            status = "461 Unsupported Transport"
                        else:
                            extra = {"Transport": transport, "Session": "1"}
                    elif kind == "RECORD":
                        publisher, extra = True, {"Session": "1"}
                    elif kind == "PLAY":
                        extra = {"Session": "1"}
                    elif kind == "TEARDOWN" and publisher and not self.hold:
                        with self.cond:
                            self.done = True
                            self.cond.notify_all()
                    reply = f"RTSP/1.0 {status}\r\nCSeq: {headers.get('CSeq', '0')}\r\n"
                    reply += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                    conn.sendall((reply + f"Content-Length: {len(out)}\r\n\r\n").encode() + out)
                    if kind == "PLAY":
                        threading.Thread(target=self._play, args=(conn,), daemon=True).start()
            except (OSError, ValueError, KeyError):
                pass

    def _play(self, conn):
        sent = 0
        try:
            while True:
                with self.cond:
                    self.cond.wait_for(lambda n=sent: len(self.frames) > n or self.done, timeout=20)
                    frames, done = self.frames[sent:], self.done
                for frame in frames:
                    conn.sendall(frame)
                sent += len(frames)
                if done and not frames:
                    break
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# An RTSP sender (as OBS or `ffmpeg -f rtsp` push) in its own process: PyAV holds the GIL while it muxes,
# so a sender thread would block this process's reader. It retries until the reader listens.
PUSH = """
import sys, time, av
url, path = sys.argv[1:]
for _ in range(400):  # 20 s for the reader to listen, on a busy machine
    try:
        out = av.open(url, "w", format="rtsp", options={"rtsp_transport": "tcp"}, timeout=5)
        src = av.open(path)
        stream = out.add_stream_from_template(src.streams.video[0])
        out.start_encoding()
        break
    except av.FFmpegError:
        time.sleep(0.05)
else:
    sys.exit("no reader listened")
for packet in src.demux(video=0):
    if packet.dts is not None:
        packet.stream = stream
        out.mux(packet)
        time.sleep(0.005)
out.close()
"""


@contextlib.contextmanager
def sender(url, path):
    """The sender process pushing the video of ``path`` to ``url``; killed on the way out."""
    proc = subprocess.Popen([sys.executable, "-c", PUSH, url, str(path)], stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)
        proc.stderr.close()
