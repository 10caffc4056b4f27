"""Old sentencepiece models (``sentencepiece.bpe.model``) read without sentencepiece and converted once
into a `tokenizers` Unigram with XLM-R's pipeline (``xlmr_pipeline``), cached by content hash."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as Backend
from tokenizers import decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram


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
    root = Path(cache_dir or os.environ.get("MEDIAFORMERS_CACHE", Path.home() / ".cache" / "mediaformers"))  # type: ignore[arg-type]
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


