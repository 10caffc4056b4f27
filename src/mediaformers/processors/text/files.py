"""The tokenizer's files: names, the fields of tokenizer_config.json we read (checked), tokenizer.json."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as Backend

from .._config_files import check_fields, read_json_object

TOKENIZER_FILE = "tokenizer.json"
SPM_FILES = ("sentencepiece.bpe.model", "spiece.model", "tokenizer.model")
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_FILE = "special_tokens_map.json"
XLMR_CLASSES = {"XLMRobertaTokenizer", "XLMRobertaTokenizerFast"}
SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
XLMR_SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                 "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
_NO_LIMIT = 10**12  # transformers writes 1e30 for "no limit"; anything this big means the same
_PADDING = (True, False, "longest", "max_length", "do_not_pad")
_TRUNCATION = (True, False, None, "longest_first", "only_first", "only_second", "do_not_truncate")


# ---- reading the files ------------------------------------------------------------------------
_CONFIG_SCHEMA = {"padding_side": "str", "truncation_side": "str", "add_prefix_space": "bool", "tokenizer_class": "str"}


def _check_config(config: dict[str, Any], where: Any) -> None:
    """tokenizer_config.json / special_tokens_map.json fields we use, checked before use."""
    check_fields(config, _CONFIG_SCHEMA, str(where))
    limit = config.get("model_max_length")
    if limit is not None and not (isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit > 0):
        raise ValueError(f"{where}: model_max_length: expected a positive int, got {limit!r}")
    if isinstance(limit, float) and limit < _NO_LIMIT and not limit.is_integer():
        raise ValueError(f"{where}: model_max_length: expected a positive int, got {limit!r}")
    for name in SPECIAL_NAMES:
        value = config.get(name)
        if value is not None and not isinstance(_token_str(value), str):
            raise ValueError(f"{where}: {name}: expected a string or {{'content': string}}, got {value!r}")
        if value is not None and not _token_str(value):  # tokenizers cannot add an empty token: it would have no id
            raise ValueError(f"{where}: {name}: expected a non-empty token, got {value!r}")


def _read_tokenizer_json(path: Path) -> Backend:
    read_json_object(path)  # a clear message for invalid JSON or a non-object before tokenizers sees it
    try:
        return Backend.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception for every malformed field
        raise ValueError(f"{path}: not a tokenizer.json that tokenizers can read ({err})") from err


# ---- the tokenizer ----------------------------------------------------------------------------
def _token_str(value: Any) -> str | None:
    if isinstance(value, dict):  # AddedToken serialised as {"content": ...}
        return value.get("content")
    return value if isinstance(value, str) else None

