"""ViViT: our names -> transformers' (legacy layout, which save_pretrained writes)."""
from .convert import VIT_BLOCK, VIT_MEMORY, Converter, block_rules, vit_embedding_rules, vit_layer_rules

# Model 3's second attention per block, named like the first one with a ``temporal_`` prefix.
_TEMPORAL = {"attn_t.qkv": [f"temporal_{q}" for q in VIT_BLOCK["attn.qkv"]],
             "attn_t.proj": "temporal_attention.output.dense", "norm_t": "layernorm_temporal"}


# Models 2-4 exist only here (not in transformers): their extra tensors get names in the same style.
CONVERTER = Converter(
    [
        *vit_layer_rules(r"temporal_encoder\.blocks", "temporal_encoder.layer"),
        *block_rules(r"encoder\.blocks", "encoder.layer", _TEMPORAL),
        (r"temporal_cls_token", "embeddings.temporal_cls_token"),
        (r"temporal_pos_embed", "embeddings.temporal_position_embeddings"),
        *vit_layer_rules(r"encoder\.blocks", "encoder.layer"),
        *vit_embedding_rules("cls_token", "pos_embed"),
        (r"norm\.(weight|bias)", r"layernorm.\1"),
    ],
    memory=VIT_MEMORY,
)
