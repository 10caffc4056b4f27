"""Reading processor/tokenizer JSON files safely: a clear ``ValueError`` naming the file and field
for anything malformed, before any value is used."""
from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any

# kind -> (test, what the error says was expected)
_KINDS = {
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "pos_int": (lambda v: _is_int(v) and v > 0, "a positive int"),
    "nonneg_int": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "number": (lambda v: _is_number(v), "a finite number"),
    "pos_number": (lambda v: _is_number(v) and v > 0, "a positive number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "pos_int_pair": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) and x > 0 for x in v),
                     "two positive ints"),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def read_json_object(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``; invalid JSON or another top-level type is a ValueError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: expected a JSON object, got invalid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def check_fields(values: dict[str, Any], schema: dict[str, str], where: str, required: tuple[str, ...] = ()) -> None:
    """Check each present ``values[name]`` against ``schema[name]`` (a kind above); None means unset,
    which only names outside ``required`` may be."""
    for name, kind in schema.items():
        value = values.get(name)
        if value is None and name not in required:
            continue
        test, expected = _KINDS[kind]
        if not test(value):
            raise ValueError(f"{where}: {name}: expected {expected}, got {value!r}")


PREPROCESSOR_FILE = "preprocessor_config.json"
PROCESSOR_FILE = "processor_config.json"


def find_processor_fields(folder: str | Path, part: str) -> tuple[dict[str, Any], Path] | None:
    """A processor part's fields and the file they came from, or None when the folder has neither file.

    transformers 4.x (and our save_pretrained) write ``preprocessor_config.json``; transformers 5
    writes a multi-part processor's settings only into ``processor_config.json`` under ``part``
    ("image_processor", "feature_extractor"). ``folder`` may also name a JSON file directly.
    """
    path = Path(folder)
    if path.is_file():
        return read_json_object(path), path
    if (path / PREPROCESSOR_FILE).is_file():
        return read_json_object(path / PREPROCESSOR_FILE), path / PREPROCESSOR_FILE
    if (path / PROCESSOR_FILE).is_file():
        config = read_json_object(path / PROCESSOR_FILE)
        if part in config:
            if not isinstance(config[part], dict):
                raise ValueError(f"{path / PROCESSOR_FILE}: {part}: expected a JSON object, "
                                 f"got {type(config[part]).__name__}")
            return dict(config[part]), path / PROCESSOR_FILE
    return None
