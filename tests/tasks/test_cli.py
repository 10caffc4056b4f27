"""End-to-end: the command line as a subprocess on generated media and small saved checkpoints."""
import json
import subprocess
import sys

import numpy as np
import pytest


def cli(*args, check_rc=None):
    proc = subprocess.run([sys.executable, "-m", "mediaformers", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def check_schema(recs, labels, top_k):
    for rec in recs:
        assert set(rec) in ({"input", "labels"}, {"input", "error"}, {"input", "labels", "views"}), rec
        if "labels" in rec:
            assert len(rec["labels"]) == top_k
            assert all(set(x) == {"label", "score"} and x["label"] in labels for x in rec["labels"])
            scores = [x["score"] for x in rec["labels"]]
            assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


@pytest.mark.parametrize("family", ["videomae", "vivit"])
def test_classify_video_folder_with_a_corrupt_file(ckpts, media, family):
    proc = cli("classify", ckpts[family], media, "--top-k", 2, "--workers", 1, check_rc=1)
    recs = records(proc.stdout)
    assert [r["input"].rsplit("/", 1)[-1] for r in recs] == ["a.mp4", "b_corrupt.mp4", "c.mp4"]
    check_schema(recs, {"walk", "run", "jump"}, 2)
    assert "error" in recs[1] and "b_corrupt.mp4" in recs[1]["error"]
    assert "labels" in recs[0] and "labels" in recs[2]
    assert "b_corrupt.mp4" in proc.stderr and "Traceback" not in proc.stderr


def test_classify_audio_windows(ckpts, media):
    proc = cli("classify", ckpts["ast"], media / "tone.wav", media / "long.wav", media / "a.mp4", "--views",
               "--top-k", 1, check_rc=0)
    recs = records(proc.stdout)
    check_schema(recs, {"tone", "noise"}, 1)
    long = next(r for r in recs if r["input"].endswith("long.wav"))  # 198 frames > 128: windows
    assert [v["start"] for v in long["views"]] == [0.0, 0.64, 0.7]  # hop 64 frames, the last flush with the end
    assert "views" not in recs[0]  # 1 s = 98 frames: one padded window


def test_classify_multiview_video(ckpts, media):
    proc = cli("classify", ckpts["videomae"], media / "a.mp4", "--clips", 2, "--crops", 3, "--views", check_rc=0)
    (rec,) = records(proc.stdout)
    assert len(rec["views"]) == 6


def test_classify_audio_visual(ckpts, media):
    proc = cli("classify", ckpts["tvlt"], media / "a.mp4", media / "c.mp4", media / "tone.wav", "--top-k", 3)
    recs = records(proc.stdout)
    check_schema(recs, {"walk", "run", "jump"}, 3)
    assert "labels" in recs[0] and "labels" in recs[1]
    assert "is an audio file, but this model takes video" in recs[2]["error"]  # a wrong pairing is a record
    assert proc.returncode == 1


def test_zero_shot(ckpts, media):
    labels = ["a cat", "ein Hund", "一辆汽车", "машина"]
    proc = cli("zero-shot", ckpts["altclip"], media / "still.png", media / "c.mp4", "--labels", *labels,
               "--template", "a photo of {}", check_rc=0)
    recs = records(proc.stdout)
    check_schema(recs, set(labels), 4)
    for rec in recs:
        assert abs(sum(x["score"] for x in rec["labels"]) - 1) < 1e-4


def test_embed_parquet_and_npy(ckpts, media, tmp_path):
    import pyarrow.parquet as pq

    proc = cli("embed", ckpts["videomae"], media, "-o", tmp_path / "e.parquet")
    assert proc.returncode == 1  # the corrupt file
    table = pq.read_table(tmp_path / "e.parquet").to_pydict()
    assert [p.rsplit("/", 1)[-1] for p in table["input"]] == ["a.mp4", "c.mp4"]
    assert all(len(e) == 32 for e in table["embedding"])
    cli("embed", ckpts["ast"], media / "tone.wav", "-o", tmp_path / "e.npy", check_rc=0)
    assert np.load(tmp_path / "e.npy").shape == (1, 32)
    again = cli("embed", ckpts["ast"], media / "tone.wav", "-o", tmp_path / "e.npy", check_rc=2)
    assert "exists; pass --overwrite" in again.stderr


def test_resume_after_interruption(ckpts, media, tmp_path):
    out = tmp_path / "out.jsonl"
    full = cli("classify", ckpts["videomae"], media, "-o", out, check_rc=1)
    assert full.stdout == ""
    lines = out.read_text().splitlines()
    # An interrupted run: the first record, then half of the second.
    out.write_text(lines[0] + "\n" + lines[2][:20])
    refused = cli("classify", ckpts["videomae"], media, "-o", out, check_rc=2)
    assert "exists; pass --resume" in refused.stderr
    cli("classify", ckpts["videomae"], media, "-o", out, "--resume", check_rc=1)
    recs = records(out.read_text())
    names = [r["input"].rsplit("/", 1)[-1] for r in recs]
    assert names == ["a.mp4", "b_corrupt.mp4", "c.mp4"]  # a.mp4 skipped, the torn line dropped
    assert recs[0] == json.loads(lines[0])


def test_wrong_model_for_command(ckpts, media):
    proc = cli("zero-shot", ckpts["videomae"], media / "a.mp4", "--labels", "x", check_rc=2)
    assert "does not fit a videomae model" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("classify", ckpts["altclip"], media / "a.mp4", check_rc=2)
    assert "use `mediaformers zero-shot" in proc.stderr
    proc = cli("classify", media / "nothing-here", media / "a.mp4", check_rc=2)
    assert "no such checkpoint folder" in proc.stderr


def test_info(ckpts):
    info = json.loads(cli("info", ckpts["vivit"], check_rc=0).stdout)
    assert info["family"] == "vivit" and info["class"] == "VivitForVideoClassification"
    assert info["parameters"] > 0 and info["gflops_per_input"] > 0 and info["labels"] == 3
    assert "(batch, 4, 3, 32, 32)" in info["expected_input"]


@pytest.mark.parametrize("command", ["classify", "zero-shot", "embed", "info", "demo"])
def test_help(command):
    proc = cli(command, "--help", check_rc=0)
    assert "example" in proc.stdout


def test_demo_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    proc = cli("demo", tmp_path, check_rc=2)
    assert "not a mediaformers demo folder" in proc.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"
