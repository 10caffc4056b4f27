"""VideoMAE: our names -> transformers' (legacy layout, which save_pretrained writes)."""
from .convert import Converter, vit_layer_rules

CONVERTER = Converter(
    [
        *vit_layer_rules(r"decoder\.blocks", "decoder.decoder_layers"),
        *vit_layer_rules(r"encoder\.blocks", "encoder.layer"),
        (r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embeddings.projection.\1"),
        (r"decoder\.norm\.(weight|bias)", r"decoder.norm.\1"),  # keeps its name; listed before the backbone's
        (r"norm\.(weight|bias)", r"layernorm.\1"),
    ]
)
