"""A tiny AltCLIP checkpoint folder (random weights, a small trained tokenizer) for processor and task tests."""
import json
from pathlib import Path

import mediaformers as mf
from mediaformers.processors.altclip_processor import AltCLIPProcessor
from tests.parity import perturb
from tests.processors.test_tokenizer import XLMR_CONFIG, train_unigram

IMAGE_SIZE = 30


def make_folder(path: Path, seed: int = 0) -> Path:
    """config.json + model.safetensors + tokenizer files + preprocessor_config.json in ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    tok = train_unigram()
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({**XLMR_CONFIG, "model_max_length": 32}))
    (path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": IMAGE_SIZE},
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "do_center_crop": True, "resample": 3,
    }))
    text = dict(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=40, project_dim=24)
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                  image_size=IMAGE_SIZE, patch_size=10)
    model = perturb(mf.AltCLIPModel(mf.AltCLIPConfig(text_config=text, vision_config=vision, projection_dim=16)), seed)
    model.save_pretrained(path)
    return path


def load(path: Path):
    return mf.AltCLIPModel.from_pretrained(path), AltCLIPProcessor.from_pretrained(path)
