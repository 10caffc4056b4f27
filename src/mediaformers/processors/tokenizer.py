"""Text tokenization through the `tokenizers` library: a checkpoint's tokenizer.json, or an old
sentencepiece model converted once.

XLM-R tokenizers (AltCLIP's) are run exactly as transformers 5 runs ``XLMRobertaTokenizer``: it keeps
the vocabulary, the added tokens and a sentencepiece ``Precompiled`` normaliser from the file, and
rebuilds the rest (whitespace split + Metaspace pre-tokenizer, ``<s> A </s>`` template). Any other
tokenizer.json runs as written.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer as Backend
from tokenizers import decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

TOKENIZER_FILE = "tokenizer.json"
SPM_FILES = ("sentencepiece.bpe.model", "spiece.model", "tokenizer.model")
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_FILE = "special_tokens_map.json"
XLMR_CLASSES = {"XLMRobertaTokenizer", "XLMRobertaTokenizerFast"}
SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
XLMR_SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                 "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
_NO_LIMIT = 10**12  # transformers writes 1e30 for "no limit"; anything this big means the same


# ---- sentencepiece model -> tokenizers --------------------------------------------------------
def _fields(buf: bytes):
    """Yield (field number, wire type, value) from one protobuf message; enough for sentencepiece's model."""
    i, n = 0, len(buf)

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    while i < n:
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            value: Any = varint()
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            size = varint()
            value, i = buf[i : i + size], i + size
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"sentencepiece model: unsupported protobuf wire type {wire}; is this a .model file?")
        if i > n:
            raise ValueError("sentencepiece model: truncated protobuf message; is this a .model file?")
        yield number, wire, value


def read_sentencepiece(path: str | os.PathLike) -> dict[str, Any]:
    """The parts of a sentencepiece ModelProto a Unigram tokenizer needs: pieces, scores, charsmap, unk id."""
    try:
        return _read_sentencepiece(Path(path).read_bytes(), path)
    except (IndexError, struct.error, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable sentencepiece model ({err})") from err


def _read_sentencepiece(data: bytes, path) -> dict[str, Any]:
    pieces: list[tuple[str, float]] = []
    charsmap, model_type, unk_id = b"", 1, 0
    for number, _, value in _fields(data):
        if number == 1:  # SentencePiece {1: piece, 2: score (float), 3: type}
            piece, score = "", 0.0
            for f, _, v in _fields(value):
                if f == 1:
                    piece = v.decode("utf-8")
                elif f == 2:
                    score = struct.unpack("<f", v)[0]
            pieces.append((piece, score))
        elif number == 2:  # TrainerSpec {3: model_type, 40: unk_id}
            for f, _, v in _fields(value):
                if f == 3:
                    model_type = v
                elif f == 40:
                    unk_id = v
        elif number == 3:  # NormalizerSpec {2: precompiled_charsmap}
            for f, _, v in _fields(value):
                if f == 2:
                    charsmap = bytes(v)
    if model_type != 1:
        raise ValueError(f"{path}: a sentencepiece model of type {model_type}; only Unigram (1) is supported")
    if not pieces:
        raise ValueError(f"{path}: no pieces found; expected a sentencepiece .model file")
    return {"pieces": pieces, "charsmap": charsmap, "unk_id": unk_id}


def xlmr_from_sentencepiece(path: str | os.PathLike) -> Backend:
    """fairseq's XLM-R vocabulary from the sentencepiece model: <s> <pad> </s> <unk>, pieces[3:], <mask>.

    (sentencepiece puts <unk> <s> </s> first; fairseq shifted every id by one to fit <pad>.)
    """
    spm = read_sentencepiece(path)
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + spm["pieces"][3:] + [("<mask>", 0.0)]
    backend = Backend(Unigram(vocab, 3, False))
    if spm["charsmap"]:
        backend.normalizer = normalizers.Precompiled(spm["charsmap"])
    backend.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return backend


def _converted_sentencepiece(path: Path, cache_dir: str | os.PathLike | None) -> Backend:
    """Convert once; later loads read the cached tokenizer.json (keyed by the model file's hash)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    root = Path(cache_dir or os.environ.get("MEDIAFORMERS_CACHE", Path.home() / ".cache" / "mediaformers"))
    cached = root / "tokenizers" / f"{digest}.json"
    if cached.is_file():
        return Backend.from_file(str(cached))
    backend = xlmr_from_sentencepiece(path)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        backend.save(str(tmp))
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only cache only costs a conversion next time
    return backend


# ---- the tokenizer ----------------------------------------------------------------------------
def _token_str(value: Any) -> str | None:
    if isinstance(value, dict):  # AddedToken serialised as {"content": ...}
        return value.get("content")
    return value


def xlmr_pipeline(backend: Backend, bos: str, eos: str, add_prefix_space: bool = True) -> Backend:
    """Give a Unigram backend transformers' XLMRobertaTokenizer pipeline (see the module docstring)."""
    norm = backend.normalizer
    keep = None
    if isinstance(norm, normalizers.Precompiled):
        keep = norm
    elif isinstance(norm, normalizers.Sequence):
        found = [n for n in json.loads(backend.to_str())["normalizer"]["normalizers"] if n["type"] == "Precompiled"]
        if found:
            keep = normalizers.Precompiled(base64.b64decode(found[0]["precompiled_charsmap"]))
    backend.normalizer = keep
    scheme = "always" if add_prefix_space else "never"
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme)]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=scheme)
    bos_id, eos_id = backend.token_to_id(bos), backend.token_to_id(eos)
    if bos_id is None or eos_id is None:
        raise ValueError(f"tokenizer: the vocabulary has no {bos!r} / {eos!r} (bos_token / eos_token)")
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}", special_tokens=[(bos, bos_id), (eos, eos_id)]
    )
    return backend


