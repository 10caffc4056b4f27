"""The CLI's output guarantees, as a subprocess: locking, resume without loss, clean errors (issue 10)."""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.tasks.test_cli import cli, records

ROOT = os.geteuid() == 0  # permission bits do not stop root


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mediaformers", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def refused(proc, text):
    assert proc.returncode == 2, proc.stderr
    assert text in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# ---- resume: validate first, truncate in place --------------------------------------------------
@pytest.mark.timeout(60)
def test_resume_refuses_a_file_that_is_not_ours_untouched(ckpts, media, tmp_path):
    notes = tmp_path / "n.txt"
    notes.write_bytes(b"notes\nline two")
    refused(cli("classify", ckpts["videomae"], media / "a.mp4", "-o", notes, "--resume"), "not changed")
    assert notes.read_bytes() == b"notes\nline two"
    keyless = tmp_path / "k.jsonl"
    keyless.write_text('{"labels": []}\n')
    refused(cli("classify", ckpts["videomae"], media / "a.mp4", "-o", keyless, "--resume"), '"input"')
    assert keyless.read_text() == '{"labels": []}\n'


@pytest.mark.timeout(120)
def test_resume_truncates_in_place_and_keys_on_the_resolved_path(ckpts, media, tmp_path):
    out = tmp_path / "out.jsonl"
    first = run("classify", ckpts["videomae"], media.name, "-o", out, cwd=media.parent)  # relative folder
    assert first.returncode == 1, first.stderr
    lines = out.read_text().splitlines()
    out.write_text(lines[0] + "\n" + lines[2][:15])  # killed mid-record (failed inputs are retried)
    inode = out.stat().st_ino
    again = run("classify", ckpts["videomae"], media, "-o", out, "--resume", cwd=media.parent)  # named absolutely
    assert again.returncode == 1, again.stderr
    assert out.stat().st_ino == inode  # cut in place, never rewritten
    recs = records(out.read_text())
    assert [r["input"].rsplit("/", 1)[-1] for r in recs] == ["a.mp4", "b_corrupt.mp4", "c.mp4"]
    assert recs[0] == json.loads(lines[0])  # a.mp4, named relatively before, not redone
    assert recs[2]["input"] == str(media / "c.mp4") and "error" in recs[1]


