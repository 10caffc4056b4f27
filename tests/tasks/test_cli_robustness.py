"""The CLI as an adversary uses it: outputs that survive kills and concurrent runs, and arguments that end
in a clear message (exit 2), never a traceback. Each case runs the CLI as a subprocess under a timeout."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(240)


def cli(*args, timeout: int = 180, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mediaformers", *map(os.fsdecode, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


def no_traceback(run: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in run.stderr, run.stderr


@pytest.fixture(scope="module")
def many(media, tmp_path_factory) -> Path:
    """A folder of 12 small videos (copies), for runs long enough to interrupt."""
    root = tmp_path_factory.mktemp("many")
    for i in range(12):
        shutil.copy(media / "a.mp4", root / f"v{i:02d}.mp4")
    return root


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- data loss -------------------------------------------------------------------------------------
def test_resume_refuses_a_file_that_is_not_ours_and_leaves_it(ckpts, media, tmp_path):
    notes = tmp_path / "n.txt"
    notes.write_bytes(b"notes\nline two")
    run = cli("classify", ckpts["videomae"], media / "a.mp4", "-o", notes, "--resume", "--quiet")
    assert run.returncode == 2 and "not a mediaformers record" in run.stderr
    assert notes.read_bytes() == b"notes\nline two"
    no_traceback(run)


def test_resume_cuts_a_torn_line_in_place_and_keys_on_the_real_path(ckpts, media, many, tmp_path):
    out = tmp_path / "o.jsonl"
    first = cli("classify", ckpts["videomae"], many, "-o", out, "--quiet")
    assert first.returncode == 0
    full = out.read_bytes()
    lines = full.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:5]) + lines[5][:17])  # killed mid-record
    inode = out.stat().st_ino
    # the same folder under another name: an absolute path through a symlink
    link = tmp_path / "alias"
    link.symlink_to(many.resolve())
    again = cli("classify", ckpts["videomae"], link, "-o", out, "--resume", "--quiet")
    assert again.returncode == 0, again.stderr
    assert out.stat().st_ino == inode  # truncated in place, not rewritten
    recs = records(out)
    assert len(recs) == 12 and len({os.path.realpath(r["input"]) for r in recs}) == 12


def test_a_second_writer_is_refused(ckpts, many, tmp_path):
    import fcntl

    out = tmp_path / "o.jsonl"
    out.write_text("")
    with open(out, "a") as held:  # another run holds the output
        fcntl.flock(held, fcntl.LOCK_EX)
        for mode in ("--overwrite", "--resume"):
            second = cli("classify", ckpts["videomae"], many, "-o", out, mode, "--quiet")
            assert second.returncode == 2 and "being written by another mediaformers run" in second.stderr
    assert out.read_text() == ""
    assert cli("classify", ckpts["videomae"], many, "-o", out, "--overwrite", "--quiet").returncode == 0


@pytest.fixture(scope="module")
def uninterrupted(ckpts, many, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ref") / "ref.jsonl"
    assert cli("classify", ckpts["videomae"], many, "-o", out, "--quiet", "--batch-size", "1").returncode == 0
    return records(out)


def _kill_after(cmd: list[str], out: Path, size: int) -> None:
    """Start ``cmd`` and SIGKILL it once ``out`` holds ``size`` bytes (or it ends first)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if out.exists() and out.stat().st_size >= size:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@settings(max_examples=3, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kills=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=2))
def test_killed_at_any_point_then_resumed_equals_one_run(ckpts, many, uninterrupted, tmp_path_factory, kills):
    # Kill points are measured in output bytes, not seconds, so they spread over the whole run whatever
    # the machine's speed; a kill lands between records or inside one (a torn line).
    total = sum(len(json.dumps(r, ensure_ascii=False)) + 1 for r in uninterrupted)
    out = tmp_path_factory.mktemp("kill") / "o.jsonl"
    cmd = [sys.executable, "-m", "mediaformers", "classify", str(ckpts["videomae"]), str(many), "-o", str(out),
           "--quiet", "--batch-size", "1"]
    for i, at in enumerate(kills):
        _kill_after(cmd + (["--resume"] if i else []), out, int(at * total))
    resumed = cli(*cmd[3:], "--resume")
    assert resumed.returncode == 0, resumed.stderr
    key = lambda r: r["input"]  # noqa: E731
    assert sorted(records(out), key=key) == sorted(uninterrupted, key=key)


def test_embed_interrupted_keeps_its_parts_and_resumes(ckpts, many, tmp_path):
    import numpy as np

    full = tmp_path / "full.npy"
    args = ("embed", ckpts["videomae"], many, "--quiet", "--batch-size", "1")
    assert cli(*args, "-o", full).returncode == 0
    out = tmp_path / "e.npy"
    cmd = [sys.executable, "-m", "mediaformers", *map(str, args), "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # one embedding finished
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert json.loads(first)["row"] == 0
    assert proc.returncode == 130 and "kept in OUTPUT.partial.jsonl (use --resume)" in err, err
    parts = tmp_path / "e.npy.partial.jsonl"
    assert parts.exists() and not out.exists()
    refused = cli(*args, "-o", out)
    assert refused.returncode == 2 and "pass --resume" in refused.stderr
    resumed = cli(*args, "-o", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    rows = [json.loads(line)["row"] for line in resumed.stdout.splitlines()]
    assert rows == list(range(12 - len(rows), 12))  # numbered after the kept parts
    assert not parts.exists()
    np.testing.assert_array_equal(np.load(out), np.load(full))


def test_a_full_disk_is_a_clear_error(ckpts, media):
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, "-m", "mediaformers", "classify", str(ckpts["videomae"]),
                              str(media / "a.mp4"), "--quiet"], stdout=full, stderr=subprocess.PIPE, text=True,
                             timeout=180)
    no_traceback(run)
    assert run.returncode == 2 and "disk full" in run.stderr


