"""kill -9 at every write point of `index`: the library creation (library.json), each table's first
write, appends, deletes (an update, a touched file, an error row, a prune), compaction. After the kill,
the next run must finish the job with every file indexed exactly once, and search must work.

The kill is simulated in-process (the crash point raises instead of ``os._exit``): what is on disk is the
same, and one model load serves every case. ``test_killed_between_writes_then_resumed`` checks a real
``os._exit`` in a subprocess."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mediaformers.search import Library
from mediaformers.search import store as store_module

pytest.importorskip("lancedb")


class Killed(BaseException):
    pass


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from tests.altclip_tiny import make_folder

    return make_folder(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def embedder(clip, tmp_path_factory):
    lib = Library(tmp_path_factory.mktemp("probe") / "lib", model=str(clip))
    lib.embedder.loaded("model")
    return lib.embedder


def _png(path: Path, value: int) -> None:
    from PIL import Image

    Image.fromarray(np.full((20, 24, 3), value, np.uint8)).save(path)


def _open(path: Path, clip: Path, embedder) -> Library:
    lib = Library(path, model=str(clip))
    lib.embedder = embedder  # the same model, loaded once for the module
    return lib


def _run(path, clip, embedder, media, point=None, monkeypatch=None) -> bool:
    """One `index` run; True when it was killed at ``point``."""
    if point is not None:
        store_module._passed.clear()
        monkeypatch.setenv("MEDIAFORMERS_LIBRARY_EXIT_AT", point)
        monkeypatch.setattr(store_module, "_die", lambda: (_ for _ in ()).throw(Killed(point)))
    try:
        list(_open(path, clip, embedder).add([media]))
    except Killed:
        return True
    finally:
        monkeypatch and monkeypatch.delenv("MEDIAFORMERS_LIBRARY_EXIT_AT", raising=False)
    return False


def _state(path: Path) -> dict[str, list[str]]:
    lib = Library(path)
    out = {}
    for name in ("files", "visual"):
        t = lib.store.table(name)
        out[name] = sorted(Path(r["path"]).name for r in t.to_arrow().select(["path"]).to_pylist()) if t else []
    return out


FIRST = ["create:meta", "rewrite:meta", "create:visual", "add:visual", "before:files-row", "create:files",
         "add:files", "compact:visual", "compact:files"]
SECOND = ["rewrite:meta", "delete:visual", "delete:files", "add:visual", "before:files-row", "add:files",
          "compact:visual", "compact:files",
          "delete:files@2", "add:files@2",  # c touched: its files row replaced
          "add:files@4", "delete:visual@4", "delete:files@5"]  # e's error row; pruning a


@pytest.fixture
def media(tmp_path) -> Path:
    """The first run's files: a.png, b.png, c.png."""
    folder = tmp_path / "media"
    folder.mkdir()
    for i, name in enumerate("abc"):
        _png(folder / f"{name}.png", 40 * i + 20)
    return folder


@pytest.mark.parametrize("point", FIRST)
def test_killed_in_the_first_run(point, clip, embedder, media, tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    assert _run(lib, clip, embedder, media, point, monkeypatch), f"{point} was never reached"
    assert not _run(lib, clip, embedder, media)
    assert _state(lib) == {"files": ["a.png", "b.png", "c.png"], "visual": ["a.png", "b.png", "c.png"]}
    assert len(Library(lib, model=str(clip)).search(text="x", k=5)) == 3


@pytest.mark.parametrize("point", SECOND)
def test_killed_in_an_update(point, clip, embedder, media, tmp_path, monkeypatch):
    """The second run changes b, touches c, adds d, an error file e, and prunes a, in one go."""
    lib = tmp_path / "lib"
    assert not _run(lib, clip, embedder, media)
    (media / "a.png").unlink()
    _png(media / "b.png", 250)
    os.utime(media / "c.png", ns=(1, 1))
    _png(media / "d.png", 90)
    (media / "e.png").write_bytes(b"not a picture")
    assert _run(lib, clip, embedder, media, point, monkeypatch), f"{point} was never reached"
    assert not _run(lib, clip, embedder, media)
    state = _state(lib)
    assert state == {"files": ["b.png", "c.png", "d.png", "e.png"], "visual": ["b.png", "c.png", "d.png"]}
    rows = Library(lib).files()
    assert rows[str((media / "c.png").resolve())]["mtime_ns"] == 1
    assert rows[str((media / "e.png").resolve())]["status"] == "error"
    assert len(Library(lib).search(text="x", k=5)) == 3


def test_files_vanishing_between_listing_and_embedding(clip, embedder, media, tmp_path, monkeypatch):
    from mediaformers.tasks import inputs as inputs_module

    lib = tmp_path / "lib"
    assert not _run(lib, clip, embedder, media)
    listed = inputs_module.expand_inputs

    def list_then_remove(*a, **kw):
        items = listed(*a, **kw)
        (media / "b.png").unlink()  # after the walk saw it, before it is hashed
        _png(media / "d.png", 200)
        return items
    monkeypatch.setattr(inputs_module, "expand_inputs", list_then_remove)
    records = [(Path(r["path"]).name, r["status"], r.get("error", "")) for r in _open(lib, clip, embedder).add([media])]
    assert records[:3] == [("a.png", "unchanged", ""), ("b.png", "error", "FileNotFoundError: No such file or "
                                                                         "directory"), ("c.png", "unchanged", "")]
    assert records[3:] == [("b.png", "removed", "")]  # its old rows go in the same run
    monkeypatch.undo()
    records = {Path(r["path"]).name: r["status"] for r in _open(lib, clip, embedder).add([media])}
    assert records == {"a.png": "unchanged", "c.png": "unchanged", "d.png": "added"}
    assert _state(lib)["visual"] == ["a.png", "c.png", "d.png"]


def test_numbers_of_any_kind_are_checked(clip, embedder, tmp_path):
    from mediaformers.search import LibraryError

    for bad in (0, -1, 1.5, float("nan"), float("inf"), True, "4", 10**30):
        with pytest.raises(LibraryError, match="batch_size: expected a whole number"):
            Library(tmp_path / "new", model=str(clip), batch_size=bad)
    assert not (tmp_path / "new").exists()
    media = tmp_path / "media"
    media.mkdir()
    _png(media / "a.png", 5)
    assert not _run(tmp_path / "lib", clip, embedder, media)
    lib = Library(tmp_path / "lib")
    lib.embedder = embedder
    assert len(lib.search(text="x", k=np.int64(3))) == 1  # a numpy int is a whole number
    for bad in (float("nan"), float("inf"), -0.0, 2.0, 10**23, np.float32(3), None):
        with pytest.raises(LibraryError, match="k: expected a positive number"):
            lib.search(text="x", k=bad)


def test_a_damaged_library_json_is_one_line(clip, embedder, tmp_path):
    from mediaformers.search import LibraryError

    media = tmp_path / "media"
    media.mkdir()
    _png(media / "a.png", 5)
    assert not _run(tmp_path / "lib", clip, embedder, media)
    for text in ("{", "[1, 2]", "\udcff"):
        (tmp_path / "lib" / "library.json").write_bytes(text.encode("utf-8", "surrogateescape"))
        with pytest.raises(LibraryError, match="library.json: expected the library's JSON description"):
            Library(tmp_path / "lib")
