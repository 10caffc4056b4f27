"""VideoMAE (Tong et al., 2022): a ViT over 3-D tubelets with fixed sin-cos positions, MAE pre-training."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints.videomae import CONVERTER
from ..config import ViTEncoderConfig
from ..family import Family, Pretrained, Processor, register_family
from ..layers import Encoder, PatchEmbed, sincos_table
from ..modeling import PreTrainedModel
from ..outputs import BaseModelOutput, ClassifierOutput, ImageClassifierOutput, forward_options
from .common import (backbone, check_video, classification_loss, frame_settings, pair, random_video,
                     video_input_doc)
from .mae import patchify, visible

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(kw_only=True)
class VideoMAEConfig(ViTEncoderConfig):
    model_type = "videomae"
    aliases = {"qv_bias": "qkv_bias"}  # transformers 5 renamed it; checkpoints on the hub say qkv_bias

    image_size: int | list[int] = 224  # frame height/width
    patch_size: int = 16  # spatial patch side
    num_channels: int = 3
    num_frames: int = 16  # frames per clip
    tubelet_size: int = 2  # frames per tubelet
    # qkv_bias (a shared field) here means learnable q and v biases; k has none.
    use_mean_pooling: bool = True  # classifier: mean of tokens + fc_norm, else first token after layernorm
    decoder_num_attention_heads: int = 6
    decoder_hidden_size: int = 384
    decoder_num_hidden_layers: int = 4
    decoder_intermediate_size: int = 1536
    norm_pix_loss: bool = True  # pre-training target: per-patch normalised pixels

    @property
    def qv_bias(self) -> bool:
        """transformers 5's name for ``qkv_bias``."""
        return self.qkv_bias

    @qv_bias.setter
    def qv_bias(self, value: bool) -> None:
        self.qkv_bias = value

    @property
    def grid(self) -> tuple[int, int, int]:
        """Tubelet grid (time, height, width)."""
        h, w = pair(self.image_size)
        return self.num_frames // self.tubelet_size, h // self.patch_size, w // self.patch_size

    @property
    def num_patches(self) -> int:
        return math.prod(self.grid)


@dataclass
class VideoMAEForPreTrainingOutput(ClassifierOutput):
    """transformers' fields: the MSE loss and the pixel predictions (batch, masked, tubelet*patch*patch*C)."""