def test_embed_checks_its_output_before_working(ckpts, media, tmp_path):
    (tmp_path / "file").write_text("x")
    run = cli("embed", ckpts["ast"], media / "tone.wav", "-o", tmp_path / "file" / "e.npy")
    assert run.returncode == 2 and "which is a file, not a folder" in run.stderr
    (tmp_path / "d.npy").mkdir()
    run = cli("embed", ckpts["ast"], media / "tone.wav", "-o", tmp_path / "d.npy", "--overwrite")
    assert run.returncode == 2 and "expected a file, got a folder" in run.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere; a read-only folder cannot be simulated")
def test_read_only_folder(ckpts, media, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    run = cli("classify", ckpts["videomae"], media / "a.mp4", "-o", ro / "o.jsonl")
    assert run.returncode == 2 and "cannot write" in run.stderr


def test_stdout_closed_early_is_not_a_traceback(ckpts, many):
    cmd = [sys.executable, "-m", "mediaformers", "classify", str(ckpts["videomae"]), str(many), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=180)
    assert b"Traceback" not in err and proc.returncode == 2


def test_a_non_utf8_name_is_escaped_and_the_run_goes_on(ckpts, media, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    odd = os.fsencode(folder) + b"/caf\xe9.mp4"
    shutil.copy(media / "a.mp4", odd)
    shutil.copy(media / "c.mp4", folder / "z.mp4")
    out = tmp_path / "o.jsonl"
    run = cli("classify", ckpts["videomae"], folder, "-o", out, "--quiet")
    no_traceback(run)
    recs = records(out)
    assert len(recs) == 2 and os.fsencode(recs[0]["input"]) == odd  # the escape reads back to the same bytes
    again = cli("classify", ckpts["videomae"], folder, "-o", out, "--resume", "--quiet")
    assert again.returncode == 0 and len(records(out)) == 2


# ---- arguments ----------------------------------------------------------------------------------
def test_list_file_that_includes_itself(ckpts, media, tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_text(f"{media / 'a.mp4'}\n{lst}\n")
    run = cli("classify", ckpts["videomae"], lst, "--quiet")
    no_traceback(run)
    recs = [json.loads(line) for line in run.stdout.splitlines()]
    assert any("includes itself" in r.get("error", "") for r in recs) and any("labels" in r for r in recs)


def test_empty_input_is_not_the_current_folder(ckpts, tmp_path):
    run = cli("classify", ckpts["videomae"], "", "--quiet", cwd=tmp_path)
    no_traceback(run)
    assert "empty path" in run.stdout


@pytest.mark.parametrize("args, message", [
    (["--top-k", "-1"], "--top-k: expected a number >= 1, got -1"),
    (["--top-k", "0"], "--top-k: expected a number >= 1, got 0"),
    (["--device", "meta"], "--device: expected cpu, cuda, cuda:N, mps or xpu, got 'meta'"),
    (["--batch-size", "0"], "--batch-size: expected a number >= 1, got 0"),
])
def test_bad_numbers_and_devices(ckpts, media, args, message):
    run = cli("classify", ckpts["videomae"], media / "a.mp4", *args)
    assert run.returncode == 2 and message in run.stderr.replace("argument ", "")
    no_traceback(run)


@pytest.mark.parametrize("args, message", [
    (["--labels", ""], "--labels: expected non-empty labels"),
    (["--labels", "cat", "cat"], "--labels: expected distinct labels, got ['cat']"),
    (["--labels", "cat", "--template", "a {} of {}"], "--template: expected exactly one {}"),
    (["--labels", "cat", "--template", "{x} {}"], "--template: expected exactly one {}"),
    (["--labels", "cat", "--template", "a {"], "--template: expected text with one {}"),
])
def test_bad_labels_and_templates(ckpts, media, args, message):
    run = cli("zero-shot", ckpts["altclip"], media / "still.png", *args)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    no_traceback(run)


def test_demo_into_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("mine")
    run = cli("demo", tmp_path / "f")
    assert run.returncode == 2 and "expected a folder" in run.stderr and (tmp_path / "f").read_text() == "mine"


def test_hints_name_cli_flags_not_python_options(ckpts, tmp_path):
    from tests.media import make_video

    cut = tmp_path / "cut.mkv"
    make_video(cut, frames=60, size=(48, 64), gop=5)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    run = cli("classify", ckpts["videomae"], cut, "--quiet")
    rec = json.loads(run.stdout.splitlines()[0])
    assert run.returncode == 1 and "--allow-partial" in rec["error"] and "allow_partial=True" not in run.stderr
    partial = cli("classify", ckpts["videomae"], cut, "--quiet", "--allow-partial")
    assert partial.returncode == 0 and "labels" in json.loads(partial.stdout)
