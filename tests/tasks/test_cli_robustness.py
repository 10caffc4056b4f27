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
    assert run.returncode == 2 and not run.stdout and "got an empty string (input 1)" in run.stderr


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


# ---- issue 25: one line for every mistake, arguments checked before anything loads ---------------
def run_main(capsys, *argv) -> tuple[int, str]:
    from mediaformers.cli import main

    code = main([os.fspath(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return code, err


@pytest.mark.parametrize("flags,message", [
    (["--grad-accum", "0"], "--grad-accum: expected a whole number >= 1, got 0"),
    (["--label-smoothing", "5"], "--label-smoothing: expected a finite number in [0, 1), got 5.0"),
    (["--lr", "inf"], "--lr: expected a finite number > 0, got inf"),
    (["--lr", "nan"], "--lr: expected a finite number > 0, got nan"),
])
def test_train_numbers_are_checked_before_anything_loads(capsys, tmp_path, monkeypatch, flags, message):
    import mediaformers.train.loop as loop

    monkeypatch.setattr(loop, "fit", lambda r: pytest.fail("fit ran"))
    code, err = run_main(capsys, "train", "ast", tmp_path / "no-data", "-o", tmp_path / "run", *flags)
    assert code == 2 and message in err and not (tmp_path / "run").exists()


def test_empty_input_export_batch_and_run_folder_are_usage_errors(capsys, tmp_path, ckpts):
    code, err = run_main(capsys, "classify", ckpts["ast"], "")
    assert code == 2 and "inputs: expected a file, folder or .txt list, got an empty string (input 1)" in err
    code, err = run_main(capsys, "export", ckpts["ast"], "-o", tmp_path / "x", "--batch", "1000000000")
    assert code == 2 and "--batch: expected a positive batch size of at most 1024" in err and not (tmp_path / "x").exists()
    run = tmp_path / "runs" / "x"
    shutil.copytree(ckpts["ast"], run / "best")
    (run / "metrics.jsonl").write_text("{}\n")
    code, err = run_main(capsys, "classify", run, "a.wav")
    assert code == 2 and f"is a training run folder, not a model (it holds best); use {run / 'best'}" in err


def test_debug_shows_the_traceback(tmp_path):
    from mediaformers.cli import main

    with pytest.raises(ValueError, match="--grad-accum"):
        main(["train", "ast", str(tmp_path), "-o", str(tmp_path / "r"), "--grad-accum", "0", "--debug"])


def test_ctrl_c_during_train_says_resume_continues_it(capsys, tmp_path, monkeypatch):
    import mediaformers.train.loop as loop

    def interrupted(r):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "fit", interrupted)
    from mediaformers.cli import main

    assert main(["train", "ast", str(tmp_path), "-o", str(tmp_path / "run")]) == 130
    # before its first checkpoint there is nothing to continue from: it says so (red team, issue 25)
    assert "no checkpoint was written yet: run the same command again" in capsys.readouterr().err
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "step-00000003.pt").write_bytes(b"")
    assert main(["train", "ast", str(tmp_path), "-o", str(tmp_path / "run"), "--resume"]) == 130
    err = capsys.readouterr().err
    assert "the same command with --resume continues the run in" in err and "(step-00000003;" in err


def test_out_of_memory_and_full_disk_are_one_line(capsys, tmp_path, monkeypatch, ckpts):
    """An allocator failure (export --batch at the limit of memory) and a full disk while a checkpoint is written
    (torch.save's "unexpected pos") end in one line, never a traceback; a real bug keeps its traceback."""
    import mediaformers.cli as cli_mod

    def oom(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 1000000000000 bytes.\nmore lines")

    monkeypatch.setitem(cli_mod.COMMANDS, "export", oom)
    code, err = run_main(capsys, "export", ckpts["ast"], "-o", tmp_path / "x")
    assert code == 2 and "out of memory" in err
    monkeypatch.setitem(cli_mod.COMMANDS, "export", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli_mod.main(["export", str(ckpts["ast"]), "-o", str(tmp_path / "x")])

    import torch

    from mediaformers.train import checkpointing as ck

    def full(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1536 vs 1430")

    monkeypatch.setattr(ck.torch, "save", full)
    with pytest.raises(Exception) as info:
        ck.save_state(tmp_path, {"w": torch.ones(1)}, 1, keep=1)
    monkeypatch.setitem(cli_mod.COMMANDS, "train", lambda args: (_ for _ in ()).throw(info.value))
    code, err = run_main(capsys, "train", "ast", tmp_path, "-o", tmp_path / "r")
    assert code == 1 and "could not write" in err and "is the disk full?" in err and "--resume" in err


def test_export_silences_the_exporters_torchvision_notes(capsys, tmp_path):
    import logging

    from mediaformers.cli import main

    main(["export", str(tmp_path / "missing"), "-o", str(tmp_path / "x")])  # fails at loading: the filter is on
    log = logging.getLogger("torch.onnx._internal.exporter._registration")
    record = log.makeRecord(log.name, logging.WARNING, __file__, 1, "torchvision is not installed. Skipping %s",
                            ("torchvision::nms",), None)
    assert not all(f.filter(record) for f in log.filters)
    log = logging.getLogger("onnxscript.optimizer._constant_folding")  # four lines on every AST export
    record = log.makeRecord(log.name, logging.WARNING, __file__, 1,
                            "Skipping constant folding for op %s with multiple outputs.", ("Split",), None)
    assert not all(f.filter(record) for f in log.filters)


def test_embed_npy_writes_a_sidecar_naming_each_row(capsys, tmp_path, ckpts, media):
    import numpy as np

    from mediaformers.cli import main

    out = tmp_path / "e.npy"
    assert main(["embed", str(ckpts["ast"]), str(media / "tone.wav"), str(media / "long.wav"), "-o", str(out),
                 "--quiet"]) == 0
    rows = records(tmp_path / "e.inputs.jsonl")
    assert [r["row"] for r in rows] == [0, 1] and {Path(r["input"]).name for r in rows} == {"tone.wav", "long.wav"}
    assert np.load(out).shape[0] == 2
    assert main(["embed", str(ckpts["ast"]), str(media / "tone.wav"), "-o", str(out), "--quiet"]) == 2  # kept


def test_precision_auto_is_the_default_printed_once_and_fp32_is_exact(capsys, tmp_path, ckpts, media):
    """classify without --precision runs `auto` (said once on stderr); --precision fp32 gives the Python API's
    float32 scores bit for bit; bf16 (what auto picks on hardware with bf16 units) stays within the stated
    tolerance of fp32: the same top-1 label, probabilities within 0.02."""
    from mediaformers.cli import main
    from mediaformers.tasks.loading import load_model
    from mediaformers.tasks.pipelines import pipeline

    def classify(*flags):
        out = tmp_path / f"o{len(list(tmp_path.iterdir()))}.jsonl"
        assert main(["classify", str(ckpts["videomae"]), str(media / "a.mp4"), "-o", str(out), "--quiet", *flags]) == 0
        return records(out)[0]["labels"], capsys.readouterr().err

    auto, err = classify()
    assert err.count("mediaformers classify: precision ") == 1 and "(auto; --precision fp32 for bit-exact" in err
    fp32, err = classify("--precision", "fp32")
    assert "precision" not in err
    api = pipeline(None, load_model(str(ckpts["videomae"])), top_k=5)(str(media / "a.mp4"))
    assert [(x["label"], x["score"]) for x in fp32] == [(x["label"], x["score"]) for x in api["labels"]]
    for other in (auto, classify("--precision", "bf16")[0]):
        assert other[0]["label"] == fp32[0]["label"]
        got = {x["label"]: x["score"] for x in other}
        assert all(abs(got[x["label"]] - x["score"]) <= 0.02 for x in fp32)


def test_train_resume_with_another_model_size_or_lr_is_one_line(capsys, tmp_path):
    from tests.train.conftest import TINY_AUDIO, write_audio_classes

    from mediaformers.cli import main

    data, run = write_audio_classes(tmp_path / "data", n_per_class=4), tmp_path / "run"
    base = ["train", "ast", str(data), "-o", str(run), "--max-steps", "1", "--quiet"]
    assert main([*base, "--config", json.dumps(TINY_AUDIO)]) == 0
    capsys.readouterr()
    bigger = json.dumps({**TINY_AUDIO, "hidden_size": 64})
    code, err = run_main(capsys, *base, "--config", bigger, "--resume", "--max-steps", "2")
    assert code == 2 and "was trained with model config hidden_size 32, got 64" in err
    code, err = run_main(capsys, *base, "--config", json.dumps(TINY_AUDIO), "--resume", "--lr", "0.5")
    assert code == 2 and "was trained with lr 0.0001, got 0.5" in err and "--epochs" in err


# ---- red team (issue 25): arguments alone decide, one line, before anything loads ----------------------
@pytest.mark.parametrize("argv,message", [
    (["classify", "M", "x.wav", "--batch-size", "0"], "argument --batch-size: expected a number >= 1, got 0"),
    (["classify", "M", "x.wav", "--workers", "100000"], "--workers: expected 0 to 256"),
    (["classify", "M", "x.wav", "-o", "o.jsonl", "--resume", "--overwrite"], "--resume and --overwrite"),
    (["classify", "M", "x.wav", "--clips", "0"], "--clips: expected a whole number >= 1, got 0"),
    (["classify", "M", "x.wav", "--hop", "-5"], "--hop: expected a whole number >= 1, got -5"),
    (["export", "M", "-o", ""], "-o: expected a path, got an empty string"),
    (["index", "x.wav", "-o", "lib", "--segment", "nan"], "--segment: expected finite seconds >= 0.25, got nan"),
    (["index", "x.wav", "-o", "lib", "--segment", "0"], "--segment: expected finite seconds >= 0.25, got 0.0"),
    (["demo", "d", "--seed", "-1"], "--seed: expected a whole number >= 0, got -1"),
    (["explain", "M", "x.wav", "-o", "x.png", "--view", "-1"], "--view: expected a view number >= 0, got -1"),
    (["train", "M", "data", "-o", "run", "--workers", "100000"], "--workers: expected a whole number in [0, 256]"),
    (["train", "M", "data", "-o", "run", "--resume", "--eval-only"], "--resume and --eval-only"),
    (["train", "M", "data", "-o", "run", "--config", "{bad"], "argument --config"),
])
def test_bad_arguments_are_one_line_exit_2_before_anything_loads(capsys, tmp_path, monkeypatch, argv, message):
    from mediaformers import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("mediaformers.tasks.loading.load_model", lambda *a, **k: pytest.fail("a model loaded"))
    try:
        rc = cli.main(argv)
    except SystemExit as exit:  # argparse's own errors
        rc = exit.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert list(tmp_path.iterdir()) == []  # nothing written (export -o "" wrote into the working folder)


def test_demo_into_a_file_is_refused_before_it_says_where_it_works(capsys, tmp_path):
    from mediaformers import cli

    (tmp_path / "f").write_text("mine")
    assert cli.main(["demo", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected a folder to build the demo in, got a file" in err[0], err
    assert (tmp_path / "f").read_text() == "mine"
