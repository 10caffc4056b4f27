"""Training data: folders or CSV/JSONL manifests -> (path, labels or caption, time range) items,
checked before any step runs; a Dataset that decodes in DataLoader workers through the model's own
views and skips (and names) files that do not decode."""
from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import DataError

MEDIA_SUFFIXES = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".wav", ".flac", ".mp3", ".ogg", ".m4a",
                  ".jpg", ".jpeg", ".png"}


@dataclass(frozen=True)
class Item:
    path: str
    labels: tuple[str, ...]
    caption: str | None = None
    start: float | None = None  # seconds: decode only [start, end) of the file
    end: float | None = None

    @property
    def source(self):
        """What the views decode: the path, or a ClipPath carrying the time range."""
        if self.start is None and self.end is None:
            return self.path
        from ..processors.time_range import ClipPath

        return ClipPath(self.path, self.start, self.end)


def _folder_items(root: Path) -> list[Item]:
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root}: expected class subfolders (<label>/<file>), got none")
    items = []
    for c in classes:
        files = sorted(f for f in c.iterdir() if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES)
        if not files:
            raise DataError(f"{c}: expected media files, got an empty folder (class folder {c.name!r} holds no media files)")
        items += [Item(str(f), (c.name,)) for f in files]
    return items


def _manifest_text(path: Path) -> str:
    """The manifest as text: UTF-8 (a byte-order mark, as spreadsheets write one, is dropped); anything
    else is an error naming the file."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        guess = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:200] else ""
        raise DataError(f"{path}: expected a UTF-8 text manifest, got bytes that are not UTF-8 at byte {err.start}"
                        f"{guess}; save it as UTF-8") from None


def _manifest_rows(path: Path) -> list[dict[str, Any]]:
    text = _manifest_text(path)
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{n}: expected a JSON object, got {line[:60]!r} ({err})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}: row {n}: expected a JSON object with 'path', got {line.strip()[:60]}")
                rows.append(row)
        return rows
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:  # DictReader would keep the last column of a name and drop the others silently
        raise DataError(f"{path}: row 1: expected each column name once, got {', '.join(map(repr, twice))} twice")
    rows = []
    for row in reader:
        if None in row:  # more fields than the header names: a comma in an unquoted label, say
            raise DataError(f"{path}: row {reader.line_num}: expected {len(header)} fields (the header's), got "
                            f"{len(header) + len(row[None])}; quote a field that holds a comma")
        rows.append(row)
    return rows


def _labels(value: Any, where: str, csv_row: bool) -> tuple[str, ...]:
    """A row's labels: CSV text (several joined by ';'), or in JSONL a string, a whole number or a list of them."""
    if value is None:
        what = "an empty field (the row has fewer fields than the header)" if csv_row else "null"
        raise DataError(f"{where}: expected a label, got {what}")
    items = value if isinstance(value, list) and not csv_row else [value]
    for x in items:
        if isinstance(x, bool) or not isinstance(x, (str, int)):
            raise DataError(f"{where}: expected a label (text, a whole number or a list of them), got {value!r}")
    labels = tuple(str(x) for x in items) if not csv_row else tuple(x for x in value.split(";") if x)
    labels = tuple(x for x in labels if x.strip())
    if not labels:
        raise DataError(f"{where}: expected at least one label, got {value!r}")
    return labels


def _label_kind(value: Any) -> str:
    items = value if isinstance(value, list) else [value]
    return "numbers" if any(isinstance(x, int) for x in items) else "text"


def _seconds(row: dict, key: str, where: str) -> float | None:
    value = row.get(key)
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise DataError(f"{where}: expected '{key}' in seconds (a number >= 0), got {value!r}")
    return seconds


def _manifest_items(path: Path, need: str | None = "label") -> list[Item]:
    """Rows with ``path`` and the field ``need`` names: ``label`` (several joined by ``;`` in CSV, a
    list in JSONL) or ``caption``; optional ``start``/``end`` seconds; paths relative to the
    manifest's folder."""
    items: list[Item] = []
    kinds: dict[str, int] = {}  # label type -> first row with it (JSONL)
    for n, row in enumerate(_manifest_rows(path), 2 if path.suffix != ".jsonl" else 1):
        where = f"{path}: row {n}"
        if "path" not in row or (need is not None and need not in row):
            wanted = "'path'" + (f" and '{need}'" if need else "")
            raise DataError(f"{where}: expected {wanted} fields, got {sorted(map(str, row))}")
        if not isinstance(row["path"], str) or not row["path"].strip():
            raise DataError(f"{where}: expected 'path' to be a file path (text), got {row['path']!r}")
        file = Path(row["path"])
        file = file if file.is_absolute() else path.parent / file
        if not file.is_file():
            raise DataError(f"{where}: expected an existing file, got {row['path']!r} (does not exist)")
        labels, caption = (), None
        if need == "label":
            labels = _labels(row["label"], where, path.suffix != ".jsonl")
            kind = _label_kind(row["label"])
            if kinds.setdefault(kind, n) == n and len(kinds) > 1:  # classes named 1 and "1" would be one class
                first = next(k for k in kinds if k != kind)
                raise DataError(f"{where}: expected labels of one type, got {kind} here and {first} in row "
                                f"{kinds[first]}; write every label as text (or every one as a number)")
        elif need == "caption":
            caption = row["caption"]
            if not isinstance(caption, str) or not caption.strip():
                raise DataError(f"{where}: expected a non-empty caption, got {caption!r}")
        start, end = _seconds(row, "start", where), _seconds(row, "end", where)
        if end is not None and end <= (start or 0.0):
            raise DataError(f"{where}: expected 'end' after 'start', got start={start}, end={end}")
        items.append(Item(str(file), labels, caption, start, end))
    if not items:
        raise DataError(f"{path}: expected at least one row, got none")
    return items


