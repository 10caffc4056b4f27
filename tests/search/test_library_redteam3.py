"""Third red-team pass on the library (issue 24): a --segment that differs from the library's, hand-edited
library.json values, query text that holds no words, and file names that would break a one-line message."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mediaformers.search import Library, LibraryError
from mediaformers.search.records import check_k, check_segment
from tests.test_library import audio_model  # noqa: F401 (a fixture: a tiny AST checkpoint)

pytest.importorskip("lancedb")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from tests.altclip_tiny import make_folder

    return make_folder(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def built(clip, tmp_path_factory) -> Path:
    """A library with one picture, segment 2 s (a copy is made per test that edits it)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("built")
    (root / "media").mkdir()
    Image.fromarray(np.full((20, 24, 3), 90, np.uint8)).save(root / "media" / "a.png")
    lib = Library(root / "lib", model=str(clip), segment=2.0)
    assert [r["status"] for r in lib.add([root / "media"])] == ["added"]
    return root / "lib"


def test_a_different_segment_for_an_existing_library_is_refused(built):
    """It was dropped without a word: the library went on cutting 2 s segments."""
    with pytest.raises(LibraryError, match=r"segment: this library cuts videos into 2 s segments; got 5"):
        Library(built, segment=5)
    assert Library(built, segment=2.0).meta["segment"] == Library(built).meta["segment"] == 2.0


