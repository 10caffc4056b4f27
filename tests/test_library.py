"""The media library: indexing (incremental, resumable), search by text in several languages and by
example, the CLI, and the web page (through HTTP and a real headless browser)."""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import mediaformers as mf
from mediaformers.library import Library, LibraryError
from tests.media import make_video

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 30)}
CAPTIONS = {  # one caption per colour in English, Spanish, German and French
    "red": ["a red picture", "una imagen roja", "ein rotes Bild", "une image rouge"],
    "green": ["a green picture", "una imagen verde", "ein grünes Bild", "une image verte"],
    "blue": ["a blue picture", "una imagen azul", "ein blaues Bild", "une image bleue"],
    "yellow": ["a yellow picture", "una imagen amarilla", "ein gelbes Bild", "une image jaune"],
}


def _still(colour, seed=0, size=(40, 48)):
    rng = np.random.default_rng(seed)
    img = np.clip(np.array(COLOURS[colour])[None, None] + rng.normal(0, 12, (*size, 3)), 0, 255)
    return img.astype(np.uint8)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """A tiny AltCLIP fitted in a few seconds to match colour pictures with captions in four languages."""
    from PIL import Image

    from tests.altclip_tiny import load, make_folder

    torch.manual_seed(0)  # the init too: not the state earlier tests left
    folder = make_folder(tmp_path_factory.mktemp("altclip"))
    model, processor = load(folder)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    names = list(COLOURS)
    for step in range(300):  # ~3 s; held-out accuracy 16/16 across the four languages
        lang = step % 4
        images = [Image.fromarray(_still(c, seed=step * 7 + i)) for i, c in enumerate(names)]
        batch = processor(images=images, text=[CAPTIONS[c][lang] for c in names], padding=True)
        loss = model(**batch, return_loss=True).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def audio_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ast")
    torch.manual_seed(0)
    mf.ASTForAudioClassification(mf.ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                              intermediate_size=48, max_length=128)).save_pretrained(folder)
    return folder


