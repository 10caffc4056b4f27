"""Random JSON at every processor and tokenizer file field: the only outcomes are a loaded processor
or a ValueError that names the file (issue 10). Files start from what transformers writes."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediaformers.processors.altclip_processor import AltCLIPProcessor
from mediaformers.processors.ast_features import ASTFeatureExtractor
from mediaformers.processors.clip_image_processor import CLIPImageProcessor
from mediaformers.processors.tokenizer import Tokenizer
from mediaformers.processors.tvlt_audio import TvltFeatureExtractor
from mediaformers.processors.video_processors import (
    TvltImageProcessor,
    VideoMAEImageProcessor,
    VivitImageProcessor,
)
from tests.processors.test_tokenizer import XLMR_CONFIG, train_unigram

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=8,
)
CLASSES = [VideoMAEImageProcessor, VivitImageProcessor, TvltImageProcessor, CLIPImageProcessor,
           ASTFeatureExtractor, TvltFeatureExtractor]
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load_or_clear_error(load, path: Path):
    try:
        return load()
    except ValueError as err:
        assert path.name in str(err), f"error does not name the file: {err}"
        return None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@FUZZ
@given(data=st.data())
def test_preprocessor_fields(cls, data):
    base = cls().to_dict()
    field = data.draw(st.sampled_from(sorted(base) + ["size", "crop_size", "patch_size", "image_mean"]))
    value = data.draw(JSON)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "preprocessor_config.json"
        path.write_text(json.dumps({**base, field: value}))
        _load_or_clear_error(lambda: cls.from_pretrained(tmp), path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@FUZZ
@given(value=JSON)
def test_whole_preprocessor_file(cls, value):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "preprocessor_config.json"
        path.write_text(json.dumps(value))
        _load_or_clear_error(lambda: cls.from_pretrained(tmp), path)


@pytest.mark.parametrize("content,message", [
    ("[]", "preprocessor_config.json: expected a JSON object, got list"),
    ("{oops", "preprocessor_config.json: expected a JSON object, got invalid JSON"),
    ('{"size": "big"}', "preprocessor_config.json: size: expected a positive int"),
    ('{"do_normalize": "yes"}', "preprocessor_config.json: VivitImageProcessor: do_normalize: expected true or false, got 'yes'"),
    ('{"num_frames": 0}', "num_frames: expected a positive int, got 0"),
])
def test_preprocessor_errors_name_file_and_field(tmp_path, content, message):
    (tmp_path / "preprocessor_config.json").write_text(content)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        VivitImageProcessor.from_pretrained(tmp_path)


def test_feature_extractor_errors_name_file_and_field(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"max_length": "long", "feature_extractor_type":
                                                                   "ASTFeatureExtractor"}))
    with pytest.raises(ValueError, match="preprocessor_config.json: ASTFeatureExtractor: max_length: expected a "
                                         "positive int, got 'long'"):
        ASTFeatureExtractor.from_pretrained(tmp_path)
    (tmp_path / "processor_config.json").write_text(json.dumps({"image_processor": [1]}))
    (tmp_path / "preprocessor_config.json").unlink()
    with pytest.raises(ValueError, match="processor_config.json: image_processor: expected a JSON object, got list"):
        CLIPImageProcessor.from_pretrained(tmp_path)


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok")
    train_unigram().save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps(XLMR_CONFIG))
    return path


@pytest.mark.timeout(120)
@FUZZ
@given(field=st.sampled_from(sorted(XLMR_CONFIG) + ["add_prefix_space", "padding_side", "truncation_side", "cls_token",
                                                    "sep_token"]), value=JSON)
def test_tokenizer_config_fields(tokenizer_folder, field, value):
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("tokenizer.json",):
            shutil.copy(tokenizer_folder / name, Path(tmp) / name)
        path = Path(tmp) / "tokenizer_config.json"
        path.write_text(json.dumps({**XLMR_CONFIG, field: value}))
        tok = _load_or_clear_error(lambda: Tokenizer.from_pretrained(tmp), path)
        if tok is not None:
            tok(["a photo of a cat", "x"], padding=True)  # a loaded tokenizer works


@pytest.mark.timeout(120)
@FUZZ
@given(field=st.sampled_from(["model", "normalizer", "pre_tokenizer", "post_processor", "decoder", "added_tokens",
                              "truncation", "padding", "version"]), value=JSON)
def test_tokenizer_json_fields(tokenizer_folder, field, value):
    content = json.loads((tokenizer_folder / "tokenizer.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenizer.json"
        path.write_text(json.dumps({**content, field: value}))
        (Path(tmp) / "tokenizer_config.json").write_text(json.dumps(XLMR_CONFIG))
        tok = _load_or_clear_error(lambda: Tokenizer.from_pretrained(tmp), path)
        if tok is not None:
            tok(["a photo of a cat", "x"], padding=True)


def test_altclip_processor_reports_the_bad_file(tmp_path, tokenizer_folder):
    shutil.copy(tokenizer_folder / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**XLMR_CONFIG, "model_max_length": "long"}))
    with pytest.raises(ValueError, match="tokenizer_config.json: model_max_length: expected a positive int, got 'long'"):
        AltCLIPProcessor.from_pretrained(tmp_path)
