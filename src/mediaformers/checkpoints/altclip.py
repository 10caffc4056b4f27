"""AltCLIP: our names -> transformers' (the layout of the BAAI/AltCLIP checkpoints and of save_pretrained).

transformers 5.23 is not consistent across the three classes, so the table maps to one canonical
spelling (``encoder.layers.N`` in both towers) and two small functions adapt at the border:

- ``AltCLIPModel.save_pretrained`` writes the text layers as ``text_model.roberta.encoder.layer.N``
  (what the hub checkpoints and 5.23 hold) and the vision layers as ``vision_model.encoder.layers.N``
  (the hub spelling; 5.23 writes ``layer.N`` there but loads either).
- ``AltCLIPTextModel`` / ``AltCLIPVisionModel`` alone write ``encoder.layers.N``: 5.23 loads
  nothing else for them.
- Loading accepts ``layer.N`` and ``layers.N`` everywhere and drops the ``position_ids`` /
  ``token_type_ids`` buffers that checkpoints saved by older transformers carry (:func:`normalise`).
"""
import re

from .convert import BERT_BLOCK, CLIP_BLOCK, Converter, block_rules

CONVERTER = Converter(
    [
        # XLM-R text tower (listed first: its rules name the `xlmr.` parent, so they never catch the vision tower)
        (r"xlmr\.embeddings\.word\.weight", "roberta.embeddings.word_embeddings.weight"),
        (r"xlmr\.embeddings\.position\.weight", "roberta.embeddings.position_embeddings.weight"),
        (r"xlmr\.embeddings\.token_type\.weight", "roberta.embeddings.token_type_embeddings.weight"),
        (r"xlmr\.embeddings\.norm\.(weight|bias)", r"roberta.embeddings.LayerNorm.\1"),
        *block_rules(r"xlmr\.encoder\.blocks", "roberta.encoder.layers", BERT_BLOCK),
        # CLIP vision tower
        *block_rules(r"encoder\.blocks", "encoder.layers", CLIP_BLOCK),
        (r"patch_embed\.proj\.weight", "embeddings.patch_embedding.weight"),
        (r"cls_token", "embeddings.class_embedding"),
        (r"pos_embed", "embeddings.position_embedding.weight"),
        (r"norm_pre\.(weight|bias)", r"pre_layrnorm.\1"),
        (r"norm_post\.(weight|bias)", r"post_layernorm.\1"),
        # the text tower's head; last, so the block/patch `proj` and `norm1/2` rules above win
        (r"norm\.(weight|bias)", r"pre_LN.\1"),
        (r"proj\.(weight|bias)", r"transformation.\1"),
        # text_projection, visual_projection and logit_scale keep their names
    ]
)

_LAYER = re.compile(r"(^|\.)encoder\.layer\.(\d+)\.")
# Index buffers, not weights: transformers < 4.31 saved them; the reference rebuilds them.
_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


def normalise(state: dict) -> dict:
    """``encoder.layer.N.`` -> ``encoder.layers.N.`` (both spellings exist in the wild); index buffers dropped."""
    return {_LAYER.sub(r"\1encoder.layers.\2.", k): v for k, v in state.items() if not k.endswith(_BUFFERS)}


def text_layers_as_hub(state: dict) -> dict:
    """The full model's text layers under the hub's ``text_model.roberta.encoder.layer.N`` spelling."""
    old = "text_model.roberta.encoder.layers."
    return {("text_model.roberta.encoder.layer." + k[len(old):] if k.startswith(old) else k): v for k, v in state.items()}