def make_tube_mask(config: VideoMAEConfig, batch_size: int = 1, mask_ratio: float = 0.9, *,
                   generator: torch.Generator | None = None, seed: int | None = None,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """VideoMAE's tube masking: the same random spatial patches masked in every tubelet slice.

    Returns ``bool_masked_pos`` (batch, num_patches), True = masked, with exactly
    ``int(mask_ratio * patches_per_slice)`` masked per slice, so every sample masks as many.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio: expected a value in [0, 1), got {mask_ratio}")
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(seed)
    t, h, w = config.grid
    n_masked = int(mask_ratio * h * w)
    ranks = torch.rand(batch_size, h * w, generator=generator).argsort(dim=1).argsort(dim=1)
    spatial = ranks < n_masked
    return spatial[:, None, :].expand(batch_size, t, h * w).reshape(batch_size, t * h * w).to(device)


def check_mask(mask: torch.Tensor, batch: int, num_patches: int) -> torch.Tensor:
    """Validate ``bool_masked_pos`` and return it as bool (batch, num_patches)."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"bool_masked_pos: expected a torch.Tensor, got {type(mask).__name__}")
    if mask.shape != (batch, num_patches):
        raise ValueError(f"bool_masked_pos: expected shape ({batch}, {num_patches}), got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        if mask.is_floating_point() or not ((mask == 0) | (mask == 1)).all():
            raise ValueError(f"bool_masked_pos: expected a bool (or 0/1 integer) tensor, got {mask.dtype}")
        mask = mask.bool()
    counts = mask.sum(1)
    if (counts != counts[0]).any():
        raise ValueError(
            f"bool_masked_pos: every sample must mask the same number of patches, got {counts.tolist()}"
        )
    return mask


class VideoMAEPreTrainedModel(PreTrainedModel):
    config_class = VideoMAEConfig
    base_model_prefix = "videomae"
    converter = CONVERTER

    def _init_buffers(self) -> None:
        super()._init_buffers()
        c = self.config
        for m in self.modules():
            if isinstance(m, VideoMAEModel):
                m.pos_embed.copy_(sincos_table(c.num_patches, c.hidden_size))
            elif isinstance(m, VideoMAEForPreTraining):
                m.decoder_pos_embed.copy_(sincos_table(c.num_patches, c.decoder_hidden_size))


def _blocks(c: VideoMAEConfig, dim: int, layers: int, heads: int, hidden: int) -> Encoder:
    return Encoder.stack(layers, dim, heads, hidden, act=c.hidden_act, eps=c.layer_norm_eps, qv_bias=c.qkv_bias,
                         qkv_bias=False, drop=c.hidden_dropout_prob, attn_drop=c.attention_probs_dropout_prob)


class VideoMAEModel(VideoMAEPreTrainedModel):
    """The encoder. Masked tokens (``bool_masked_pos``) are dropped before the transformer, as in MAE."""

    is_backbone = True

    def __init__(self, config: VideoMAEConfig):
        super().__init__(config)
        c = config
        self.patch_embed = PatchEmbed(c.num_channels, c.hidden_size, (c.tubelet_size, c.patch_size, c.patch_size))
        self.register_buffer("pos_embed", sincos_table(c.num_patches, c.hidden_size), persistent=False)
        self.encoder = _blocks(c, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size)
        self.norm = None if c.use_mean_pooling else nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.post_init()

    @forward_options
    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None,
                head_mask: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None, *,
                interpolate_pos_encoding: bool = False, pooled_only: bool = False) -> BaseModelOutput:
        """pixel_values (batch, frames, channels, H, W) -> last_hidden_state (batch, visible tokens, hidden).

        ``bool_masked_pos`` (batch, patches), True or 1 = masked, drops those tubelets. ``head_mask``
        (heads,) or (layers, heads) scales attention probabilities. ``pooled_only`` (first-token pooling only) skips the last block's work for the other tokens.
        ``interpolate_pos_encoding`` accepts other frame counts and sizes: VideoMAE's position table
        is a fixed sin-cos function of the token index, so it is recomputed for the new number of
        tubelets — exact, not a resampling.
        """
        c = self.config
        fixed = not interpolate_pos_encoding
        check_video(pixel_values, frames=c.num_frames if fixed else None, size=pair(c.image_size) if fixed else None,
                    channels=c.num_channels)
        b, n = pixel_values.shape[0], self.num_tokens(pixel_values)
        x = self.patch_embed(pixel_values.transpose(1, 2)) + self.positions(n).to(pixel_values.dtype)
        if bool_masked_pos is not None:
            x = visible(x, check_mask(bool_masked_pos, b, n))
        out = self.encoder(x, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                           num_queries=1 if pooled_only else None, head_mask=head_mask)
        x = out.last_hidden_state if self.norm is None else self.norm(out.last_hidden_state)
        return BaseModelOutput(x, out.hidden_states, out.attentions)


    def num_tokens(self, pixel_values: torch.Tensor) -> int:
        t, _, h, w = pixel_values.shape[1:]
        grid = self.patch_embed.grid((t, h, w))
        if min(grid) < 1:
            raise ValueError(f"pixel_values: {t} frames of {h}x{w} is smaller than one tubelet "
                             f"({self.config.tubelet_size}x{self.config.patch_size}x{self.config.patch_size})")
        return math.prod(grid)

    def positions(self, n: int) -> torch.Tensor:
        """The sin-cos table (1, n, hidden) for ``n`` tubelets (the buffer when n is the config's)."""
        return self.pos_embed if n == self.pos_embed.shape[1] else sincos_table(n, self.config.hidden_size).to(
            self.pos_embed.device)


class VideoMAEDecoder(nn.Module):
    """The light MAE decoder: blocks, then norm + head over the last ``n_masked`` tokens only."""

    def __init__(self, c: VideoMAEConfig):
        super().__init__()
        out = c.num_channels * c.tubelet_size * c.patch_size**2
        self.blocks = _blocks(c, c.decoder_hidden_size, c.decoder_num_hidden_layers,
                              c.decoder_num_attention_heads, c.decoder_intermediate_size).blocks
        self.norm = nn.LayerNorm(c.decoder_hidden_size)  # transformers' default eps here, not layer_norm_eps
        self.head = nn.Linear(c.decoder_hidden_size, out)

    def forward(self, x: torch.Tensor, n_masked: int) -> torch.Tensor:
        for block in self.blocks:
            x, _ = block(x)
        return self.head(self.norm(x[:, x.shape[1] - n_masked :]))


class VideoMAEForPreTraining(VideoMAEPreTrainedModel):
    """MAE pre-training: encode visible tubelets, decode all, regress the masked ones' pixels."""

    is_pretraining = True  # what ``mediaformers train --task pretraining`` trains

    def __init__(self, config: VideoMAEConfig):
        super().__init__(config)
        c = config
        self.videomae = VideoMAEModel(c)
        self.encoder_to_decoder = nn.Linear(c.hidden_size, c.decoder_hidden_size, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_hidden_size))
        self.register_buffer("decoder_pos_embed", sincos_table(c.num_patches, c.decoder_hidden_size), persistent=False)
        self.decoder = VideoMAEDecoder(c)
        self.post_init()

    def make_mask(self, batch_size: int, mask_ratio: float = 0.9, **kwargs) -> torch.Tensor:
        """Tube mask for this model's shapes; see :func:`make_tube_mask`."""
        return make_tube_mask(self.config, batch_size, mask_ratio, device=self.device, **kwargs)

    def pretraining_inputs(self, inputs: dict[str, torch.Tensor], mask_ratio: float | None = None,
                           generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The inputs of one pre-training step beside the media: a tube mask masking ``mask_ratio``
        of the patches (default 0.9, the VideoMAE recipe's)."""
        ratio = 0.9 if mask_ratio is None else mask_ratio
        return {"bool_masked_pos": self.make_mask(inputs["pixel_values"].shape[0], ratio, generator=generator)}

    def targets(self, pixel_values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Regression targets of the masked tubelets, (batch, n_masked, tubelet*patch*patch*C)."""
        c = self.config
        frames = pixel_values
        if c.num_channels == 3:
            mean = pixel_values.new_tensor(IMAGENET_MEAN)[None, None, :, None, None]
            std = pixel_values.new_tensor(IMAGENET_STD)[None, None, :, None, None]
            frames = pixel_values * std + mean  # back to [0, 1]
        elif not c.norm_pix_loss:
            raise ValueError("norm_pix_loss=False un-normalises RGB pixels; it needs num_channels=3")
        patches = patchify(frames, c.tubelet_size, c.patch_size)
        if c.norm_pix_loss:
            patches = (patches - patches.mean(dim=-2, keepdim=True)) / (
                patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6
            )
        patches = patches.flatten(2)
        return patches[mask].reshape(patches.shape[0], -1, patches.shape[-1])

    @forward_options
    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None,
                head_mask: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None, *,
                interpolate_pos_encoding: bool = False) -> VideoMAEForPreTrainingOutput:
        """With ``interpolate_pos_encoding``, other frame counts and sizes (exact sin-cos tables for
        the new number of tubelets, in the encoder and the decoder; the mask must cover that many)."""
        if bool_masked_pos is None:
            raise ValueError("bool_masked_pos: pre-training needs a mask; make one with model.make_mask(batch_size)")
        enc = self.encode(pixel_values, bool_masked_pos, head_mask=head_mask, output_hidden_states=output_hidden_states,
                          output_attentions=output_attentions, interpolate_pos_encoding=interpolate_pos_encoding)
        mask = check_mask(bool_masked_pos, pixel_values.shape[0], self.videomae.num_tokens(pixel_values))
        if not mask[0].any():
            raise ValueError("bool_masked_pos: masks no patch; pre-training needs at least one masked patch")
        logits = self.decode(enc.last_hidden_state, mask)
        loss = self.loss(pixel_values, logits, mask)
        return VideoMAEForPreTrainingOutput(loss, logits, enc.hidden_states, enc.attentions)

    # ---- MAE steps (facebookresearch/mae's names) -------------------------------------------------
    def encode(self, pixel_values: torch.Tensor, mask: torch.Tensor, **flags) -> BaseModelOutput:
        """Encode the visible tubelets: last_hidden_state (batch, visible, hidden)."""
        return self.videomae(pixel_values, bool_masked_pos=mask, **flags)

    def decode(self, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Visible latents (batch, visible, hidden) + a mask token per masked tubelet, each with its
        position -> pixel predictions of the masked ones (batch, masked, tubelet*patch*patch*C)."""
        x = self.encoder_to_decoder(latent)
        b, d, n = x.shape[0], x.shape[-1], mask.shape[1]
        table = self.decoder_pos_embed
        if n != table.shape[1]:  # another grid: the exact sin-cos table for it
            table = sincos_table(n, self.config.decoder_hidden_size).to(table.device)
        pos = table.to(x.dtype).expand(b, -1, -1)
        masked_pos = pos[mask].reshape(b, -1, d)
        x = torch.cat([x + visible(pos, mask), self.mask_token.to(x.dtype) + masked_pos], dim=1)
        return self.decoder(x, masked_pos.shape[1])

    def loss(self, pixel_values: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MSE between the predictions (batch, masked, ...) and the masked tubelets' targets."""
        with torch.no_grad():
            target = self.targets(pixel_values, mask)
        return F.mse_loss(pred, target)


class VideoMAEForVideoClassification(VideoMAEPreTrainedModel):
    """Mean-pooled tokens + fc_norm (or the first token) -> linear classifier."""

    is_classifier = True

    def __init__(self, config: VideoMAEConfig):
        super().__init__(config)
        c = config
        self.videomae = VideoMAEModel(c)
        self.fc_norm = nn.LayerNorm(c.hidden_size) if c.use_mean_pooling else None
        self.classifier = nn.Linear(c.hidden_size, c.num_labels) if c.num_labels > 0 else nn.Identity()
        self.post_init()

    @forward_options
    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                head_mask: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None, *,
                interpolate_pos_encoding: bool = False) -> ImageClassifierOutput:
        """``labels`` (batch,) class ids, or floats for multi-label/regression; the loss as transformers'
        (``config.problem_type``, inferred from the labels and written into the config when unset)."""
        first_token = self.fc_norm is None and not (output_hidden_states or output_attentions)
        out = self.videomae(pixel_values, None, head_mask, output_attentions, output_hidden_states,
                            pooled_only=first_token, interpolate_pos_encoding=interpolate_pos_encoding)
        x = out.last_hidden_state
        x = self.fc_norm(x.mean(1)) if self.fc_norm is not None else x[:, 0]
        logits = self.classifier(x)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        return ImageClassifierOutput(loss, logits, out.hidden_states, out.attentions)


# ---- the family declaration ---------------------------------------------------------------------
def _pooled(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of the tokens (use_mean_pooling, as the classifier pools), else the first token."""
    hidden = backbone(model)(pixel_values=batch["pixel_values"]).last_hidden_state
    return hidden.mean(1) if model.config.use_mean_pooling else hidden[:, 0]


def _dummy_inputs(cls: type, c: VideoMAEConfig, batch_size: int = 1) -> dict[str, torch.Tensor]:
    inputs = {"pixel_values": random_video(batch_size, c.num_frames, c.num_channels, c.image_size)}
    if cls is VideoMAEForPreTraining:
        inputs["bool_masked_pos"] = make_tube_mask(c, batch_size, 0.5, seed=0)
    return inputs


FAMILY = register_family(Family(
    name="videomae",
    classes=(VideoMAEModel, VideoMAEForPreTraining, VideoMAEForVideoClassification),
    task="video-classification",
    processors={"video": Processor("video_processors:VideoMAECheckpointProcessor",
                                   lambda c: {"num_frames": c.num_frames, **frame_settings(c.image_size)})},
    accepts=frozenset({"video"}),
    pooled=_pooled, dummy_inputs=_dummy_inputs,
    input_doc=lambda c: video_input_doc(c.num_frames, c.num_channels, c.image_size),
    tiny=dict(image_size=32, num_frames=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
              intermediate_size=48, decoder_hidden_size=16, decoder_num_hidden_layers=1,
              decoder_num_attention_heads=2, decoder_intermediate_size=24),
    variants={"first-token": {"use_mean_pooling": False}, "no-norm-pix-loss": {"norm_pix_loss": False}},
    # first-token pooling: on the demo's moving shapes a tiny model learns it in a third of the steps
    demo=dict(image_size=32, patch_size=8, num_frames=8, hidden_size=128, num_hidden_layers=2,
              num_attention_heads=4, intermediate_size=256, use_mean_pooling=False),
    pretrained={
        "videomae-base-kinetics": Pretrained("MCG-NJU/videomae-base-finetuned-kinetics", "video-classification",
                                             "Kinetics-400, 16x224"),
        "videomae-base-ssv2": Pretrained("MCG-NJU/videomae-base-finetuned-ssv2", "video-classification",
                                         "Something-Something v2, 16x224"),
        "videomae-base": Pretrained("MCG-NJU/videomae-base", "feature-extraction", "self-supervised, K400"),
    },
    exports=(make_tube_mask,),
))
