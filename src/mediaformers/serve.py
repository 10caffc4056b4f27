"""``mediaformers serve LIBRARY``: a local search page over a library (Starlette + uvicorn).

Files are addressed by their index in the library's files table, never by a path from the request,
so only indexed files can be read (no traversal, no listing). Binds 127.0.0.1 unless told otherwise.
"""
from __future__ import annotations

import html
import ipaddress
import os
import tempfile
from fractions import Fraction
from pathlib import Path

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>mediaformers search</title>
<style>body{font-family:sans-serif;margin:1.5em}#grid{display:flex;flex-wrap:wrap;gap:12px}
.hit{width:200px;cursor:pointer}.hit img{width:200px;height:150px;object-fit:cover;background:#ddd}
.hit div{font-size:12px;overflow-wrap:anywhere}#player{margin-top:1em}</style></head><body>
<form id="f"><input id="q" name="q" size="50" placeholder="search in any language"> <button>Search</button>
<label> or drop / choose a file: <input type="file" id="file"></label></form>
<div id="status"></div><div id="grid"></div><div id="player"></div>
<script>
const grid = document.getElementById('grid'), status = document.getElementById('status');
function show(hits) {
  grid.innerHTML = ''; status.textContent = hits.length + ' results';
  hits.forEach((h, i) => {
    const d = document.createElement('div'); d.className = 'hit'; d.id = 'hit' + i;
    d.innerHTML = `<img src="/thumb/${h.id}?t=${(h.start + h.end) / 2}" alt=""><div>${h.name}<br>`
      + `${h.start.toFixed(1)}-${h.end.toFixed(1)} s, score ${h.score.toFixed(3)}</div>`;
    d.onclick = () => play(h); grid.appendChild(d);
  });
}
function play(h) {
  const p = document.getElementById('player');
  if (h.kind === 'image') { p.innerHTML = `<img id="media" src="/media/${h.id}" width="480">`; return; }
  const tag = h.kind === 'audio' ? 'audio' : 'video';
  p.innerHTML = `<${tag} id="media" controls autoplay muted width="480" src="/media/${h.id}#t=${h.start}"></${tag}>`;
}
async function run(url, opts) {
  const r = await fetch(url, opts); const j = await r.json();
  if (!r.ok) { status.textContent = j.error; return; } show(j.results);
}
document.getElementById('f').onsubmit = e => { e.preventDefault();
  run('/api/search?q=' + encodeURIComponent(document.getElementById('q').value)); };
function upload(file) { const fd = new FormData(); fd.append('file', file); run('/api/like', {method: 'POST', body: fd}); }
document.getElementById('file').onchange = e => upload(e.target.files[0]);
document.body.ondragover = e => e.preventDefault();
document.body.ondrop = e => { e.preventDefault(); upload(e.dataTransfer.files[0]); };
const q0 = new URLSearchParams(location.search).get('q');
if (q0) { document.getElementById('q').value = q0; run('/api/search?q=' + encodeURIComponent(q0)); }
</script></body></html>"""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def thumbnail_jpeg(path: str, t: float, width: int = 320) -> bytes:
    """The frame on screen at ``t`` (an image's only frame) as a JPEG, scaled inside FFmpeg."""
    import av

    from .processors.video_io import read_frames_at

    frame = read_frames_at(path, [max(t, 0.0)])[0].numpy()
    h, w = frame.shape[:2]
    image = av.VideoFrame.from_ndarray(frame, format="rgb24")
    scale = min(1.0, width / w)
    image = image.reformat(width=max(2, int(w * scale) // 2 * 2), height=max(2, int(h * scale) // 2 * 2),
                           format="yuvj420p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = image.width, image.height, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    return b"".join(bytes(p) for p in [*codec.encode(image), *codec.encode(None)])


def make_app(library):
    """The Starlette app over an open :class:`mediaformers.library.Library`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    def indexed() -> list[str]:
        return sorted(p for p, r in library.files().items() if r["status"] == "ok")

    def file_by_id(request: Request) -> str | None:
        try:
            i = int(request.path_params["id"])
        except ValueError:
            return None
        paths = indexed()
        return paths[i] if 0 <= i < len(paths) and os.path.isfile(paths[i]) else None

    def results(hits) -> JSONResponse:
        ids = {p: i for i, p in enumerate(indexed())}
        return JSONResponse({"results": [{**h.record(), "id": ids[h.path], "name": html.escape(Path(h.path).name)}
                                         for h in hits if h.path in ids]})

    async def page(request: Request):
        return HTMLResponse(PAGE)

    async def search(request: Request):
        q, k = request.query_params.get("q", ""), request.query_params.get("k", "24")
        try:
            return results(library.search(text=q, k=int(k)))
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)

    async def like(request: Request):
        form = await request.form()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            return JSONResponse({"error": "file: expected an uploaded file, got none"}, status_code=400)
        suffix = Path(upload.filename or "").suffix.lower()
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(await upload.read())
            tmp.flush()
            try:
                return results(library.search(like=tmp.name, k=24))
            except Exception as err:  # an unreadable upload is the user's error, not the server's
                return JSONResponse({"error": f"{upload.filename}: {err}"}, status_code=400)

    async def media(request: Request):
        path = file_by_id(request)
        return FileResponse(path) if path else Response("not found", status_code=404)

    async def thumb(request: Request):
        path = file_by_id(request)
        if path is None:
            return Response("not found", status_code=404)
        try:
            t = float(request.query_params.get("t", "0"))
        except ValueError:
            return Response("t: expected seconds", status_code=400)
        return Response(thumbnail_jpeg(path, t), media_type="image/jpeg")

    return Starlette(routes=[Route("/", page), Route("/api/search", search), Route("/api/like", like, methods=["POST"]),
                             Route("/media/{id}", media), Route("/thumb/{id}", thumb)])


def serve(library, host: str = "127.0.0.1", port: int = 8000, allow_remote: bool = False) -> None:
    if not is_loopback(host) and not allow_remote:
        raise ValueError(f"--host: {host} is reachable from other machines; pass --allow-remote to serve the "
                         "library there (anyone who can reach it can search and play every indexed file)")
    import uvicorn

    uvicorn.run(make_app(library), host=host, port=port, log_level="warning")
