"""The library under crashes and odd input: half-made tables, undecodable file names, moved or changed
checkpoints, removed links, bad segment lengths, a full disk, unusable devices, a model that cannot load,
wrong vector sizes, and one hit per file with its other segments listed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mediaformers.search import Library, LibraryError
from mediaformers.search import store as store_module
from tests.media import make_video

pytest.importorskip("lancedb")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from tests.altclip_tiny import make_folder

    return make_folder(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def media(tmp_path) -> Path:
    from PIL import Image

    root = tmp_path / "media"
    root.mkdir()
    for i, name in enumerate(("a", "b", "c")):
        Image.fromarray(np.full((20, 24, 3), 60 * i + 20, np.uint8)).save(root / f"{name}.png")
    return root


def _paths(lib: Library, table: str = "files") -> list[str]:
    t = lib.store.table(table)
    return sorted(Path(r["path"]).name for r in t.to_arrow().select(["path"]).to_pylist()) if t is not None else []


def test_a_half_made_table_is_recovered(clip, media, tmp_path):
    lib = Library(tmp_path / "lib", model=str(clip))
    list(lib.add([media / "a.png"]))
    # what kill -9 inside the first write leaves: the table's data without a committed version
    for name in ("visual", "files"):
        shutil.rmtree(tmp_path / "lib" / "db" / f"{name}.lance" / "_versions")
    assert Library(tmp_path / "lib").search(text="x", k=1) == []  # readers see no table, not an error
    (tmp_path / "lib" / "db" / "audio.lance").mkdir()  # an empty one too
    records = {Path(r["path"]).name: r["status"] for r in Library(tmp_path / "lib").add([media])}
    assert records == {"a.png": "added", "b.png": "added", "c.png": "added"}
    assert _paths(lib) == ["a.png", "b.png", "c.png"] and _paths(lib, "visual") == ["a.png", "b.png", "c.png"]


@pytest.mark.timeout(300)
def test_killed_between_writes_then_resumed(clip, media, tmp_path):
    """The process ends at once (as kill -9) after the first file's vectors, before the files table exists;
    the next run removes the torn vectors and indexes everything once. (A kill inside LanceDB's first write
    is the half-made table above.)"""
    cmd = [sys.executable, "-m", "mediaformers", "index", str(media), "-o", str(tmp_path / "lib"), "--model",
           str(clip), "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1",
           "MEDIAFORMERS_LIBRARY_EXIT_AT": "create:files"}
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 137, run.stderr
    lib = Library(tmp_path / "lib")
    assert _paths(lib) == [] and _paths(lib, "visual") == ["a.png"]  # torn: vectors without a files row
    assert {r["status"] for r in lib.add([media])} == {"added"}
    assert _paths(lib) == _paths(lib, "visual") == ["a.png", "b.png", "c.png"]


def test_undecodable_file_names_are_reported_and_the_rest_indexed(clip, media, tmp_path):
    odd = os.path.join(os.fsencode(media), b"caf\xe9.png")
    shutil.copy(media / "a.png", os.fsdecode(odd))
    lib = Library(tmp_path / "lib", model=str(clip))
    for _ in range(2):  # and again: the rerun does not die at the same file
        records = list(lib.add([media]))
        errors = [r for r in records if r["status"] == "error"]
        assert len(records) == 4 and len(errors) == 1 and "expected a UTF-8 file name" in errors[0]["error"]
        assert "caf\\xe9.png" in errors[0]["path"] and "caf" not in errors[0]["error"]  # named once
    assert _paths(lib) == ["a.png", "b.png", "c.png"]


def test_the_checkpoint_is_pinned_by_path_and_weights(clip, media, tmp_path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(clip, work / "clip")
    monkeypatch.chdir(work)
    lib = Library(tmp_path / "lib", model="./clip")
    list(lib.add([media]))
    meta = json.loads((tmp_path / "lib" / "library.json").read_text())
    assert meta["model"] == str((work / "clip").resolve()) and len(meta["model_fingerprint"]) == 32
    monkeypatch.chdir(tmp_path)  # another folder, with another ./clip that must not be used
    shutil.copytree(clip, tmp_path / "clip")
    assert len(Library(tmp_path / "lib").search(text="a", k=3)) == 3
    from safetensors.torch import load_file, save_file

    weights = work / "clip" / "model.safetensors"
    state = load_file(weights)
    name = next(iter(state))
    state[name] = state[name] + 1
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(LibraryError, match="weights in .* changed since this library was built"):
        Library(tmp_path / "lib").search(text="a", k=1)
    shutil.rmtree(work / "clip")
    with pytest.raises(LibraryError, match="no longer exists"):
        Library(tmp_path / "lib").search(text="a", k=1)


def test_a_removed_links_target_is_pruned(clip, media, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(media / "a.png", outside / "linked.png")
    (media / "link.png").symlink_to(outside / "linked.png")
    lib = Library(tmp_path / "lib", model=str(clip))
    list(lib.add([media]))
    assert "linked.png" in _paths(lib)
    (media / "link.png").unlink()
    records = {Path(r["path"]).name: r["status"] for r in lib.add([media])}
    assert records.get("linked.png") == "removed" and "linked.png" not in _paths(lib, "visual")
    # a file indexed from another folder is not pruned by a run over this one
    other = Library(tmp_path / "other", model=str(clip))
    list(other.add([outside]))
    assert "removed" not in {r["status"] for r in other.add([media])} and "linked.png" in _paths(other)


@pytest.mark.parametrize("segment", [float("nan"), float("inf"), 1e-4, 0, -1, "x"])
def test_bad_segments_are_refused_before_anything_is_made(clip, tmp_path, segment):
    with pytest.raises(LibraryError, match="segment: expected"):
        Library(tmp_path / "lib", model=str(clip), segment=segment)
    assert not (tmp_path / "lib").exists()


def test_video_segments_are_embedded_in_bounded_batches_and_grouped(clip, tmp_path):
    (tmp_path / "media").mkdir()
    make_video(tmp_path / "media" / "v.mp4", frames=20, fps=10)
    lib = Library(tmp_path / "lib", model=str(clip), segment=0.25, batch_size=4)
    calls = []
    frames = lib.embedder.frames
    lib.embedder.frames = lambda f: calls.append(len(f)) or frames(f)
    list(lib.add([tmp_path / "media"]))
    assert max(calls) <= 4 and sum(calls) == 16  # 8 segments x 2 frames, 4 at a time
    rows = lib.search(text="a", k=20)
    assert len(rows) == 9  # 8 segments + the whole video
    grouped = lib.search(text="a", k=5, group=True)
    assert len(grouped) == 1 and len(grouped[0].times) == (8 if grouped[0].whole else 7)
    assert [t[2] for t in grouped[0].times] == sorted((t[2] for t in grouped[0].times), reverse=True)
    record = grouped[0].record()
    assert record["path"].endswith("v.mp4") and len(record["times"]) == len(grouped[0].times)


def test_tables_are_compacted_after_a_sync(clip, media, tmp_path, monkeypatch):
    from datetime import timedelta

    monkeypatch.setattr(store_module, "KEEP_VERSIONS_FOR", timedelta(0))
    lib = Library(tmp_path / "lib", model=str(clip))
    with pytest.warns(UserWarning):  # LanceDB's note that cleanup_older_than=0 drops every old version
        list(lib.add([media]))
    for name in ("visual", "files"):
        assert len(lib.store.table(name).list_versions()) <= 2, name


def test_a_full_disk_is_one_line(clip, media, tmp_path, monkeypatch, capsys):
    from mediaformers import cli

    def full(self, *a, **kw):
        raise RuntimeError("lance error: LanceError(IO): Generic LocalFileSystem error: No space left on device "
                           "(os error 28), /home/runner/.cargo/registry/src/lance-io/src/object_writer.rs:123:45")
    import lancedb

    monkeypatch.setattr(type(lancedb.connect(str(tmp_path / "probe"))), "create_table", full)
    code = cli.main(["index", str(media), "-o", str(tmp_path / "lib"), "--model", str(clip), "--quiet",
                     "--precision", "fp32"])  # no note naming the precision chosen by default: only the error
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "the disk is full" in err and "lance error" not in err, err
    assert err.count("kept") == 1, err  # said once, not again by the command line's own hint


def test_usage_errors_come_before_any_work(clip, tmp_path):
    with pytest.raises(LibraryError, match="device: expected cpu, cuda"):
        Library(tmp_path / "lib", model=str(clip), device="meta")
    if not torch.cuda.is_available():
        with pytest.raises(LibraryError, match="no CUDA device"):
            Library(tmp_path / "lib", model=str(clip), device="cuda")
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        Library(tmp_path / "lib", model=str(tmp_path / "notamodel"))
    assert not (tmp_path / "lib").exists()  # nothing created, nothing pinned to the bad model
    run = subprocess.run([sys.executable, "-m", "mediaformers", "index", str(tmp_path), "-o", str(tmp_path / "lib"),
                          "--model", str(tmp_path / "notamodel")], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "lib").exists()


def test_wrong_vector_size_and_bad_k(clip, media, tmp_path):
    lib = Library(tmp_path / "lib", model=str(clip))
    lib.store.write("visual", [lib._row("/x.png", 0, 0, "image", True, torch.ones(8) / 8 ** 0.5)])
    with pytest.raises(LibraryError, match="have 8 values, the query's 16"):
        lib.search(text="a", k=1)
    for k, message in ((10 ** 23, "up to"), ("abc", "whole number"), (0, "positive"), (True, "positive")):
        with pytest.raises(LibraryError, match=message):
            lib.search(text="a", k=k)


@pytest.mark.parametrize("argv, message", [
    (["--device", "meta"], "device: expected cpu, cuda"),
    (["--segment", "nan"], "segment: expected finite seconds"),
    (["--segment", "1e-4"], "segment: expected finite seconds >= 0.25"),
])
def test_index_usage_errors_are_one_line(clip, media, tmp_path, capsys, argv, message):
    from mediaformers import cli

    code = cli.main(["index", str(media), "-o", str(tmp_path / "lib"), "--model", str(clip), "--quiet", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "lib").exists()


def test_an_unchanged_rerun_writes_nothing(clip, media, tmp_path):
    lib = Library(tmp_path / "lib", model=str(clip))
    list(lib.add([media]))
    versions = {n: lib.store.table(n).version for n in ("visual", "files")}
    again = Library(tmp_path / "lib")
    assert {r["status"] for r in again.add([media])} == {"unchanged"}
    assert again.store.writes == 0 and {n: again.store.table(n).version for n in versions} == versions
