"""Tokenizer parity with transformers' XLM-R tokenizer on a small multilingual Unigram vocabulary."""
import json

import pytest
import torch
import transformers as tf
from tokenizers import (
    Regex,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from tokenizers import Tokenizer as Backend

from mediaformers.processors.tokenizer import Tokenizer, read_sentencepiece

CORPUS = [
    "a photo of a cat", "a photo of a dog on the grass", "two people riding bicycles in the city",
    "一只猫的照片", "一只狗在草地上", "两个人在城市里骑自行车",
    "фотография кошки", "собака на траве", "صورة قطة", "كلب على العشب",
    "Ein Foto einer Katze", "une photo d'un chat 🐱", "un perro en la hierba 🐶", "猫と犬の写真です",
    "고양이 사진", "ภาพแมว", "Ünïcödé àccents façade naïve", "numbers 123 4567 and symbols #$%",
]
TEXTS = [
    "a photo of a cat", "一只猫的照片", "фотография собаки", "صورة كلب", "🐱🐶 emoji", "", "   ",
    "two  spaces\tand a tab\nnewline", " leading and trailing ", "ＦＵＬＬ ｗｉｄｔｈ", "unseen ✓ 𝔘 words",
    "a <mask> in the text", "Ünïcödé naïve façade", "A much longer sentence about cats and dogs in the city " * 3,
]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def train_unigram(normalizer=None) -> Backend:
    tok = Backend(models.Unigram())
    tok.normalizer = normalizer or normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(" {2,}"), "▁")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=SPECIALS, unk_token="<unk>", shrinking_factor=0.75)
    tok.train_from_iterator(CORPUS * 5, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return tok


def write_folder(path, backend: Backend, config: dict | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    backend.save(str(path / "tokenizer.json"))
    if config is not None:
        (path / "tokenizer_config.json").write_text(json.dumps(config))


XLMR_CONFIG = {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512, "bos_token": "<s>",
               "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}


@pytest.fixture(scope="module")
def xlmr_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("xlmr")
    write_folder(path, train_unigram(), XLMR_CONFIG)
    return path


def assert_same(ours: dict, theirs, texts) -> None:
    for key in ("input_ids", "attention_mask"):
        assert torch.equal(ours[key], theirs[key]), f"{key} differ for {texts!r}:\n{ours[key]}\n{theirs[key]}"


@pytest.mark.parametrize("text", TEXTS)
def test_single_texts_match(xlmr_folder, text):
    ours, ref = Tokenizer.from_pretrained(xlmr_folder), tf.AutoTokenizer.from_pretrained(xlmr_folder)
    assert type(ref).__name__ == "XLMRobertaTokenizer"
    assert ours.encode(text) == ref(text)["input_ids"] == ours(text)["input_ids"]
    assert_same(ours(text, return_tensors="pt"), ref(text, return_tensors="pt"), text)
    ids = ours.encode(text)
    assert ours.decode(ids) == ref.decode(ids)  # both keep special tokens by default
    assert ours.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True)
    assert ours.convert_ids_to_tokens(ids) == ref.convert_ids_to_tokens(ids)
    assert ours.tokenize(text) == ref.tokenize(text)


@pytest.mark.parametrize("max_length", [None, 4, 9, 16])
@pytest.mark.parametrize("padding", [True, "max_length"])
def test_padded_truncated_batches_match(xlmr_folder, max_length, padding):
    ours, ref = Tokenizer.from_pretrained(xlmr_folder), tf.AutoTokenizer.from_pretrained(xlmr_folder)
    if padding == "max_length" and max_length is None:
        max_length = 24
    got = ours(TEXTS, padding=padding, truncation=True, max_length=max_length, return_tensors="pt")
    want = ref(TEXTS, padding=padding, truncation=True, max_length=max_length, return_tensors="pt")
    assert_same(got, want, TEXTS)
    assert got["input_ids"].dtype == torch.long
    if max_length is not None:
        assert got["input_ids"].shape[1] <= max_length and (got["input_ids"][:, 0] == 0).all()


def test_default_truncation_to_model_max_length(tmp_path):
    write_folder(tmp_path, train_unigram(), {**XLMR_CONFIG, "model_max_length": 10})
    ours = Tokenizer.from_pretrained(tmp_path)
    ref = tf.AutoTokenizer.from_pretrained(tmp_path)
    got = ours(TEXTS, padding=True, truncation=True, return_tensors="pt")  # truncate to model_max_length
    assert got["input_ids"].shape[1] == 10
    assert_same(got, ref(TEXTS, padding=True, truncation=True, return_tensors="pt"), TEXTS)
    assert Tokenizer.from_pretrained(tmp_path, model_max_length=77).model_max_length == 77


def test_tokenizer_json_runs_as_written_without_tokenizer_class(tmp_path):
    """Without tokenizer_class, transformers (TokenizersBackend) and we run the file's own pipeline."""
    write_folder(tmp_path, train_unigram(), {"pad_token": "<pad>", "model_max_length": 512})
    ours, ref = Tokenizer.from_pretrained(tmp_path), tf.AutoTokenizer.from_pretrained(tmp_path)
    assert type(ref).__name__ == "TokenizersBackend"
    assert_same(ours(TEXTS, padding=True, truncation=True, return_tensors="pt"),
                ref(TEXTS, padding=True, truncation=True, return_tensors="pt"), TEXTS)
    # ...and the XLM-R class rebuilds the pipeline (NFKC dropped): the full-width text differs.
    xlmr = Tokenizer.from_pretrained(tmp_path, default_class="XLMRobertaTokenizer")
    assert xlmr.encode("ＦＵＬＬ") != ours.encode("ＦＵＬＬ")


def test_save_round_trip(xlmr_folder, tmp_path):
    ours = Tokenizer.from_pretrained(xlmr_folder)
    ours.save_pretrained(tmp_path)
    again = Tokenizer.from_pretrained(tmp_path)
    ref = tf.AutoTokenizer.from_pretrained(tmp_path)
    kw = dict(padding=True, truncation=True, return_tensors="pt")
    assert_same(again(TEXTS, **kw), ours(TEXTS, **kw), TEXTS)
    assert_same(again(TEXTS, **kw), ref(TEXTS, **kw), TEXTS)
    assert again.pad_token_id == 1 and again.model_max_length == 512


@pytest.fixture(scope="module")
def spm_folder(tmp_path_factory):
    spm = pytest.importorskip("sentencepiece")
    path = tmp_path_factory.mktemp("spm")
    corpus = path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS * 5), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(path / "sentencepiece.bpe"), vocab_size=200, model_type="unigram",
        character_coverage=1.0, minloglevel=2, hard_vocab_limit=False,
    )
    corpus.unlink()
    (path / "sentencepiece.bpe.vocab").unlink()
    (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "XLMRobertaTokenizer",
                                                            "model_max_length": 512}))
    return path