def test_cli_index_without_segment_keeps_the_librarys(built, capsys):
    from mediaformers import cli

    media = built.parent / "media"
    assert cli.main(["index", str(media), "-o", str(built), "--quiet"]) == 0
    assert cli.main(["index", str(media), "-o", str(built), "--segment", "3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "segment: this library cuts videos into 2 s segments" in err[-1], err


@pytest.mark.parametrize("edit,message", [
    ({"model": ["a"]}, "model: expected a checkpoint path or name, got ['a']"),
    ({"model": ""}, "model: expected a checkpoint path or name"),
    ({"model_fingerprint": 5}, "model_fingerprint: expected a checkpoint path or name, got 5"),
    ({"model": None}, "expected a model and/or an audio_model, got neither"),
    ({"version": 99}, "version: expected 1 or 2"),
    ({"segment": True}, "segment: expected finite seconds > 0, got True"),
    ({"model": "{clip}", "model_fingerprint": None}, "expected the checkpoint's absolute path, got the relative"),
])
def test_hand_edited_library_json_is_one_line(built, clip, tmp_path, monkeypatch, edit, message):
    import shutil

    lib = tmp_path / "lib"
    shutil.copytree(built, lib)
    meta = json.loads((lib / "library.json").read_text())
    meta.update({k: v.replace("{clip}", clip.name) if isinstance(v, str) else v for k, v in edit.items()})
    (lib / "library.json").write_text(json.dumps(meta))
    monkeypatch.chdir(clip.parent)  # a relative "clip" names a folder here: it must not be used
    with pytest.raises(LibraryError) as err:
        Library(lib)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("text", ["\x00", "red\x00blue", "\u200b", " \t\u200b\x7f "])
def test_query_text_without_words_is_refused(built, text):
    with pytest.raises(LibraryError, match="text: expected words to search for"):
        Library(built).search(text=text, k=1)


def test_numbers_as_typed():
    for bad in ("1_0", "\u0663", "infinity", "0x10", "nan"):
        with pytest.raises(LibraryError):
            check_segment(bad)
        with pytest.raises(LibraryError):
            check_k(bad)
    assert check_segment(" 2 ") == 2.0 and check_segment("1e1") == 10.0 and check_k(" 7 ") == 7


def test_index_messages_stay_one_line_whatever_the_name(built, tmp_path, capsys):
    """A file name with a newline or a terminal escape split the 'skipped' line (or coloured the terminal)."""
    from mediaformers import cli

    media = tmp_path / "m"
    media.mkdir()
    (media / "bad\nname.mp4").write_bytes(b"junk")
    (media / "esc\x1b[31mred.mp4").write_bytes(b"junk")
    lib = tmp_path / "lib"
    import shutil

    shutil.copytree(built, lib)
    assert cli.main(["index", str(media), "-o", str(lib), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err
    lines = [x for x in err.splitlines() if "skipped" in x]
    assert len(lines) == 2 and all(x.startswith("mediaformers index: skipped ") for x in lines), err
    assert any("bad\\nname.mp4" in x for x in lines) and any("esc\\x1b[31mred.mp4" in x for x in lines), err
    assert os.path.exists(media / "bad\nname.mp4")  # nothing of the user's touched


def test_a_device_index_past_the_machines_count_is_a_usage_error(monkeypatch):
    import torch

    from mediaformers.search.models import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda") == "cuda" and check_device("cuda:0") == "cuda:0"
    with pytest.raises(LibraryError, match=r"device: cuda:5 was asked for, but this machine has 1 CUDA"):
        check_device("cuda:5")  # was accepted, then every file failed


def test_a_checkpoint_of_the_wrong_kind_creates_nothing(clip, audio_model, tmp_path):
    """An audio model as --model made the library, pinned it, and then failed on every file."""
    with pytest.raises(LibraryError, match=r"model: expected an image-text checkpoint, got .*no image processor"):
        Library(tmp_path / "a", model=str(audio_model))
    with pytest.raises(LibraryError, match=r"audio_model: expected an audio checkpoint, got .*no audio processor"):
        Library(tmp_path / "b", model=str(clip), audio_model=str(clip))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_multi_line_error_is_printed_on_one_line(tmp_path, capsys, monkeypatch):
    from mediaformers import cli

    def hub(*a, **kw):  # what the hub client says offline: two lines
        raise ValueError("org/x: not in the hub cache: ConnectError\nAn error happened while trying to locate")
    monkeypatch.setattr("mediaformers.tasks.loading.load_model", hub)
    (tmp_path / "a.png").write_bytes(b"")
    assert cli.main(["index", str(tmp_path / "a.png"), "-o", str(tmp_path / "lib"), "--model", "org/x"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if "error" in x]
    assert len(err) == 1 and err[0].endswith("ConnectError\\nAn error happened while trying to locate"), err


def test_a_library_json_changed_under_an_open_library_stops_the_writer(built, tmp_path):
    """Two `index` creating one library with different models at once: the second writer must not add
    its vectors under the first one's library.json."""
    import shutil

    lib_dir = tmp_path / "lib"
    shutil.copytree(built, lib_dir)
    lib = Library(lib_dir)
    meta = json.loads((lib_dir / "library.json").read_text())
    meta["model"] = "/another/checkpoint"
    (lib_dir / "library.json").write_text(json.dumps(meta))
    with pytest.raises(LibraryError, match="changed since this process opened it"):
        list(lib.add([built.parent / "media"]))
    assert json.loads((lib_dir / "library.json").read_text())["model"] == "/another/checkpoint"  # left as found


@pytest.mark.timeout(120)
def test_a_fifo_or_device_given_to_index_or_like_is_refused_not_read(built, tmp_path):
    """A FIFO named x.mp4 blocked `index` for ever (its content hash opened it); /dev/zero never ended."""
    import shutil
    import threading

    from mediaformers.search.records import file_hash

    lib_dir = tmp_path / "lib"
    shutil.copytree(built, lib_dir)
    os.mkfifo(tmp_path / "pipe.mp4")
    os.symlink("/dev/zero", tmp_path / "zero.mp4")
    out: list = []
    thread = threading.Thread(target=lambda: out.extend(Library(lib_dir).add(
        [tmp_path / "pipe.mp4", tmp_path / "zero.mp4"], prune=False)), daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():  # release the reader before failing
        os.close(os.open(tmp_path / "pipe.mp4", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("index hung on a FIFO or a device")
    assert [(Path(r["path"]).name, r["status"], r["error"].split(", got ")[1]) for r in out] == [
        ("pipe.mp4", "error", "a FIFO"), ("zero", "error", "a device")]
    with pytest.raises(LibraryError, match="like: expected a regular media file, got a FIFO"):
        Library(lib_dir).search(like=tmp_path / "pipe.mp4")
    with pytest.raises(OSError, match="expected a regular file"):
        file_hash(tmp_path / "pipe.mp4")  # the last guard, for a FIFO swapped in after the check


def test_search_and_serve_of_a_folder_that_is_no_library(tmp_path, capsys):
    """search on an empty folder said 'a new library needs an image-text model'."""
    from mediaformers import cli

    for command in (["search", str(tmp_path), "red"], ["serve", str(tmp_path), "--port", "0"]):
        assert cli.main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert "expected a library folder (with library.json)" in err[-1], err
    assert list(tmp_path.iterdir()) == []
