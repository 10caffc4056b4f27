"""TVLT: our names -> transformers 4.57.1's (what its save_pretrained writes; TVLT left transformers after 4.57)."""
from .convert import Converter, vit_layer_rules

CONVERTER = Converter(
    [
        *vit_layer_rules(r"decoder\.blocks", "decoder.decoder_layers"),
        *vit_layer_rules(r"encoder\.blocks", "encoder.layer"),
        (r"pixel_patch\.proj\.(weight|bias)", r"pixel_embeddings.patch_embeddings.projection.\1"),
        (r"pixel_pos\.within", "pixel_embeddings.pos_embed_v"),
        (r"pixel_pos\.steps", "pixel_embeddings.temporal_embed"),
        (r"pixel_pos\.type_embed", "pixel_embeddings.type_embed_v"),
        (r"audio_patch\.proj\.(weight|bias)", r"audio_embeddings.patch_embeddings.projection.\1"),
        (r"audio_pos\.steps", "audio_embeddings.pos_embed_a"),
        (r"audio_pos\.within", "audio_embeddings.freq_embed"),
        (r"audio_pos\.type_embed", "audio_embeddings.type_embed_a"),
        (r"cls_token", "cls_embedding"),
        # Pre-training: the decoder's own position tables live at the top level in transformers.
        (r"decoder_pixel_pos\.within", "decoder_pixel_pos_embed"),
        (r"decoder_pixel_pos\.steps", "decoder_temporal_embed"),
        (r"decoder_pixel_pos\.type_embed", "decoder_pixel_type_embed"),
        (r"decoder_audio_pos\.steps", "decoder_audio_pos_embed"),
        (r"decoder_audio_pos\.within", "decoder_freq_embed"),
        (r"decoder_audio_pos\.type_embed", "decoder_audio_type_embed"),
        (r"decoder_norm\.(weight|bias)", r"decoder.layernorm.\1"),
        (r"pixel_head\.(weight|bias)", r"pixel_mae_head.decoder.\1"),
        (r"audio_head\.(weight|bias)", r"audio_mae_head.decoder.\1"),
        (r"matching_head\.pooler\.(weight|bias)", r"matching_head.pooler.dense.\1"),
        (r"norm\.(weight|bias)", r"layernorm.\1"),
    ]
)