def test_sentencepiece_model_converted_once(spm_folder, tmp_path):
    spm = pytest.importorskip("sentencepiece")
    ours = Tokenizer.from_pretrained(spm_folder, cache_dir=tmp_path)
    ref = tf.AutoTokenizer.from_pretrained(spm_folder)
    kw = dict(padding=True, truncation=True, return_tensors="pt")
    assert_same(ours(TEXTS, **kw), ref(TEXTS, **kw), TEXTS)
    # The proto reader agrees with sentencepiece itself; ids are fairseq's (shifted by one).
    sp = spm.SentencePieceProcessor(model_file=str(spm_folder / "sentencepiece.bpe.model"))
    pieces = read_sentencepiece(spm_folder / "sentencepiece.bpe.model")["pieces"]
    assert [p for p, _ in pieces] == [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert ours.encode("a photo of a cat", add_special_tokens=False) == [i + 1 for i in sp.encode("a photo of a cat")]
    cached = list((tmp_path / "tokenizers").glob("*.json"))
    assert len(cached) == 1
    assert_same(Tokenizer.from_pretrained(spm_folder, cache_dir=tmp_path)(TEXTS, **kw), ours(TEXTS, **kw), TEXTS)
    # Saved as tokenizer.json (Precompiled inside a normaliser Sequence), transformers still agrees.
    ours.save_pretrained(tmp_path / "saved")
    ref2 = tf.AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert_same(Tokenizer.from_pretrained(tmp_path / "saved")(TEXTS, **kw), ref2(TEXTS, **kw), TEXTS)


def test_bad_inputs(xlmr_folder, tmp_path):
    tok = Tokenizer.from_pretrained(xlmr_folder)
    with pytest.raises(ValueError, match=r"text: expected a string or a non-empty list of strings, got \['str', 'int'\]"):
        tok(["ok", 3])
    with pytest.raises(ValueError, match="text: expected a string or a non-empty list of strings"):
        tok([])
    with pytest.raises(ValueError, match="padding: expected"):
        tok("x", padding="longestt")
    with pytest.raises(ValueError, match="max_length: expected more than the 2 special tokens, got 2"):
        tok("x", max_length=2)
    with pytest.raises(ValueError, match="return_tensors: rows have different lengths; pass padding=True"):
        tok(["a", "a photo of a cat"], return_tensors="pt")
    with pytest.raises(ValueError, match="return_tensors: expected 'pt', 'np' or None, got 'tf'"):
        tok("a", return_tensors="tf")
    with pytest.raises(ValueError, match=r"text_pair: expected one pair per text \(2\), got 1"):
        tok(["a", "b"], ["c"])
    assert tok(["a", "a photo of a cat"], padding=False, return_tensors=None)["input_ids"][0] == tok.encode("a")
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "sentencepiece.bpe.model").write_bytes(b"\x0f\x0f\x0f")
    with pytest.raises(ValueError, match="sentencepiece"):
        Tokenizer.from_pretrained(tmp_path, cache_dir=tmp_path)


