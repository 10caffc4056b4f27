"""AST: our names -> transformers' (legacy layout, which save_pretrained writes)."""
from .convert import VIT_MEMORY, Converter, vit_embedding_rules, vit_layer_rules

CONVERTER = Converter(
    [
        *vit_layer_rules(r"encoder\.blocks", "encoder.layer"),
        *vit_embedding_rules("cls_token", "dist_token", "pos_embed"),
        # The head before the backbone's final norm: "head.norm" must not fall to the rule below.
        (r"head\.norm\.(weight|bias)", r"classifier.layernorm.\1"),
        (r"head\.fc\.(weight|bias)", r"classifier.dense.\1"),
        (r"norm\.(weight|bias)", r"layernorm.\1"),
    ],
    memory=VIT_MEMORY,
)