def _unlabelled_items(root: Path) -> list[Item]:
    files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES)
    if not files:
        raise DataError(f"{root}: expected media files (in it or its subfolders), got none")
    return [Item(str(f), ()) for f in files]


def read_items(source: str | Path, need: str | None = "label") -> list[Item]:
    """A folder or a .csv/.jsonl manifest -> items. ``need``: "label" (class subfolders, or a
    ``label`` field), "caption" (a manifest with a ``caption`` field) or None (the media files of a
    folder and its subfolders, or a manifest with ``path`` only)."""
    source = Path(source)
    if source.is_dir() and need != "caption":
        return _folder_items(source) if need == "label" else _unlabelled_items(source)
    if source.is_file() and source.suffix in (".csv", ".jsonl"):
        return _manifest_items(source, need)
    what = {"label": "a folder of class subfolders or a .csv/.jsonl manifest",
            "caption": "a .csv/.jsonl manifest with 'path' and 'caption' fields"}.get(
        need, "a folder or a .csv/.jsonl manifest")
    raise DataError(f"data: expected {what}, got {str(source)!r}")


def data_fields(source: str | Path) -> set[str]:
    """What the data gives beyond media: {"label"} for a folder of class subfolders, a manifest's
    first row's fields, else nothing."""
    source = Path(source)
    if source.is_dir():
        return {"label"} if any(p.is_dir() for p in source.iterdir()) else set()
    if source.is_file() and source.suffix in (".csv", ".jsonl"):
        rows = _manifest_rows(source)
        return set(rows[0]) if rows else set()
    return set()


def split(items: list[Item], fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """Hold out ``fraction`` of the items, the same ones for the same seed."""
    if not 0 < fraction < 1:
        raise DataError(f"val_fraction: expected a number between 0 and 1, got {fraction}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    k = max(1, round(len(items) * fraction))
    if k >= len(items):
        raise DataError(f"val_fraction: {fraction} of {len(items)} items leaves none to train on")
    return [items[i] for i in sorted(order[k:])], [items[i] for i in sorted(order[:k])]


def label_set(train: list[Item], val: list[Item]) -> list[str]:
    """The training labels, sorted; validation labels the training set lacks are an error."""
    labels = sorted({lab for it in train for lab in it.labels})
    if len(labels) < 2:
        raise DataError(f"labels: expected at least 2 classes to train a classifier, got {_few(labels)}")
    unknown = sorted({lab for it in val for lab in it.labels} - set(labels))
    if unknown:
        raise DataError(f"validation labels {_few(unknown)} are not in the training labels {_few(labels)}")
    return labels


class MediaDataset(torch.utils.data.Dataset):
    """Item -> (model inputs of one view, target); a file that fails to decode -> None (counted by
    the collate function, named by the caller)."""

    def __init__(self, items: list[Item], prepare: Callable, labels: list[str], multi_label: bool,
                 augment: Callable | None = None):
        self.items, self.prepare, self.augment = items, prepare, augment
        self.index, self.multi_label = {lab: i for i, lab in enumerate(labels)}, multi_label

    def __len__(self) -> int:
        return len(self.items)

    def target(self, item: Item) -> torch.Tensor:
        if self.multi_label:
            t = torch.zeros(len(self.index))
            t[[self.index[lab] for lab in item.labels]] = 1.0
            return t
        return torch.tensor(self.index[item.labels[0]])

    def __getitem__(self, i: int):
        item = self.items[i]
        try:
            views = self.prepare(item.source)
        except Exception as err:  # a corrupt file is data, not a bug: skipped, counted, named
            return {"failed": item.path, "error": f"{type(err).__name__}: {err}"}
        x = {k: v[0] for k, v in views.items() if k != "window_start"}  # first view (clip/window)
        if self.augment is not None:
            x = self.augment(x)
        return {"inputs": x, "labels": self.target(item)}


def collate(rows: list[dict]) -> dict:
    failed = [(r["failed"], r["error"]) for r in rows if "failed" in r]
    ok = [r for r in rows if "failed" not in r]
    if not ok:
        return {"inputs": None, "labels": None, "failed": failed}
    inputs = {k: torch.stack([r["inputs"][k] for r in ok]) for k in ok[0]["inputs"]}
    return {"inputs": inputs, "labels": torch.stack([r["labels"] for r in ok]), "failed": failed}


def _few(labels: list[str], n: int = 10) -> str:
    """A label list for a one-line message: thousands of labels would make a page of one line."""
    return str(labels) if len(labels) <= n else f"{labels[:n]} and {len(labels) - n} more"
