"""config.json of wrong types or ranges: a CheckpointError naming the file and the field, never a traceback."""
import json

import pytest

import mediaformers as mf

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, image_size=32,
            num_frames=4, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
            decoder_intermediate_size=24)

BAD = [
    ({"hidden_size": "192"}, "hidden_size: expected an integer, got '192'"),
    ({"hidden_size": 192.5}, "hidden_size: expected an integer, got 192.5"),
    ({"hidden_size": True}, "hidden_size: expected an integer, got True"),
    ({"layer_norm_eps": "tiny"}, "layer_norm_eps: expected a finite number, got 'tiny'"),
    ({"layer_norm_eps": 0}, r"layer_norm_eps: expected a finite number in \(0.0, inf\], got 0"),
    ({"hidden_dropout_prob": 1.5}, r"hidden_dropout_prob: expected a finite number in \[0.0, 1.0\], got 1.5"),
    ({"image_size": [112]}, r"image_size: expected \[height, width\], got \[112\]"),
    ({"image_size": [[32], 32]}, r"image_size\[0\]: expected an integer, got \[32\]"),
    ({"id2label": ["cat", "dog"]}, r"id2label: expected dict\[int, str\] or null, got \['cat', 'dog'\]"),
    ({"id2label": {"zero": "cat"}}, "id2label: expected integer keys, got 'zero'"),
    ({"label2id": ["cat"]}, r"label2id: expected .* or null, got \['cat'\]"),  # values as given ("0"): transformers'
    ({"dtype": "float99"}, r"dtype: expected a torch dtype or its name \(\"float32\"\), got 'float99'"),
    ({"hidden_size": 0}, r"hidden_size: expected an integer in \[1, 16777216\], got 0"),
    ({"num_frames": -4}, r"num_frames: expected an integer in \[1, 16777216\], got -4"),
    ({"hidden_size": 1e9}, "hidden_size: expected an integer, got 1000000000.0"),
    ({"hidden_size": 10**9}, r"hidden_size: expected an integer in \[1, 16777216\], got 1000000000"),
    ({"num_hidden_layers": 1000000}, r"num_hidden_layers: expected an integer in \[1, 1024\], got 1000000"),
    ({"hidden_size": 30}, r"hidden_size: expected a multiple of num_attention_heads \(4\), got 30"),
    ({"decoder_hidden_size": 15}, r"decoder_hidden_size: expected a multiple of decoder_num_attention_heads"),
    ({"patch_size": 64}, r"patch grid: expected at least one patch per axis .* got grid \(2, 0, 0\)"),
    ({"hidden_act": 3}, "hidden_act: expected a string, got 3"),
    ({"hidden_act": "swishy"}, r"hidden_act: expected one of \[.*\], got 'swishy'"),
    ({"qkv_bias": "yes"}, "qkv_bias: expected true or false, got 'yes'"),
    ({"architectures": "VideoMAEModel"}, r"architectures: expected list\[str\] or null, got 'VideoMAEModel'"),
    ({"model_type": ["videomae"]}, r"model_type: expected (a string or null|'videomae'), got \['videomae'\]"),
    ({"problem_type": "ranking"}, "problem_type: expected one of"),
]


def _write(folder, data):
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(data))
    return folder


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("change", "message"), BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_field_names_file_and_field(tmp_path, change, message):
    model = mf.VideoMAEForVideoClassification(mf.VideoMAEConfig(**TINY))
    model.save_pretrained(tmp_path / "ckpt")
    data = {**json.loads((tmp_path / "ckpt" / "config.json").read_text()), **change}
    _write(tmp_path / "ckpt", data)
    with pytest.raises(mf.CheckpointError, match=r"config\.json: " + message):
        mf.from_pretrained(tmp_path / "ckpt")
    with pytest.raises(mf.CheckpointError, match=message):
        mf.VideoMAEForVideoClassification.from_pretrained(tmp_path / "ckpt")


@pytest.mark.parametrize("content", ["[]", "null", "3", '"videomae"', "{broken"])
def test_config_that_is_not_an_object(tmp_path, content):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(mf.CheckpointError, match=r"config\.json: expected a JSON object"):
        mf.VideoMAEConfig.from_pretrained(tmp_path)


def test_nested_config_fields_are_named_with_their_parent(tmp_path):
    with pytest.raises(ValueError, match="text_config.hidden_size: expected an integer, got 'x'"):
        mf.AltCLIPConfig.from_dict({"text_config": {"hidden_size": "x"}})
    with pytest.raises(ValueError, match=r"vision_config: expected AltCLIPVisionConfig or dict or null, got \[1\]"):
        mf.AltCLIPConfig.from_dict({"vision_config": [1]})


def test_python_configs_are_checked_too():
    with pytest.raises(ValueError, match="num_attention_heads: expected an integer in"):
        mf.VivitConfig(num_attention_heads=0)
    config = mf.VivitConfig(image_size=(32, 32), id2label={"0": "a"})  # what JSON and Python both allow
    assert config.image_size == [32, 32] and config.id2label == {0: "a"}


@pytest.mark.timeout(60)
def test_absurd_sizes_are_refused_before_anything_is_allocated(tmp_path):
    """Sizes within the schema's bounds but far beyond memory: the header shapes are checked against a
    meta-built model (strict), or the model's size against memory (strict=False), before allocating."""
    mf.VideoMAEForVideoClassification(mf.VideoMAEConfig(**TINY)).save_pretrained(tmp_path / "ckpt")
    data = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    _write(tmp_path / "ckpt", {**data, "hidden_size": 2**22, "intermediate_size": 2**22})
    with pytest.raises(mf.CheckpointError, match=r"mis-shaped .*checkpoint \[32, 3, 2, 16, 16\] vs model \[4194304"):
        mf.from_pretrained(tmp_path / "ckpt")
    with pytest.raises(mf.CheckpointError, match=r"config: expected a model that fits in memory .* GiB"):
        mf.from_pretrained(tmp_path / "ckpt", strict=False)


def test_a_fields_own_default_is_always_in_range():
    """Ranges come from field names; a field whose default lies outside its name's range (transformers'
    chunk_size_feed_forward=0) keeps the default valid, and only that much wider."""
    from dataclasses import dataclass

    from mediaformers.config import Config

    @dataclass(kw_only=True)
    class Some(Config):
        chunk_size_feed_forward: int = 0

    assert Some().chunk_size_feed_forward == 0 and Some(chunk_size_feed_forward=64).chunk_size_feed_forward == 64
    with pytest.raises(ValueError, match=r"chunk_size_feed_forward: expected an integer in \[0, 16777216\], got -1"):
        Some(chunk_size_feed_forward=-1)


def test_a_bad_override_is_the_callers_error_not_the_files(tmp_path):
    mf.VideoMAEForVideoClassification(mf.VideoMAEConfig(**TINY)).save_pretrained(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="^num_labels: expected an integer in") as err:
        mf.VideoMAEForVideoClassification.from_pretrained(tmp_path / "ckpt", num_labels=-2)
    assert not isinstance(err.value, mf.CheckpointError)
