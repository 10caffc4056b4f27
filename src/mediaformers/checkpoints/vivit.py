"""ViViT: our names -> transformers' (legacy layout, which save_pretrained writes)."""
from .convert import Converter, vit_layer_rules

def _temporal_attention_rules() -> list:
    """Model 3's second attention per block, named like the first one with a ``temporal_`` prefix."""
    a = r"encoder.layer.\1.temporal_attention"
    return [
        (r"encoder\.blocks\.(\d+)\.attn_t\.qkv\.(weight|bias)",
         [rf"{a}.attention.query.\2", rf"{a}.attention.key.\2", rf"{a}.attention.value.\2"]),
        (r"encoder\.blocks\.(\d+)\.attn_t\.proj\.(weight|bias)", rf"{a}.output.dense.\2"),
        (r"encoder\.blocks\.(\d+)\.norm_t\.(weight|bias)", r"encoder.layer.\1.layernorm_temporal.\2"),
    ]


# Models 2-4 exist only here (not in transformers): their extra tensors get names in the same style.
CONVERTER = Converter(
    [
        *vit_layer_rules(r"temporal_encoder\.blocks", "temporal_encoder.layer"),
        *_temporal_attention_rules(),
        (r"temporal_cls_token", "embeddings.temporal_cls_token"),
        (r"temporal_pos_embed", "embeddings.temporal_position_embeddings"),
        *vit_layer_rules(r"encoder\.blocks", "encoder.layer"),
        (r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embeddings.projection.\1"),
        (r"cls_token", "embeddings.cls_token"),
        (r"pos_embed", "embeddings.position_embeddings"),
        (r"norm\.(weight|bias)", r"layernorm.\1"),
    ]
)
