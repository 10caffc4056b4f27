"""ViViT: our names -> transformers' (legacy layout, which save_pretrained writes)."""
from .convert import Converter, vit_layer_rules

CONVERTER = Converter(
    [
        *vit_layer_rules(r"encoder\.blocks", "encoder.layer"),
        (r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embeddings.projection.\1"),
        (r"cls_token", "embeddings.cls_token"),
        (r"pos_embed", "embeddings.position_embeddings"),
        (r"norm\.(weight|bias)", r"layernorm.\1"),
    ]
)