@pytest.fixture
def media(tmp_path) -> Path:
    """A picture of each colour, a video that is yellow then blue, and a sound."""
    import soundfile as sf
    from PIL import Image

    root = tmp_path / "media"
    (root / "pics").mkdir(parents=True)
    for i, c in enumerate(("red", "green")):
        Image.fromarray(_still(c, seed=100 + i)).save(root / "pics" / f"{c}.png")
    Image.fromarray(_still("blue", seed=102)).save(root / "pics" / "sky.jpg")
    frames = np.stack([_still("yellow", seed=200 + i) for i in range(20)] + [_still("blue", seed=300 + i) for i in range(20)])
    make_video(root / "clip.mp4", frames=frames, fps=10, audio=True)
    t = np.arange(16000) / 16000
    sf.write(root / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return root


def _rows(lib: Library, table: str = "visual") -> list[dict]:
    t = lib._table(table)
    return t.to_arrow().drop_columns(["vector"]).to_pylist() if t is not None else []


@pytest.mark.timeout(300)
def test_text_in_any_language_finds_the_right_file(fitted, media, tmp_path):
    lib = Library(tmp_path / "lib", model=str(fitted), segment=2.0)
    records = list(lib.add([media]))
    assert {r["status"] for r in records} == {"added"} and len(records) == 4  # the wav is not visual
    for colour, file in (("red", "red.png"), ("green", "green.png")):
        for caption in CAPTIONS[colour]:
            best = lib.search(text=caption, k=1)[0]
            assert Path(best.path).name == file, (caption, best)
    # The video's segments carry their times: yellow first, blue after 2 s.
    hits = lib.search(text="une image jaune", k=10, where="kind = 'video' AND whole = false")
    assert (hits[0].start, hits[0].end) == (0.0, 2.0)
    hits = lib.search(text="ein blaues Bild", k=10, where="path LIKE '%clip%' AND whole = false")
    assert hits[0].start == 2.0


@pytest.mark.timeout(300)
def test_search_by_example(fitted, audio_model, media, tmp_path):
    lib = Library(tmp_path / "lib", model=str(fitted), audio_model=str(audio_model), segment=2.0)
    list(lib.add([media]))
    shutil.copy(media / "pics" / "green.png", tmp_path / "query.png")
    assert Path(lib.search(like=tmp_path / "query.png", k=1)[0].path).name == "green.png"
    sound = lib.search(like=media / "tone.wav", k=1)[0]
    assert Path(sound.path).name == "tone.wav" and sound.kind == "audio"
    assert {r["kind"] for r in _rows(lib, "audio")} == {"audio", "video"}  # the video's sound track too


@pytest.mark.timeout(300)
def test_incremental_reindex(fitted, media, tmp_path):
    from PIL import Image

    lib = Library(tmp_path / "lib", model=str(fitted), segment=2.0)
    list(lib.add([media]))
    before = len(_rows(lib))
    again = {Path(r["path"]).name: r["status"] for r in lib.add([media])}
    assert set(again.values()) == {"unchanged"} and len(_rows(lib)) == before
    os.utime(media / "pics" / "red.png")  # touched, same bytes
    Image.fromarray(_still("yellow", seed=5)).save(media / "pics" / "green.png")  # changed
    (media / "pics" / "sky.jpg").unlink()  # deleted
    Image.fromarray(_still("blue", seed=6)).save(media / "pics" / "new.png")  # added
    status = {Path(r["path"]).name: r["status"] for r in lib.add([media])}
    assert status == {"red.png": "unchanged", "green.png": "updated", "new.png": "added", "clip.mp4": "unchanged",
                      "sky.jpg": "removed"}
    paths = [Path(r["path"]).name for r in _rows(lib)]
    assert "sky.jpg" not in paths and paths.count("green.png") == 1 and paths.count("new.png") == 1
    assert Path(lib.search(text="a yellow picture", k=1, where="kind = 'image'")[0].path).name == "green.png"


@pytest.mark.timeout(300)
def test_bad_files_are_logged_skipped_and_retried(fitted, media, tmp_path):
    (media / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    lib = Library(tmp_path / "lib", model=str(fitted))
    records = {Path(r["path"]).name: r for r in lib.add([media])}
    assert records["broken.mp4"]["status"] == "error" and records["red.png"]["status"] == "added"
    again = {Path(r["path"]).name: r["status"] for r in lib.add([media])}
    assert again["broken.mp4"] == "error" and again["red.png"] == "unchanged"  # retried, others not redone
    (media / "broken.mp4").unlink()
    make_video(media / "broken.mp4", frames=8)
    assert {Path(r["path"]).name: r["status"] for r in lib.add([media])}["broken.mp4"] == "updated"


@pytest.mark.timeout(300)
def test_interrupted_vectors_are_redone_without_duplicates(fitted, media, tmp_path):
    lib = Library(tmp_path / "lib", model=str(fitted))
    path = str((media / "pics" / "red.png").resolve())
    vec = np.ones(16, np.float32) / 4
    lib._write("visual", [Library._row(path, 0, 0, "image", True, torch.from_numpy(vec))])  # no files row: torn
    list(lib.add([media]))
    rows = [r for r in _rows(lib) if r["path"] == path]
    assert len(rows) == 1


@pytest.mark.timeout(400)
def test_cli_index_killed_and_resumed(fitted, media, tmp_path):
    for i in range(12):
        shutil.copy(media / "pics" / "red.png", media / "pics" / f"copy{i:02d}.png")
    lib_dir = tmp_path / "lib"
    cmd = [sys.executable, "-m", "mediaformers", "index", str(media), "-o", str(lib_dir), "--model", str(fitted),
           "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not (lib_dir / "db" / "files.lance").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lib = Library(lib_dir)
    paths = [r["path"] for r in _rows(lib) if r["kind"] == "image"]
    assert len(paths) == len(set(paths)) == 15  # every picture once: nothing lost, nothing twice
    out = subprocess.run([sys.executable, "-m", "mediaformers", "search", str(lib_dir), "una imagen verde", "-k", "1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and Path(json.loads(out.stdout)["path"]).name == "green.png"


def _vectors(lib: Library, table: str = "visual") -> dict[tuple, np.ndarray]:
    rows = lib._table(table).to_arrow().to_pylist()
    return {(Path(r["path"]).name, r["start"], r["whole"]): np.asarray(r["vector"]) for r in rows}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_precision_indexes_the_vectors_fp32_does(fitted, media, tmp_path, precision):
    base = Library(tmp_path / "fp32", model=str(fitted), segment=2.0)
    list(base.add([media / "pics"]))
    low = Library(tmp_path / precision, model=str(fitted), segment=2.0, precision=precision)
    list(low.add([media / "pics"]))
    a, b = _vectors(base), _vectors(low)
    assert a.keys() == b.keys() and len(a) == 3
    assert min(float(a[k] @ b[k] / np.linalg.norm(a[k]) / np.linalg.norm(b[k])) for k in a) > 0.99
    assert low._loaded("model").model.precision == precision and any(not np.array_equal(a[k], b[k]) for k in a)
    # the index's precision is not the library's: an fp32 query finds the file in a low-precision index
    assert Path(Library(tmp_path / precision).search(text="una imagen verde", k=1)[0].path).name == "green.png"
    out = subprocess.run([sys.executable, "-m", "mediaformers", "search", str(tmp_path / "fp32"), "ein rotes Bild",
                          "-k", "1", "--precision", precision], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and Path(json.loads(out.stdout)["path"]).name == "red.png", out.stderr
    with pytest.raises(ValueError, match="precision: expected one of"):
        Library(tmp_path / "fp32", precision="half")


def test_errors_are_clear(fitted, media, tmp_path):
    with pytest.raises(LibraryError, match="a new library needs an image-text model"):
        Library(tmp_path / "new")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(LibraryError, match="a folder with other files"):
        Library(tmp_path / "other", model=str(fitted))
    lib = Library(tmp_path / "lib", model=str(fitted))
    list(lib.add([media / "pics" / "red.png"]))
    with pytest.raises(LibraryError, match="was built with"):
        Library(tmp_path / "lib", model="somewhere/else")
    with pytest.raises(LibraryError, match="exactly one of text= and like="):
        lib.search()
    with pytest.raises(LibraryError, match="k: expected a positive number"):
        lib.search(text="x", k=0)
    with pytest.raises(LibraryError, match="where: .* is not a valid filter"):
        lib.search(text="x", where="no_such_column = 1")
    run = subprocess.run([sys.executable, "-m", "mediaformers", "search", str(tmp_path / "nope"), "x"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "no such library folder" in run.stderr


@pytest.mark.timeout(120)
def test_ann_index_is_built_when_large(fitted, tmp_path, monkeypatch):
    import mediaformers.search.store as store

    monkeypatch.setattr(store, "ANN_MIN_ROWS", 300)
    lib = Library(tmp_path / "lib", model=str(fitted))
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((400, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    lib._write("visual", [Library._row(f"/v/{i}.png", 0, 0, "image", True, torch.from_numpy(v)) for i, v in enumerate(vecs)])
    lib._maybe_build_index()
    assert lib._table("visual").list_indices()


# ---- the web page ---------------------------------------------------------------------------------
@pytest.fixture
def served(fitted, audio_model, media, tmp_path):
    lib = Library(tmp_path / "lib", model=str(fitted), audio_model=str(audio_model), segment=2.0)
    list(lib.add([media]))
    return lib


def test_http_search_and_no_traversal(served, media):
    from starlette.testclient import TestClient

    from mediaformers.serve import make_app

    client = TestClient(make_app(served, token="tok"), base_url="http://127.0.0.1")
    hits = client.get("/api/search", params={"q": "una imagen roja"}).json()["results"]
    assert hits[0]["name"] == "red.png"
    assert client.get(f"/thumb/{hits[0]['id']}").headers["content-type"] == "image/jpeg"
    assert client.get(f"/media/{hits[0]['id']}").content == (media / "pics" / "red.png").read_bytes()
    for bad in ("/media/99", "/media/-1", "/media/0", "/media/..%2F..%2Fetc%2Fpasswd", "/../etc/passwd", "/media/",
                "/thumb/abc", "/db/", "/library.json"):
        assert client.get(bad).status_code == 404, bad
    token = {"X-Mediaformers-Token": "tok"}
    upload = client.post("/api/like?name=q.png", content=(media / "pics" / "green.png").read_bytes(), headers=token)
    assert upload.json()["results"][0]["name"] == "green.png"
    bad = client.post("/api/like?name=q.png", content=b"not an image", headers=token)
    assert bad.status_code == 400 and bad.json()["error"].startswith("q.png: ")


def test_serve_refuses_a_non_loopback_host(served):
    from mediaformers.serve import serve

    with pytest.raises(ValueError, match="--allow-remote"):
        serve(served, host="0.0.0.0")


@pytest.mark.timeout(180)
def _wait(driver, script: str, tries: int = 100):
    for _ in range(tries):
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    return value


def _loaded_thumbs(driver) -> list:
    for _ in range(100):
        thumbs = driver.find_elements("css selector", ".hit img")
        if thumbs and all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", t)
                          for t in thumbs):
            return thumbs
        time.sleep(0.1)
    raise AssertionError("no results, or thumbnails that never loaded")


def test_page_in_a_real_browser(served, media, tmp_path):
    """Headless Chromium (the system's, through its chromedriver): search, see thumbnails (a sound's waveform
    too), play a video from a segment, drop a file on the page."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    import socket
    import threading

    import uvicorn

    from mediaformers.serve import make_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(make_app(served), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1000,800"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.1)
        driver.get(f"http://127.0.0.1:{port}/")
        box = driver.find_element("id", "q")
        box.send_keys("ein gelbes Bild")
        driver.find_element("css selector", "button").click()
        thumbs = _loaded_thumbs(driver)
        first = driver.find_element("css selector", "#hit0 div").text
        assert "clip.mp4" in first and "0.0-2.0 s" in first, first  # the file, with its segments' times
        # play from a segment: the time link after the best one starts the video there
        times = driver.find_elements("css selector", "#hit0 .t")
        later = next(t for t in times if t.text.startswith("2.0"))
        later.click()
        state = _wait(driver, "const v = document.getElementById('media'); return v && v.readyState >= 1 && "
                              "[v.currentTime, v.src]")
        assert state and state[0] >= 1.9 and state[1].endswith("#t=2"), state  # loaded from /media/<id>, at 2 s
        # a sound dropped on the page: search by example, the audio hit shows its waveform
        wav = base64.b64encode((media / "tone.wav").read_bytes()).decode()
        driver.execute_script("""const b = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
            const dt = new DataTransfer(); dt.items.add(new File([b], 'query.wav', {type: 'audio/wav'}));
            document.body.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));""", wav)
        _wait(driver, "return document.getElementById('status').textContent.endsWith('results') && "
                      "document.querySelector('#hit0 div').textContent.includes('tone.wav')")
        thumbs = _loaded_thumbs(driver)
        assert "tone.wav" in driver.find_element("css selector", "#hit0 div").text
        assert driver.execute_script("return arguments[0].naturalWidth", thumbs[0]) == 320  # the waveform PNG
        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 5000
        if os.environ.get("MEDIAFORMERS_KEEP_SCREENSHOT"):
            shutil.copy(shot, os.environ["MEDIAFORMERS_KEEP_SCREENSHOT"])
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(timeout=10)
