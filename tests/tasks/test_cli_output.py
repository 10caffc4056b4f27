"""CLI output cases beyond test_cli_robustness.py: -o under a file or a folder, a full disk, two concurrent runs."""
import os
import shutil
import subprocess
import sys

import pytest

from tests.tasks.test_cli import cli, records


def refused(proc, text):
    assert proc.returncode == 2, proc.stderr
    assert text in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# ---- output errors: exit 2, a clear message ------------------------------------------------------
@pytest.mark.timeout(60)
def test_output_location_errors(ckpts, media, tmp_path):
    (tmp_path / "file").write_text("x")
    refused(cli("classify", ckpts["videomae"], media / "a.mp4", "-o", tmp_path / "file" / "o.jsonl"), "is a file")
    refused(cli("classify", ckpts["videomae"], media / "a.mp4", "-o", tmp_path, "--overwrite"), "got a folder")
    refused(cli("embed", ckpts["videomae"], media / "a.mp4", "-o", tmp_path / "file" / "e.npy"), "is a file")
    refused(cli("embed", ckpts["videomae"], media / "a.mp4", "-o", tmp_path, "--overwrite"), "expected a .npy")
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.timeout(60)
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk(ckpts, media):
    refused(cli("classify", ckpts["videomae"], media / "a.mp4", "-o", "/dev/full", "--overwrite"),
            "No space left on device")


# ---- two runs on one file ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory, media, ckpts):
    folder = tmp_path_factory.mktemp("clips")
    for i in range(6):
        shutil.copy(media / ("a.mp4" if i % 2 else "c.mp4"), folder / f"v{i}.mp4")
    ref = folder.parent / (folder.name + ".ref.jsonl")
    # --batch-size 1: every input is computed alone, so a resumed run's scores are bit-identical
    cli("classify", ckpts["videomae"], folder, "--batch-size", 1, "-o", ref, check_rc=0)
    return folder, records(ref.read_text())


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