# ---- one writer at a time -----------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["--overwrite", "--resume"])
def test_a_second_writer_is_refused(ckpts, media, tmp_path, mode):
    out = tmp_path / "out.jsonl"
    out.write_text('{"input": "x.mp4", "labels": []}\n')
    with open(out, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a run in progress
        refused(cli("classify", ckpts["videomae"], media / "a.mp4", "-o", out, mode), "being written by another")
    assert out.read_text() == '{"input": "x.mp4", "labels": []}\n'


# ---- output errors: exit 2, a clear message ------------------------------------------------------
@pytest.mark.timeout(60)
def test_output_location_errors(ckpts, media, tmp_path):
    (tmp_path / "file").write_text("x")
    refused(cli("classify", ckpts["videomae"], media / "a.mp4", "-o", tmp_path / "file" / "o.jsonl"), "is a file")
    refused(cli("classify", ckpts["videomae"], media / "a.mp4", "-o", tmp_path, "--overwrite"), "got the folder")
    refused(cli("embed", ckpts["videomae"], media / "a.mp4", "-o", tmp_path / "file" / "e.npy"), "is a file")
    refused(cli("embed", ckpts["videomae"], media / "a.mp4", "-o", tmp_path, "--overwrite"), "expected a .npy")
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.timeout(60)
@pytest.mark.skipif(ROOT, reason="root writes to read-only folders")
def test_read_only_folder(ckpts, media, tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    refused(cli("classify", ckpts["videomae"], media / "a.mp4", "-o", locked / "o.jsonl"), "cannot write")
    refused(cli("embed", ckpts["videomae"], media / "a.mp4", "-o", locked / "e.npy"), "cannot write")


@pytest.mark.timeout(60)
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk(ckpts, media):
    refused(cli("classify", ckpts["videomae"], media / "a.mp4", "-o", "/dev/full", "--overwrite"),
            "No space left on device")


@pytest.mark.timeout(60)
def test_stdout_closed_early(ckpts, media):
    proc = subprocess.Popen([sys.executable, "-m", "mediaformers", "classify", str(ckpts["videomae"]), str(media)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # `| head -0`: the reader is gone before the first record
    _, err = proc.communicate(timeout=50)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 1


@pytest.mark.timeout(120)
def test_a_file_name_that_is_not_utf8_is_escaped_and_resumed(ckpts, media, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(media / "a.mp4", os.fsdecode(bytes(folder) + b"/caf\xe9.mp4"))  # Latin-1 name
    shutil.copy(media / "c.mp4", folder / "d.mp4")
    out = tmp_path / "out.jsonl"
    cli("classify", ckpts["videomae"], folder, "-o", out, check_rc=0)
    recs = records(out.read_text(encoding="utf-8"))
    assert [r["input"].rsplit("/", 1)[-1] for r in recs] == ["caf\\xe9.mp4", "d.mp4"]
    assert all("labels" in r for r in recs)
    cli("classify", ckpts["videomae"], folder, "-o", out, "--resume", check_rc=0)
    assert records(out.read_text(encoding="utf-8")) == recs  # nothing redone


# ---- argument errors ----------------------------------------------------------------------------
@pytest.mark.timeout(30)
@pytest.mark.parametrize("args, text", [
    (["classify", "M", ""], "empty name"),
    (["classify", "M", "x.mp4", "--top-k", "-1"], "--top-k: expected a positive"),
    (["classify", "M", "x.mp4", "--top-k", "0"], "--top-k: expected a positive"),
    (["zero-shot", "M", "x.png", "--labels", "a", "--top-k", "0"], "--top-k: expected a positive"),
    (["classify", "M", "x.mp4", "--device", "meta"], "--device"),
    (["classify", "M", "x.mp4", "--device", "toaster"], "--device"),
    (["zero-shot", "M", "x.png", "--labels", "cat", ""], "non-empty labels"),
    (["zero-shot", "M", "x.png", "--labels", "cat", "cat"], "distinct labels"),
    (["zero-shot", "M", "x.png", "--labels", "cat", "--template", "a {} of {}"], "--template"),
    (["zero-shot", "M", "x.png", "--labels", "cat", "--template", "{x} {}"], "--template"),
    (["zero-shot", "M", "x.png", "--labels", "cat", "--template", "a photo"], "--template"),
    (["zero-shot", "M", "x.png", "--labels", "cat", "--template", "{"], "--template"),
])
def test_argument_errors(args, text):
    refused(cli(*args), text)


@pytest.mark.timeout(30)
def test_demo_into_a_file(tmp_path):
    (tmp_path / "f").write_text("keep")
    refused(cli("demo", tmp_path / "f"), "got the file")
    assert (tmp_path / "f").read_text() == "keep"


@pytest.mark.timeout(60)
def test_a_list_that_includes_itself(ckpts, media, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(f"{media / 'a.mp4'}\nother.txt\n")
    (tmp_path / "other.txt").write_text("list.txt\n")
    proc = cli("classify", ckpts["videomae"], lst, check_rc=1)
    recs = records(proc.stdout)
    assert "labels" in recs[0] and "includes itself" in recs[1]["error"] and len(recs) == 2
    assert "Traceback" not in proc.stderr


# ---- kill -9 at any point, resume: the same records as an uninterrupted run -----------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory, media, ckpts):
    folder = tmp_path_factory.mktemp("clips")
    for i in range(6):
        shutil.copy(media / ("a.mp4" if i % 2 else "c.mp4"), folder / f"v{i}.mp4")
    ref = folder.parent / (folder.name + ".ref.jsonl")
    # --batch-size 1: every input is computed alone, so a resumed run's scores are bit-identical
    cli("classify", ckpts["videomae"], folder, "--batch-size", 1, "-o", ref, check_rc=0)
    return folder, records(ref.read_text())


def _lines(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.timeout(300)
def test_kill_anywhere_then_resume_matches_an_uninterrupted_run(ckpts, clips, tmp_path_factory):
    from hypothesis import HealthCheck, given, settings, strategies as st

    folder, expected = clips

    @settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(after_lines=st.integers(0, 5), extra=st.floats(0, 0.3))
    def check(after_lines, extra):
        out = tmp_path_factory.mktemp("kill") / "out.jsonl"
        command = [sys.executable, "-m", "mediaformers", "classify", str(ckpts["videomae"]), str(folder),
                   "--batch-size", "1", "-o", str(out)]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _lines(out) < after_lines and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(extra)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        resume = cli("classify", ckpts["videomae"], folder, "--batch-size", 1, "-o", out, "--resume")
        assert resume.returncode == 0, resume.stderr
        assert records(out.read_text()) == expected

    check()


@pytest.mark.timeout(120)
def test_concurrent_runs_one_is_refused(ckpts, clips, tmp_path):
    folder, expected = clips
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "mediaformers", "classify", str(ckpts["videomae"]), str(folder),
               "--batch-size", "1", "-o", str(out), "--resume"]
    procs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=100), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) in ([0, 0], [0, 2])  # refused, or the second came after the first
    assert all("being written by another" in err for rc, err in results if rc == 2)
    assert records(out.read_text()) == expected  # never an input twice, never a torn line


@pytest.mark.timeout(300)
def test_demo_output_is_grouped_and_reproducible(tmp_path):
    first, second = (cli("demo", tmp_path / name, check_rc=0).stdout for name in ("one", "two"))
    assert first == second  # byte for byte: seeded weights and media, no timings, relative paths
    headers = [line for line in first.splitlines() if line.startswith("# ")]
    assert headers and all("model, untrained) on" in h for h in headers)
    recs = [json.loads(line) for line in first.splitlines() if not line.startswith("# ")]
    assert all(r["input"].startswith("media/") and r["model"] in first for r in recs)
    assert any("sound track of each video" in h for h in headers)  # the audio model answers for videos too
