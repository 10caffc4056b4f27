"""Every Python and shell block in README.md and docs/ runs, on small local data, or says why it cannot.

A block is skipped only when the line before its opening fence is a marker that names the reason, one of
``REASONS`` (``<!-- example: needs the hub -->``); every other ``python``/``bash`` block runs here. A page's
blocks run in page order in one folder (a page reads as one session): Python blocks in one namespace, shell
blocks under ``bash -eo pipefail``. Both run in a workspace made once: ``demo/`` (``mediaformers demo --quick``:
trained VideoMAE and AST checkpoints, fresh media), ``checkpoints/<family>`` (a tiny checkpoint of each
family; ``<family>-pretraining`` where it pre-trains), ``clip.mp4`` (and as MPEG-TS ``clip.ts``), ``sound.wav``,
``photo.png``, ``talks/`` (two short videos with sound);
``$MEDIAFORMERS_REPO`` names the repository (for ``examples/``).

Marked ``docs``: not in the default run (``-m "not docs"``); CI runs ``python -m pytest -m docs tests/docs``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CODE = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
REASONS = {"needs the hub", "needs a GPU", "needs several machines", "needs a camera or a network stream",
           "starts a server (tests/test_library.py drives one)",
           "needs a transformers checkout", "is run by .ci/run", "sets up from nothing",
           "installs an extra (.ci/run installs it with the test extra)"}
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)
MARKER = re.compile(r"<!-- example: (?P<reason>[^>]*?) -->\s*$")

pytestmark = [pytest.mark.docs, pytest.mark.timeout(900)]


def blocks(page: Path) -> list[tuple[int, str, str, str | None]]:
    """(line, kind, code, skip reason or None) of each code block of ``page``."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        kind = CODE.get(m.group("lang"))
        if kind is None:
            continue
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        body = "\n".join(row[len(m.group("indent")):] for row in m.group("body").split("\n"))
        out.append((line, kind, body, marker.group("reason") if marker else None))
    return out


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_marker_names_a_known_reason():
    bad = [f"{_id(p)}:{line}: {reason!r}" for p in PAGES for line, _, _, reason in blocks(p)
           if reason is not None and reason not in REASONS]
    assert not bad, f"skip markers must be one of {sorted(REASONS)}:\n" + "\n".join(bad)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("docs")
    env = _env()
    subprocess.run([sys.executable, "-m", "mediaformers", "demo", "--quick", str(ws / "demo")], check=True,
                   capture_output=True, env=env, timeout=600)
    subprocess.run([sys.executable, "-c", MAKE_CHECKPOINTS, str(ws)], check=True, env=env, timeout=600,
                   cwd=ROOT)
    fresh = ws / "demo" / "fresh"
    shutil.copy(next((fresh / "video").rglob("*.mp4")), ws / "clip.mp4")
    shutil.copy(next((fresh / "audio").rglob("*.wav")), ws / "sound.wav")
    subprocess.run([sys.executable, "-c", REMUX_TS, str(ws / "clip.mp4"), str(ws / "clip.ts")], check=True, env=env,
                   timeout=120)
    return ws


# Tiny checkpoints of every family (task class, else backbone), written as transformers would lay them out.
MAKE_CHECKPOINTS = """
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from tests import altclip_tiny
from mediaformers.family import families
ws = Path(sys.argv[1])
for fam in families().values():
    if fam.name == "altclip":
        altclip_tiny.make_folder(ws / "checkpoints" / "altclip")
        continue
    cls = fam.head() or fam.backbone
    cls(fam.config_for(cls, fam.config(**fam.tiny))).save_pretrained(ws / "checkpoints" / fam.name)
    for pre in [c for c in fam.classes if c.__name__.endswith("ForPreTraining")]:
        pre(fam.config_for(pre, fam.config(**fam.tiny))).save_pretrained(ws / "checkpoints" / f"{fam.name}-pretraining")
Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(ws / "photo.png")
from tests.media import make_video
(ws / "talks").mkdir()
for i in range(2):  # videos with sound (audio-visual models)
    make_video(ws / "talks" / f"talk-{i}.mp4", frames=20, fps=10, audio=True)
"""


@pytest.fixture
def cwd(workspace, tmp_path) -> Path:
    """A fresh folder per page that links the workspace's entries: what one page writes, the next does not see."""
    for entry in workspace.iterdir():
        (tmp_path / entry.name).symlink_to(entry)
    return tmp_path


REMUX_TS = """
import sys, av
with av.open(sys.argv[1]) as src, av.open(sys.argv[2], "w", format="mpegts") as dst:
    video = src.streams.video[0]
    out = dst.add_stream("mpeg2video", rate=video.average_rate)
    out.width, out.height = video.codec_context.width, video.codec_context.height
    for frame in src.decode(video):
        dst.mux(out.encode(frame.reformat(format="yuv420p")))
    dst.mux(out.encode())
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MEDIAFORMERS_REPO"] = str(ROOT)  # for examples that run the repository's own scripts (examples/)
    return env


RUN = [p for p in PAGES if any(reason is None for _, _, _, reason in blocks(p))]


@pytest.mark.parametrize("page", RUN, ids=_id)
def test_page_runs(page, cwd, monkeypatch):
    """A page's blocks run top to bottom, as a reader would run them: in one folder, Python blocks in one
    namespace, shell blocks under ``bash -eo pipefail``."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    namespace: dict = {"__name__": "__doc_example__"}
    for line, kind, code, reason in blocks(page):
        if reason is not None:
            continue
        where = f"{_id(page)}:{line}"
        if kind == "python":
            try:
                exec(compile(code, where, "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"{where}: the example raised {type(err).__name__}: {err}") from err
        else:
            run = subprocess.run(["bash", "-eo", "pipefail", "-c", code], cwd=cwd, env=_env(), capture_output=True,
                                 text=True, timeout=600)
            assert run.returncode == 0, f"{where}: exit {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
