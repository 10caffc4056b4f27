"""The shared core: one attention, one pre-norm block (and a post-norm one), one encoder."""
from .activations import Activation
from .attention import Attention, padding_mask_to_bias
from .blocks import Block, Encoder, EncoderOutput, Mlp, PostNormBlock
from .embeddings import PatchEmbed, resample_grid, sincos_table

__all__ = [
    "Activation",
    "Attention",
    "Block",
    "Encoder",
    "EncoderOutput",
    "Mlp",
    "PatchEmbed",
    "PostNormBlock",
    "padding_mask_to_bias",
    "resample_grid",
    "sincos_table",
]
