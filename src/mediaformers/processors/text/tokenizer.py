"""Text tokenization through `tokenizers`: a checkpoint's tokenizer.json, or an old sentencepiece model
converted once (sentencepiece.py).

XLM-R tokenizers (AltCLIP's) are run exactly as transformers 5 runs ``XLMRobertaTokenizer``: it keeps
the vocabulary, the added tokens and a sentencepiece ``Precompiled`` normaliser from the file, and
rebuilds the rest (whitespace split + Metaspace pre-tokenizer, ``<s> A </s>`` template). Any other
tokenizer.json runs as written.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer as Backend
from tokenizers.models import Unigram

from .._config_files import read_json_object
from ..batch_feature import BatchFeature
from .files import (_NO_LIMIT, _PADDING, _TRUNCATION, CONFIG_FILE, SPECIAL_FILE, SPECIAL_NAMES, SPM_FILES,
                    TOKENIZER_FILE, XLMR_CLASSES, XLMR_SPECIALS, _check_config, _read_tokenizer_json, _token_str)
from .sentencepiece import _converted_sentencepiece, xlmr_pipeline


class Tokenizer:
    """Text -> ``input_ids`` and ``attention_mask``, called as transformers' tokenizers are.

    ``model_max_length`` (from tokenizer_config.json) is the default truncation length. Thread-safe:
    padding and truncation are settings of a `tokenizers` object, so every thread encodes with its
    own copy of the backend (made on its first call); ``self.backend`` itself is never reconfigured.
    """

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        backend: Backend,
        *,
        model_max_length: int | None = None,
        special_tokens: dict[str, str] | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        config: dict[str, Any] | None = None,
    ):
        self.backend = backend
        self.model_max_length = int(model_max_length) if model_max_length and model_max_length < _NO_LIMIT else None
        self.special_tokens = dict(special_tokens or {})
        for side, name in ((padding_side, "padding_side"), (truncation_side, "truncation_side")):
            if side not in ("right", "left"):
                raise ValueError(f"{name}: expected 'right' or 'left', got {side!r}")
        self.padding_side, self.truncation_side = padding_side, truncation_side
        self.config = dict(config or {})
        missing = [t for t in self.special_tokens.values() if backend.token_to_id(t) is None]
        if missing:  # transformers adds declared special tokens the file lacks
            backend.add_special_tokens(missing)
        unheld = sorted({n for n, t in self.special_tokens.items() if backend.token_to_id(t) is None})
        if unheld:
            raise ValueError(f"special tokens {unheld}: expected tokens the tokenizer can hold, got "
                             f"{[self.special_tokens[n] for n in unheld]}")
        # a tokenizer.json may carry padding/truncation settings; transformers ignores them too
        backend.no_padding()
        backend.no_truncation()
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:  # picklable for DataLoader workers
        state = dict(self.__dict__)
        del state["_local"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _encoder(self) -> Backend:
        """This thread's private copy of the backend, free to take this call's padding/truncation."""
        backend = getattr(self._local, "backend", None)
        if backend is None:
            backend = self._local.backend = Backend.from_str(self.backend.to_str())
        return backend

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                        default_class: str | None = None, **overrides: Any) -> Tokenizer:
        """Read tokenizer.json (or a sentencepiece model) plus tokenizer_config.json / special_tokens_map.json.

        ``overrides`` replace tokenizer_config.json entries (``model_max_length=77``); ``default_class``
        stands in for a missing ``tokenizer_class`` (AltCLIPProcessor passes "XLMRobertaTokenizer").
        """
        folder = Path(folder)
        config: dict[str, Any] = {}
        for name in (SPECIAL_FILE, CONFIG_FILE):  # tokenizer_config.json wins where both say something
            if (folder / name).is_file():
                fields = read_json_object(folder / name)
                _check_config(fields, folder / name)
                config.update(fields)
        _check_config(overrides, "from_pretrained")
        config.update(overrides)
        cls_name = config.get("tokenizer_class") or default_class or ""
        spm = next((folder / n for n in SPM_FILES if (folder / n).is_file()), None)
        if (folder / TOKENIZER_FILE).is_file():
            backend = _read_tokenizer_json(folder / TOKENIZER_FILE)
        elif spm is not None:
            backend = _converted_sentencepiece(spm, cache_dir)
            cls_name = cls_name or "XLMRobertaTokenizer"  # the only sentencepiece family we convert
        else:
            raise FileNotFoundError(f"{folder}: no {TOKENIZER_FILE} and no sentencepiece model ({', '.join(SPM_FILES)})")
        try:
            return cls._build(backend, cls_name, config)
        except ValueError as err:  # name the files the settings came from
            where = next((folder / n for n in (CONFIG_FILE, TOKENIZER_FILE) if (folder / n).is_file()), folder)
            raise ValueError(f"{where}: {err}") from err

    @classmethod
    def _build(cls, backend: Backend, cls_name: str, config: dict[str, Any]) -> Tokenizer:
        specials = {k: _token_str(config[k]) for k in SPECIAL_NAMES if config.get(k) is not None}
        if cls_name in XLMR_CLASSES:
            specials = {**XLMR_SPECIALS, **specials}
            if not isinstance(backend.model, Unigram):
                raise ValueError(f"tokenizer_class: {cls_name} expects a Unigram tokenizer.json, "
                                 f"got {type(backend.model).__name__}")
            xlmr_pipeline(backend, specials["bos_token"], specials["eos_token"], config.get("add_prefix_space", True))  # type: ignore[arg-type]
        return cls(
            backend,
            model_max_length=config.get("model_max_length"),
            special_tokens=specials,  # type: ignore[arg-type]
            padding_side=config.get("padding_side") or "right",
            truncation_side=config.get("truncation_side") or "right",
            config=config,
        )

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json (transformers reads all three)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(folder / TOKENIZER_FILE))
        config = {**self.config, **self.special_tokens, "padding_side": self.padding_side,
                  "truncation_side": self.truncation_side}
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length  # type: ignore[assignment]
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (folder / SPECIAL_FILE).write_text(json.dumps(self.special_tokens, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")

    # ---- vocabulary -----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def get_vocab(self) -> dict[str, int]:
        return self.backend.get_vocab(with_added_tokens=True)

    def _special_id(self, name: str) -> int | None:
        token = self.special_tokens.get(name)
        return None if token is None else self.backend.token_to_id(token)

    @property
    def all_special_tokens(self) -> list[str]:
        return list(dict.fromkeys(self.special_tokens.values()))

    @property
    def all_special_ids(self) -> list[int]:
        return [self.backend.token_to_id(t) for t in self.all_special_tokens]  # type: ignore[misc]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        unk = self._special_id("unk_token")
        one = lambda t: (i if (i := self.backend.token_to_id(t)) is not None else unk)  # noqa: E731
        return one(tokens) if isinstance(tokens, str) else [one(t) for t in tokens]  # type: ignore[misc, return-value]

    def convert_ids_to_tokens(self, ids: int | Sequence[int] | torch.Tensor,
                              skip_special_tokens: bool = False) -> str | list[str]:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if isinstance(ids, int):
            return self.backend.id_to_token(ids)  # type: ignore[return-value]
        special = set(self.all_special_ids) if skip_special_tokens else set()
        return [self.backend.id_to_token(i) for i in ids if i not in special]  # type: ignore[misc]

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False) -> list[str]:
        backend = self._encoder()
        backend.no_truncation()
        backend.no_padding()
        return backend.encode(text, pair, add_special_tokens=add_special_tokens).tokens

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True, **kwargs: Any) -> list[int]:
        """``input_ids`` of one text (or pair) as a list; ``kwargs`` as for ``__call__``."""
        return self(text, text_pair, add_special_tokens=add_special_tokens, return_tensors=None, **kwargs)["input_ids"]

    def decode(self, ids: int | Sequence[int] | torch.Tensor, skip_special_tokens: bool = False) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def batch_decode(self, ids: Sequence[Sequence[int]] | torch.Tensor, skip_special_tokens: bool = False) -> list[str]:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.backend.decode_batch([list(i) for i in ids], skip_special_tokens=skip_special_tokens)

    # ---- encoding -------------------------------------------------------------------------------
    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        *,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool | None = None,
        return_length: bool = False,
        padding_side: str | None = None,
        return_token_type_ids: bool | None = None,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        verbose: bool = True,
    ) -> dict[str, Any]:
        """Encode one text (or pair) or a batch, with transformers' arguments and defaults.

        ``padding_side`` ("right"/"left") overrides the tokenizer's for this call; ``token_type_ids``
        (all 0 for XLM-R), ``special_tokens_mask`` and ``offset_mapping`` are returned when asked for;
        ``verbose`` is accepted (errors here are raised, not logged).

        padding: False (default), True / "longest", "max_length" (``max_length`` or
        model_max_length). truncation: True / "longest_first", "only_first", "only_second" cut to
        ``max_length`` (or model_max_length); None truncates only when ``max_length`` is given
        without padding, as transformers does. return_tensors: None (lists), "pt" or "np".

        Returns:
            ``input_ids`` and ``attention_mask`` (+ ``length``): ``(batch, tokens)`` int64 with
            tensors, lists of ints for one text without them.
        """
        single = isinstance(text, str)
        texts = _check_texts(text, "text")
        pairs = None if text_pair is None else _check_texts(text_pair, "text_pair")
        if pairs is not None and (isinstance(text_pair, str) != single or len(pairs) != len(texts)):
            raise ValueError(f"text_pair: expected one pair per text ({len(texts)}), got {len(pairs)}")
        if padding not in _PADDING:
            raise ValueError(f"padding: expected True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if truncation not in _TRUNCATION:
            raise ValueError(f"truncation: expected True, False, 'longest_first', 'only_first' or 'only_second', "
                             f"got {truncation!r}")
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors: expected 'pt', 'np' or None, got {return_tensors!r}")
        side = self.padding_side if padding_side is None else padding_side
        if side not in ("right", "left"):
            raise ValueError(f"padding_side: expected 'right' or 'left', got {padding_side!r}")
        for name, value in (("max_length", max_length), ("pad_to_multiple_of", pad_to_multiple_of)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}: expected a positive int or None, got {value!r}")
        if truncation is None:  # transformers: max_length alone (no padding) means truncate
            truncation = max_length is not None and padding in (False, "do_not_pad")
        limit = max_length if max_length is not None else self.model_max_length
        if padding == "max_length" and limit is None:
            raise ValueError("padding: 'max_length' needs max_length (the tokenizer has no model_max_length)")
        backend = self._encoder()
        if truncation not in (False, "do_not_truncate") and limit is not None:
            added = backend.num_special_tokens_to_add(pairs is not None) if add_special_tokens else 0
            if limit <= added:
                raise ValueError(f"max_length: expected more than the {added} special tokens, got {limit}")
            strategy = "longest_first" if truncation is True else truncation
            backend.enable_truncation(limit, strategy=strategy, direction=self.truncation_side)
        else:
            backend.no_truncation()
        if padding in (True, "longest", "max_length"):
            if self.pad_token_id is None:  # type: ignore[attr-defined]
                raise ValueError("padding: the tokenizer has no pad_token; pass padding=False")
            backend.enable_padding(
                direction=side, pad_id=self.pad_token_id, pad_token=self.special_tokens["pad_token"],  # type: ignore[attr-defined]
                length=limit if padding == "max_length" else None, pad_to_multiple_of=pad_to_multiple_of,
            )
        else:
            backend.no_padding()
        inputs = texts if pairs is None else list(zip(texts, pairs))
        try:
            encodings = backend.encode_batch(inputs, add_special_tokens=add_special_tokens)
        except Exception as err:  # tokenizers raises bare Exceptions, e.g. only_first on a short first text
            raise ValueError(f"truncation: {truncation!r} to max_length={limit} is impossible here ({err})") from err
        out: dict[str, Any] = {"input_ids": [e.ids for e in encodings]}
        if return_token_type_ids:
            out["token_type_ids"] = [e.type_ids for e in encodings]
        if return_attention_mask is not False:
            out["attention_mask"] = [e.attention_mask for e in encodings]
        if return_special_tokens_mask:
            out["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
        if return_offsets_mapping:
            out["offset_mapping"] = [list(e.offsets) for e in encodings]  # (start, end) tuples, as transformers
        if return_length:
            out["length"] = [len(e.ids) for e in encodings]
        return _as_tensors(out, return_tensors, single)

    def pad(
        self,
        encoded_inputs: dict[str, Any] | Sequence[dict[str, Any]],
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
    ) -> dict[str, Any]:
        """Pad already encoded rows (a dict of lists, or a list of dicts) as ``__call__`` pads."""
        if isinstance(encoded_inputs, (list, tuple)):
            if not encoded_inputs or not all(isinstance(e, dict) for e in encoded_inputs):
                raise ValueError("encoded_inputs: expected a dict of lists or a non-empty list of dicts")
            encoded_inputs = {k: [e[k] for e in encoded_inputs] for k in encoded_inputs[0]}
        if not isinstance(encoded_inputs, dict) or "input_ids" not in encoded_inputs:
            raise ValueError(f"encoded_inputs: expected a dict with input_ids, got {type(encoded_inputs).__name__}")
        rows = encoded_inputs["input_ids"]
        rows = rows.tolist() if isinstance(rows, (torch.Tensor, np.ndarray)) else rows
        single = bool(rows) and isinstance(rows[0], int)
        rows = [list(rows)] if single else [list(r) for r in rows]
        masks = encoded_inputs.get("attention_mask")
        masks = masks.tolist() if isinstance(masks, (torch.Tensor, np.ndarray)) else masks
        masks = [[1] * len(r) for r in rows] if masks is None else ([list(masks)] if single else [list(m) for m in masks])
        if padding not in _PADDING:
            raise ValueError(f"padding: expected True, False, 'longest' or 'max_length', got {padding!r}")
        target = None
        if padding in (True, "longest"):
            target = max(map(len, rows), default=0)
        elif padding == "max_length":
            target = max_length if max_length is not None else self.model_max_length
            if target is None:
                raise ValueError("padding: 'max_length' needs max_length (the tokenizer has no model_max_length)")
        if target is not None:
            if pad_to_multiple_of:
                target = -(-target // pad_to_multiple_of) * pad_to_multiple_of
            pad_id = self.pad_token_id  # type: ignore[attr-defined]
            if pad_id is None:
                raise ValueError("padding: the tokenizer has no pad_token; pass padding=False")
            for r, m in zip(rows, masks):
                n = max(0, target - len(r))
                if self.padding_side == "right":
                    r.extend([pad_id] * n), m.extend([0] * n)
                else:
                    r[:0], m[:0] = [pad_id] * n, [0] * n
        out: dict[str, Any] = {"input_ids": rows}
        if return_attention_mask is not False:
            out["attention_mask"] = masks
        return _as_tensors(out, return_tensors, single)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, model_max_length={self.model_max_length}, "
                f"special_tokens={self.special_tokens})")


def _special_property(name: str) -> tuple[property, property]:
    token = property(lambda self: self.special_tokens.get(name), doc=f"the {name} string (None if unset)")
    token_id = property(lambda self: self._special_id(name), doc=f"the {name} id (None if unset)")
    return token, token_id


for _name in SPECIAL_NAMES:  # bos_token / bos_token_id ... mask_token / mask_token_id
    _token, _id = _special_property(_name)
    setattr(Tokenizer, _name, _token)
    setattr(Tokenizer, _name + "_id", _id)


def _check_texts(value: Any, name: str) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, Sequence) or not texts or not all(isinstance(t, str) for t in texts):
        got = type(value).__name__ if not isinstance(texts, Sequence) or not texts else [type(t).__name__ for t in texts][:5]
        raise ValueError(f"{name}: expected a string or a non-empty list of strings, got {got}")
    return list(texts)


def _as_tensors(out: dict[str, list], return_tensors: str | None, single: bool) -> dict[str, Any]:
    if return_tensors is None:
        return {k: v[0] for k, v in out.items()} if single else out
    if any(len({len(r) for r in v}) > 1 for v in out.values() if v and isinstance(v[0], list)):
        raise ValueError("return_tensors: rows have different lengths; pass padding=True (or return_tensors=None)")
    if return_tensors == "np":
        return BatchFeature({k: np.asarray(v, dtype=np.int64) for k, v in out.items()})
    return BatchFeature({k: torch.tensor(v, dtype=torch.long) for k, v in out.items()})


class XLMRobertaTokenizer(Tokenizer):
    """transformers' name: a folder without ``tokenizer_class`` is read as XLM-R (AltCLIP's text side)."""

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **kwargs: Any) -> Tokenizer:
        kwargs.setdefault("default_class", "XLMRobertaTokenizer")
        return super().from_pretrained(folder, **kwargs)


XLMRobertaTokenizerFast = XLMRobertaTokenizer
