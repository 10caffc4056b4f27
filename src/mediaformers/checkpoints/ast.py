"""AST: our names -> transformers' (legacy layout, which save_pretrained writes)."""
from .convert import Converter, vit_layer_rules

CONVERTER = Converter(
    [
        *vit_layer_rules(r"encoder\.blocks", "encoder.layer"),
        (r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embeddings.projection.\1"),
        (r"cls_token", "embeddings.cls_token"),
        (r"dist_token", "embeddings.distillation_token"),
        (r"pos_embed", "embeddings.position_embeddings"),
        # The head before the backbone's final norm: "head.norm" must not fall to the rule below.
        (r"head\.norm\.(weight|bias)", r"classifier.layernorm.\1"),
        (r"head\.fc\.(weight|bias)", r"classifier.dense.\1"),
        (r"norm\.(weight|bias)", r"layernorm.\1"),
    ]
)
