"""--allow-partial over every family and every command that takes media: a cut file gives a record
with the flag, and without it a one-line error that names the flag (never the Python option)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mediaformers.cli import main
from tests.media import make_video

# (command, family) for every family each media command serves; index and train: see their own tests.
CASES = [("classify", f) for f in ("videomae", "vivit", "ast", "tvlt")] + [("zero-shot", "altclip")] + [
    ("embed", f) for f in ("videomae", "vivit", "ast", "tvlt", "altclip")]


@pytest.fixture(scope="module")
def cut(tmp_path_factory) -> dict[str, Path]:
    """A video with sound and a WAV file, each cut in half (the headers promise more than is there)."""
    root = tmp_path_factory.mktemp("cut")
    video = make_video(root / "cut.mkv", frames=40, size=(48, 64), gop=5, audio=True)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    wav = root / "cut.wav"
    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32), 16000)
    data = wav.read_bytes()
    wav.write_bytes(data[: len(data) // 2])
    return {"video": video, "audio": wav}


def _run(capsys, command: str, ckpt: Path, source: Path, tmp_path: Path, *flags: str) -> tuple[int, dict, str]:
    extra = {"zero-shot": ["--labels", "cat", "dog"], "embed": ["-o", str(tmp_path / "e.npy"), "--overwrite"]}
    rc = main([command, str(ckpt), str(source), "--quiet", *extra.get(command, []), *flags])
    out, err = capsys.readouterr()
    return rc, json.loads(out.splitlines()[0]), err


@pytest.mark.timeout(240)
@pytest.mark.parametrize("command,family", CASES)
def test_cut_file(ckpts, cut, capsys, tmp_path, command, family):
    source = cut["audio" if family == "ast" else "video"]
    rc, rec, err = _run(capsys, command, ckpts[family], source, tmp_path)
    assert rc == 1 and "--allow-partial" in rec["error"], rec
    # the error is one line; beside it only the note naming the precision chosen by default
    failed = [line for line in err.splitlines() if line.strip() and ": precision " not in line]
    assert len(failed) == 1 and "--allow-partial" in failed[0] and "allow_partial=True" not in err, err
    rc, rec, err = _run(capsys, command, ckpts[family], source, tmp_path, "--allow-partial")
    assert rc == 0 and "error" not in rec, (rec, err)
    assert ("labels" in rec) if command != "embed" else ("row" in rec)


@pytest.mark.timeout(240)
def test_index_cut_files(ckpts, cut, capsys, tmp_path):
    """index: a cut video (image-text model) and a cut sound (audio model) are error records naming the flag,
    then, with --allow-partial, indexed from what decodes."""
    args = [str(cut["video"]), str(cut["audio"]), "--model", str(ckpts["altclip"]), "--audio-model",
            str(ckpts["ast"]), "--segment", "1", "--quiet"]
    rc = main(["index", *args, "-o", str(tmp_path / "lib")])
    out, err = capsys.readouterr()
    skipped = [line for line in err.splitlines() if "skipped" in line]
    assert rc == 1 and len(skipped) == 2 and all("--allow-partial" in line for line in skipped), err
    assert "allow_partial=True" not in err
    rc = main(["index", *args, "-o", str(tmp_path / "lib2"), "--allow-partial"])
    out, err = capsys.readouterr()
    assert rc == 0 and json.loads(out.splitlines()[-1]).get("added") == 2, (out, err)