# ---- transformers' call options, same inputs through both ------------------------------------------
PAIRS = ["a dog", "", "一只猫", "a much longer second sentence about a cat on the grass in the city"]
CALLS = [
    {},
    {"return_tensors": "np", "padding": True},
    {"padding": "longest", "return_length": True},
    {"max_length": 6},  # truncates although truncation is not given (transformers does too)
    {"padding": "max_length", "max_length": 20, "return_attention_mask": False},
    {"padding": True, "pad_to_multiple_of": 8, "return_tensors": "pt"},
    {"truncation": "only_first", "max_length": 12, "padding": True},
    {"truncation": "longest_first", "max_length": 9},
    {"add_special_tokens": False, "padding": True},
    {"padding": True, "padding_side": "left", "return_tensors": "pt"},
    {"return_token_type_ids": True, "padding": True},
    {"return_special_tokens_mask": True, "return_offsets_mapping": True},
]


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else value


@pytest.mark.parametrize("kwargs", CALLS)
@pytest.mark.parametrize("pairs", [False, True])
def test_call_options_match(xlmr_folder, kwargs, pairs):
    ours, ref = Tokenizer.from_pretrained(xlmr_folder), tf.AutoTokenizer.from_pretrained(xlmr_folder)
    args = (TEXTS[:4], PAIRS) if pairs else (TEXTS[:4],)
    try:
        want = ref(*args, **kwargs)
    except Exception:  # e.g. only_first cannot cut enough: we must refuse too
        with pytest.raises(ValueError):
            ours(*args, **kwargs)
        return
    got = ours(*args, **kwargs)
    assert sorted(got) == sorted(k for k in want if k != "token_type_ids" or kwargs.get("return_token_type_ids"))
    for key in got:
        assert type(got[key]).__module__.split(".")[0] == type(want[key]).__module__.split(".")[0], key
        assert _plain(got[key]) == _plain(want[key]), key


def test_single_text_and_pair_shapes_match(xlmr_folder):
    ours, ref = Tokenizer.from_pretrained(xlmr_folder), tf.AutoTokenizer.from_pretrained(xlmr_folder)
    for args in [("a cat",), ("a cat", "a dog"), (["a cat"], ["a dog"])]:
        assert ours(*args)["input_ids"] == ref(*args)["input_ids"]
        assert ours(*args, return_tensors="pt")["input_ids"].shape == ref(*args, return_tensors="pt")["input_ids"].shape
        assert ours.encode(*args) == ref.encode(*args)