class Tokenizer:
    """Text -> ``input_ids`` and ``attention_mask`` tensors, batched, padded and truncated.

    ``model_max_length`` (from tokenizer_config.json) is the default truncation length.
    """

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
        self.model_max_length = model_max_length if model_max_length and model_max_length < _NO_LIMIT else None
        self.special_tokens = dict(special_tokens or {})
        for side, name in ((padding_side, "padding_side"), (truncation_side, "truncation_side")):
            if side not in ("right", "left"):
                raise ValueError(f"{name}: expected 'right' or 'left', got {side!r}")
        self.padding_side, self.truncation_side = padding_side, truncation_side
        self.config = dict(config or {})
        missing = [t for t in self.special_tokens.values() if backend.token_to_id(t) is None]
        if missing:  # transformers adds declared special tokens the file lacks
            backend.add_special_tokens(missing)

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                        default_class: str | None = None, **overrides: Any) -> "Tokenizer":
        """Read tokenizer.json (or a sentencepiece model) plus tokenizer_config.json / special_tokens_map.json.

        ``overrides`` replace tokenizer_config.json entries (``model_max_length=77``); ``default_class``
        stands in for a missing ``tokenizer_class`` (AltCLIPProcessor passes "XLMRobertaTokenizer").
        """
        folder = Path(folder)
        config: dict[str, Any] = {}
        for name in (SPECIAL_FILE, CONFIG_FILE):  # tokenizer_config.json wins where both say something
            if (folder / name).is_file():
                config.update(json.loads((folder / name).read_text(encoding="utf-8")))
        config.update(overrides)
        cls_name = config.get("tokenizer_class") or default_class or ""
        spm = next((folder / n for n in SPM_FILES if (folder / n).is_file()), None)
        if (folder / TOKENIZER_FILE).is_file():
            backend = Backend.from_file(str(folder / TOKENIZER_FILE))
        elif spm is not None:
            backend = _converted_sentencepiece(spm, cache_dir)
            cls_name = cls_name or "XLMRobertaTokenizer"  # the only sentencepiece family we convert
        else:
            raise FileNotFoundError(f"{folder}: no {TOKENIZER_FILE} and no sentencepiece model ({', '.join(SPM_FILES)})")
        xlmr = cls_name in XLMR_CLASSES
        specials = {k: _token_str(config[k]) for k in SPECIAL_NAMES if config.get(k) is not None}
        if xlmr:
            specials = {**XLMR_SPECIALS, **specials}
            if not isinstance(backend.model, Unigram):
                raise ValueError(f"{folder}: tokenizer_class {cls_name} expects a Unigram tokenizer.json")
            xlmr_pipeline(backend, specials["bos_token"], specials["eos_token"], config.get("add_prefix_space", True))
        return cls(
            backend,
            model_max_length=config.get("model_max_length"),
            special_tokens=specials,
            padding_side=config.get("padding_side", "right"),
            truncation_side=config.get("truncation_side", "right"),
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
            config["model_max_length"] = self.model_max_length
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (folder / SPECIAL_FILE).write_text(json.dumps(self.special_tokens, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")

    # ---- vocabulary -----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def _special_id(self, name: str) -> int | None:
        token = self.special_tokens.get(name)
        return None if token is None else self.backend.token_to_id(token)

    @property
    def pad_token_id(self) -> int | None:
        return self._special_id("pad_token")

    @property
    def bos_token_id(self) -> int | None:
        return self._special_id("bos_token")

    @property
    def eos_token_id(self) -> int | None:
        return self._special_id("eos_token")

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        unk = self._special_id("unk_token")
        one = lambda t: (i if (i := self.backend.token_to_id(t)) is not None else unk)  # noqa: E731
        return one(tokens) if isinstance(tokens, str) else [one(t) for t in tokens]

    def tokenize(self, text: str) -> list[str]:
        return self.backend.encode(text, add_special_tokens=False).tokens

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def batch_decode(self, ids: Sequence[Sequence[int]] | torch.Tensor, skip_special_tokens: bool = True) -> list[str]:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.backend.decode_batch([list(i) for i in ids], skip_special_tokens=skip_special_tokens)

    # ---- encoding -------------------------------------------------------------------------------
    def __call__(
        self,
        text: str | Sequence[str],
        *,
        padding: bool | str = True,
        truncation: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        add_special_tokens: bool = True,
        return_tensors: str | None = "pt",
    ) -> dict[str, Any]:
        """Encode one text or a batch -> {"input_ids", "attention_mask"}, (batch, tokens) int64 tensors.

        padding: True / "longest" pads to the longest text, "max_length" to ``max_length`` (or
        model_max_length), False leaves rows ragged (only with ``return_tensors=None``).
        truncation: True cuts to ``max_length`` (or model_max_length), keeping <s> ... </s>.
        """
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, Sequence) or not texts or not all(isinstance(t, str) for t in texts):
            got = type(text).__name__ if not isinstance(texts, Sequence) or not texts else [type(t).__name__ for t in texts][:5]
            raise ValueError(f"text: expected a string or a list of strings, got {got}")
        if padding not in (True, False, "longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding: expected True, False, 'longest' or 'max_length', got {padding!r}")
        if return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors: expected 'pt' or None, got {return_tensors!r}")
        limit = max_length if max_length is not None else self.model_max_length
        if padding == "max_length" and limit is None:
            raise ValueError("padding='max_length' needs max_length (the tokenizer has no model_max_length)")
        if truncation and limit is not None:
            added = self.backend.num_special_tokens_to_add(False) if add_special_tokens else 0
            if limit <= added:
                raise ValueError(f"max_length: {limit} leaves no room for text after {added} special tokens")
            self.backend.enable_truncation(limit, strategy="longest_first", direction=self.truncation_side)
        else:
            self.backend.no_truncation()
        pad_id = self.pad_token_id
        if padding in (True, "longest", "max_length"):
            if pad_id is None:
                raise ValueError("padding: the tokenizer has no pad_token; pass padding=False")
            self.backend.enable_padding(
                direction=self.padding_side, pad_id=pad_id, pad_token=self.special_tokens["pad_token"],
                length=limit if padding == "max_length" else None, pad_to_multiple_of=pad_to_multiple_of,
            )
        else:
            self.backend.no_padding()
        encodings = self.backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        ids = [e.ids for e in encodings]
        mask = [e.attention_mask for e in encodings]
        if return_tensors is None:
            return {"input_ids": ids, "attention_mask": mask}
        if len({len(i) for i in ids}) > 1:
            raise ValueError("padding=False gives rows of different lengths; pass return_tensors=None or pad")
        return {"input_ids": torch.tensor(ids, dtype=torch.long), "attention_mask": torch.tensor(mask, dtype=torch.long)}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, model_max_length={self.model_max_length}, "
                f"special_tokens={self.special_tokens})")
