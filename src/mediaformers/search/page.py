"""The search page: one HTML file with its script (``{TOKEN}``: the server's per-run POST token)."""

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>mediaformers search</title>
<meta name="mf-token" content="{TOKEN}">
<style>body{font-family:sans-serif;margin:1.5em}#grid{display:flex;flex-wrap:wrap;gap:12px}
.hit{width:200px;cursor:pointer}.hit img{width:200px;height:150px;object-fit:cover;background:#ddd}
.hit div{font-size:12px;overflow-wrap:anywhere}.t{color:#24c;margin-right:4px}#player{margin-top:1em}</style></head><body>
<form id="f"><input id="q" name="q" size="50" placeholder="search in any language"> <button>Search</button>
<label> or drop / choose a file: <input type="file" id="file"></label></form>
<div id="status"></div><div id="grid"></div><div id="player"></div>
<script>
const grid = document.getElementById('grid'), status = document.getElementById('status');
const token = document.querySelector('meta[name=mf-token]').content;
const span = (s, e) => `${s.toFixed(1)}-${e.toFixed(1)} s`;
function show(hits) {
  grid.innerHTML = ''; status.textContent = hits.length + ' results';
  hits.forEach((h, i) => {
    const d = document.createElement('div'); d.className = 'hit'; d.id = 'hit' + i;
    const more = (h.times || []).map((t, j) => `<span class="t" id="hit${i}t${j}">${span(t[0], t[1])}</span>`).join('');
    d.innerHTML = `<img src="/thumb/${h.id}?t=${(h.start + h.end) / 2}" alt=""><div>${h.name}<br>`
      + `${span(h.start, h.end)}, score ${h.score.toFixed(3)}<br>${more}</div>`;
    d.onclick = () => play(h, h.start); grid.appendChild(d);
    (h.times || []).forEach((t, j) => { document.getElementById(`hit${i}t${j}`).onclick = e => {
      e.stopPropagation(); play(h, t[0]); }; });
  });
}
function play(h, start) {
  const p = document.getElementById('player');
  if (h.kind === 'image') { p.innerHTML = `<img id="media" src="/media/${h.id}" width="480">`; return; }
  const tag = h.kind === 'audio' ? 'audio' : 'video';
  p.innerHTML = `<${tag} id="media" controls autoplay muted width="480" src="/media/${h.id}#t=${start}"></${tag}>`;
}
async function run(url, opts) {
  status.textContent = 'searching...';
  let r, j;  // a 503/421 from the server itself is plain text: say so instead of hanging on 'searching...'
  try { r = await fetch(url, opts); j = await r.json(); }
  catch (e) { status.textContent = r ? `${r.status} ${r.statusText}: try again` : `${e}`; return; }
  if (!r.ok) { status.textContent = j.error; return; } show(j.results);
}
document.getElementById('f').onsubmit = e => { e.preventDefault();
  run('/api/search?q=' + encodeURIComponent(document.getElementById('q').value)); };
function upload(file) {
  run('/api/like?name=' + encodeURIComponent(file.name),
      {method: 'POST', body: file, headers: {'X-Mediaformers-Token': token}});
}
document.getElementById('file').onchange = e => upload(e.target.files[0]);
document.body.ondragover = e => e.preventDefault();
document.body.ondrop = e => { e.preventDefault(); upload(e.dataTransfer.files[0]); };
const q0 = new URLSearchParams(location.search).get('q');
if (q0) { document.getElementById('q').value = q0; run('/api/search?q=' + encodeURIComponent(q0)); }
</script></body></html>"""