def test_vocabulary_and_special_tokens_match(xlmr_folder):
    ours, ref = Tokenizer.from_pretrained(xlmr_folder), tf.AutoTokenizer.from_pretrained(xlmr_folder)
    assert ours.get_vocab() == ref.get_vocab() and len(ours) == len(ref)
    for name in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{name}_token") == getattr(ref, f"{name}_token"), name
        assert getattr(ours, f"{name}_token_id") == getattr(ref, f"{name}_token_id"), name
    assert sorted(ours.all_special_ids) == sorted(ref.all_special_ids)
    tokens = ref.tokenize("a photo of a cat") + ["<mask>", "never-seen-token"]
    assert ours.convert_tokens_to_ids(tokens) == ref.convert_tokens_to_ids(tokens)
    assert ours.convert_tokens_to_ids("<pad>") == ref.convert_tokens_to_ids("<pad>")
    assert ours.model_input_names == ref.model_input_names
    ids = ours(TEXTS[:3], padding=True, return_tensors="pt")["input_ids"]
    assert ours.batch_decode(ids) == ref.batch_decode(ids)
    assert ours.batch_decode(ids, skip_special_tokens=True) == ref.batch_decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("kwargs", [{}, {"padding": "max_length", "max_length": 30}, {"return_tensors": "pt"},
                                    {"pad_to_multiple_of": 16, "return_tensors": "np"}])
def test_pad_matches(xlmr_folder, kwargs):
    ours, ref = Tokenizer.from_pretrained(xlmr_folder), tf.AutoTokenizer.from_pretrained(xlmr_folder)
    encoded = ref(TEXTS[:5])
    want = ref.pad(dict(encoded), **kwargs)
    for given in (dict(encoded), [dict(zip(encoded, row)) for row in zip(*encoded.values())]):
        got = ours.pad(given, **kwargs)
        assert {k: _plain(v) for k, v in got.items()} == {k: _plain(v) for k, v in want.items()}


@pytest.mark.timeout(60)
def test_threads_with_different_settings_do_not_interfere(xlmr_folder):
    """Each thread pads/truncates its own way at the same time; every result equals the serial one."""
    from concurrent.futures import ThreadPoolExecutor

    tok = Tokenizer.from_pretrained(xlmr_folder)
    settings = [dict(padding="max_length", max_length=24), dict(max_length=5), dict(padding=True), {}]
    expected = [tok(TEXTS, **kw) for kw in settings]

    def work(i: int):
        return i % len(settings), tok(TEXTS, **settings[i % len(settings)])

    with ThreadPoolExecutor(8) as pool:
        for i, got in pool.map(work, range(200)):
            assert got == expected[i]
    assert tok(TEXTS) == expected[3]  # the creating thread's settings are untouched too


# ---- malformed files: a ValueError naming the file and field ---------------------------------------
@pytest.mark.parametrize("name,content,message", [
    ("tokenizer.json", "{not json", r"tokenizer.json: expected a JSON object, got invalid JSON"),
    ("tokenizer.json", "[]", r"tokenizer.json: expected a JSON object, got list"),
    ("tokenizer.json", '{"model": {"type": "Unigram", "vocab": 3}}', r"tokenizer.json: not a tokenizer.json"),
    ("tokenizer_config.json", '{"model_max_length": "long"}',
     r"tokenizer_config.json: model_max_length: expected a positive int, got 'long'"),
    ("tokenizer_config.json", '{"model_max_length": -3}', r"model_max_length: expected a positive int, got -3"),
    ("tokenizer_config.json", '{"padding_side": 1}', r"tokenizer_config.json: padding_side: expected a string, got 1"),
    ("tokenizer_config.json", '{"pad_token": ["<pad>"]}', r"pad_token: expected a string or \{'content'"),
    ("tokenizer_config.json", '"text"', r"tokenizer_config.json: expected a JSON object, got str"),
    ("special_tokens_map.json", '{"eos_token": 5}', r"special_tokens_map.json: eos_token: expected a string"),
])
def test_malformed_files_name_file_and_field(tmp_path, name, content, message):
    write_folder(tmp_path, train_unigram(), XLMR_CONFIG)
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        Tokenizer.from_pretrained(tmp_path)


def test_an_empty_special_token_is_refused_naming_the_file(tmp_path):
    """tokenizers cannot add an empty token, so it would have no id and padding would fail later (found by
    the config fuzz test): refused when the folder is read."""
    train_unigram().save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**XLMR_CONFIG, "pad_token": ""}))
    with pytest.raises(ValueError, match=r"tokenizer_config.json: pad_token: expected a non-empty token, got ''"):
        Tokenizer.from_pretrained(tmp_path)
