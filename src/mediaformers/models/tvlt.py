"""TVLT (Tang et al., 2022): a textless vision-language transformer over video frames and audio spectrograms.

One encoder sees ``[cls] + pixel patches + audio patches``; pre-training masks both streams MAE-style
(one shared decoder, run once per stream) and adds an audio-visual matching head.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints.tvlt import CONVERTER
from ..config import ViTEncoderConfig
from ..family import Family, Pretrained, Processor, register_family
from ..layers import Encoder, PatchEmbed, padding_mask_to_bias
from ..modeling import PreTrainedModel
from ..outputs import SequenceClassifierOutput, forward_options
from .common import backbone, frame_settings, pair, random_video
from .mae import check_noise, grouped_noise, masked_mse, patchify, patchify_2d, random_masking, uniform_noise, unshuffle
from .tvlt_parts import (FactoredPositions, MatchingHead, TvltForPreTrainingOutput, TvltModelOutput,
                         audio_visual_loss, check_inputs)

AUDIO_MASK_TYPES = ("frame-level", "patch-level", "patch_level")  # "patch_level": the reference config's spelling


@dataclass(kw_only=True)
class TvltConfig(ViTEncoderConfig):
    model_type = "tvlt"

    image_size: int | list[int] = 224  # frame height/width
    spectrogram_length: int = 2048  # most audio time steps (mel frames) the position table covers
    frequency_length: int = 128  # mel bins
    image_patch_size: list[int] = field(default_factory=lambda: [16, 16])
    audio_patch_size: list[int] = field(default_factory=lambda: [16, 16])  # (time, frequency)
    num_image_channels: int = 3
    num_audio_channels: int = 1
    num_frames: int = 8  # most frames the temporal table covers
    layer_norm_eps: float = 1e-6
    use_mean_pooling: bool = False  # True: no final layernorm (the reference pools nothing either way)
    decoder_num_attention_heads: int = 16
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_intermediate_size: int = 2048
    pixel_mask_ratio: float = 0.75  # MAE: share of pixel patches dropped
    audio_mask_ratio: float = 0.15  # MAE: share of audio patches dropped
    audio_mask_type: str = "frame-level"  # "frame-level" or "patch-level" (alias "patch_level")
    task_matching: bool = True  # pre-training: audio-visual matching head
    task_mae: bool = True  # pre-training: masked autoencoding of both streams
    loss_type: str = "classification"  # classifier: "classification" (cross-entropy) or "regression" (MSE)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.audio_mask_type not in AUDIO_MASK_TYPES:
            raise ValueError(f"audio_mask_type: expected one of {AUDIO_MASK_TYPES}, got {self.audio_mask_type!r}")

    @property
    def patches_per_frame(self) -> int:
        (h, w), (ph, pw) = pair(self.image_size), pair(self.image_patch_size)
        return (h // ph) * (w // pw)

    @property
    def freq_patches(self) -> int:
        return self.frequency_length // pair(self.audio_patch_size)[1]

    @property
    def time_patches(self) -> int:
        """Most audio time patches (rows of the audio position table)."""
        return self.spectrogram_length // pair(self.audio_patch_size)[0]


def _blocks(c: TvltConfig, dim: int, layers: int, heads: int, hidden: int) -> Encoder:
    return Encoder.stack(layers, dim, heads, hidden, act=c.hidden_act, eps=c.layer_norm_eps, qkv_bias=c.qkv_bias,
                         drop=c.hidden_dropout_prob, attn_drop=c.attention_probs_dropout_prob)


class TvltPreTrainedModel(PreTrainedModel):
    config_class = TvltConfig
    base_model_prefix = "tvlt"
    converter = CONVERTER
    prunable = "encoder"
    input_embeddings = "pixel_patch"  # transformers 4.57 returns the pixel and audio patch embeddings as a pair

    def get_input_embeddings(self) -> tuple[nn.Module, nn.Module]:
        base = self.base_model
        return (base.pixel_patch, base.audio_patch)


def _present(*values) -> tuple:
    return tuple(v for v in values if v is not None)


class TvltModel(TvltPreTrainedModel):
    """The joint encoder. ``mask_pixel`` / ``mask_audio`` drop patches MAE-style before it."""

    is_backbone = True

    def __init__(self, config: TvltConfig):
        super().__init__(config)
        c, d = config, config.hidden_size
        self.pixel_patch = PatchEmbed(c.num_image_channels, d, pair(c.image_patch_size))
        self.pixel_pos = FactoredPositions(c.patches_per_frame, c.num_frames, d)
        self.audio_patch = PatchEmbed(c.num_audio_channels, d, pair(c.audio_patch_size))
        self.audio_pos = FactoredPositions(c.freq_patches, c.time_patches, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.encoder = _blocks(c, d, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size)
        self.norm = None if c.use_mean_pooling else nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.post_init()

    @staticmethod
    def as_tuple(out: TvltModelOutput) -> tuple:
        """transformers 4.57's tuple: seven slots, the masking ones None when nothing was masked."""
        return (out.last_hidden_state, out.last_pixel_hidden_state, out.last_audio_hidden_state, out.pixel_label_masks,
                out.audio_label_masks, out.pixel_ids_restore, out.audio_ids_restore) + _present(out.hidden_states,
                                                                                                 out.attentions)

    @forward_options
    def forward(self, pixel_values: torch.Tensor, audio_values: torch.Tensor, pixel_mask: torch.Tensor | None = None,
                audio_mask: torch.Tensor | None = None, mask_pixel: bool = False, mask_audio: bool = False,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, *, pixel_noise: torch.Tensor | None = None,
                audio_noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> TvltModelOutput:
        """pixel_values (batch, frames, C, H, W), audio_values (batch, C, time, freq) -> TvltModelOutput.

        pixel_mask (batch, frames * patches_per_frame) and audio_mask (batch, audio patches): 1 = real
        patch, 0 = padding (keys masked in attention). Masking noise is drawn from the global RNG in
        the reference's order (pixels, then audio) unless ``generator`` or explicit ``pixel_noise`` /
        ``audio_noise`` (batch, patches) are given; the lowest-noise patches are kept.
        """
        check_inputs(self.config, pixel_values, audio_values, pixel_mask, audio_mask)
        return self._forward(pixel_values, audio_values, pixel_mask, audio_mask, mask_pixel, mask_audio,
                             output_attentions, output_hidden_states, pixel_noise, audio_noise, generator)

    def _forward(self, pixel_values, audio_values, pixel_mask, audio_mask, mask_pixel=False, mask_audio=False,
                 output_attentions=False, output_hidden_states=False, noise_v=None, noise_a=None,
                 generator=None) -> TvltModelOutput:
        c = self.config
        b, t = pixel_values.shape[:2]
        dtype = self.cls_token.dtype
        xv = self.pixel_patch(pixel_values.flatten(0, 1).to(dtype)).reshape(b, t * c.patches_per_frame, -1)
        xv = self.pixel_pos(xv)
        xa = self.audio_pos(self.audio_patch(audio_values.to(dtype)))
        pixel_labels = pixel_restore = audio_labels = audio_restore = None
        if mask_pixel:
            n = xv.shape[1]
            if noise_v is None:
                noise_v = uniform_noise(b, n, generator=generator, device=xv.device)
            check_noise(noise_v, "pixel_noise", b, n)
            keep = int(n * (1 - c.pixel_mask_ratio))
            xv, pixel_mask, pixel_labels, pixel_restore = random_masking(xv, noise_v, keep, pixel_mask)
        if mask_audio:
            n = xa.shape[1]
            if noise_a is None:
                # The reference draws pixels' noise, then audio's: one call each, in that order.
                noise_a = (grouped_noise(b, n, c.freq_patches, generator=generator, device=xa.device)
                           if c.audio_mask_type == "frame-level" else
                           uniform_noise(b, n, generator=generator, device=xa.device))
            check_noise(noise_a, "audio_noise", b, n)
            keep = int(n * (1 - c.audio_mask_ratio))
            xa, audio_mask, audio_labels, audio_restore = random_masking(xa, noise_a, keep, audio_mask)
        x = torch.cat([self.cls_token.expand(b, -1, -1), xv, xa], dim=1)
        bias = None
        if pixel_mask is not None or audio_mask is not None:
            # The reference ignores a lone mask; we honour it (the other stream counts as unpadded).
            pm = pixel_mask if pixel_mask is not None else xv.new_ones(b, xv.shape[1])
            am = audio_mask if audio_mask is not None else xa.new_ones(b, xa.shape[1])
            # The cls token takes the padding flag of the first (kept) pixel patch, as in the reference.
            bias = padding_mask_to_bias(torch.cat([pm[:, :1], pm, am.to(pm.dtype)], dim=1), x.dtype)
        enc = self.encoder(x, bias, output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        x = enc.last_hidden_state if self.norm is None else self.norm(enc.last_hidden_state)
        nv = xv.shape[1]
        return TvltModelOutput(x, x[:, 1:1 + nv], x[:, 1 + nv:], pixel_labels, audio_labels,
                               pixel_restore, audio_restore, enc.hidden_states, enc.attentions)


class TvltForPreTraining(TvltPreTrainedModel):
    """Audio-visual matching (mixed pixels vs audio) and, in training mode, MAE on both streams."""

    is_pretraining = True  # what ``mediaformers train --task pretraining`` trains

    def __init__(self, config: TvltConfig):
        super().__init__(config)
        c = config
        if not (c.task_matching or c.task_mae):
            raise ValueError("TvltConfig: set task_matching or task_mae (or both) to True for pre-training")
        self.tvlt = TvltModel(c)
        self.matching_head = MatchingHead(c.hidden_size) if c.task_matching else None
        if c.task_mae:
            ph, pw = pair(c.image_patch_size)
            if ph != pw:
                raise ValueError(f"image_patch_size: MAE pre-training needs square patches, got {[ph, pw]}")
            d = c.decoder_hidden_size
            self.encoder_to_decoder = nn.Linear(c.hidden_size, d)
            self.pixel_mask_token = nn.Parameter(torch.zeros(1, 1, d))
            self.audio_mask_token = nn.Parameter(torch.zeros(1, 1, d))
            self.decoder = _blocks(c, d, c.decoder_num_hidden_layers, c.decoder_num_attention_heads,
                                   c.decoder_intermediate_size)
            self.decoder_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)
            self.decoder_pixel_pos = FactoredPositions(c.patches_per_frame, c.num_frames, d)
            self.decoder_audio_pos = FactoredPositions(c.freq_patches, c.time_patches, d)
            self.pixel_head = nn.Linear(d, ph * ph * c.num_image_channels)
            at, af = pair(c.audio_patch_size)
            self.audio_head = nn.Linear(d, at * af * c.num_audio_channels)
        self.post_init()

    # ---- MAE steps (facebookresearch/mae's names) -------------------------------------------------
    def encode(self, pixel_values: torch.Tensor, audio_values: torch.Tensor, pixel_mask=None, audio_mask=None, *,
               pixel_noise=None, audio_noise=None, generator=None, **flags) -> TvltModelOutput:
        """Mask both streams (the lowest-noise patches are kept) and encode what is left."""
        return self.tvlt(pixel_values, audio_values, pixel_mask=pixel_mask, audio_mask=audio_mask, mask_pixel=True,
                         mask_audio=True, pixel_noise=pixel_noise, audio_noise=audio_noise, generator=generator,
                         return_dict=True, **flags)

    def decode(self, x: torch.Tensor, ids_restore: torch.Tensor, mask_token: nn.Parameter,
               positions: nn.Module, head: nn.Linear) -> torch.Tensor:
        """One stream's kept encoder tokens (batch, kept, hidden) -> per-patch predictions (batch, patches, out)."""
        x = positions(unshuffle(self.encoder_to_decoder(x), mask_token, ids_restore))
        return head(self.decoder_norm(self.decoder(x).last_hidden_state))

    def mae_loss(self, pixel_values: torch.Tensor, audio_values: torch.Tensor, out: TvltModelOutput,
                 pixel_logits: torch.Tensor, audio_logits: torch.Tensor) -> torch.Tensor:
        """Pixel + audio MSE over the masked real patches. Targets are not detached, as in the
        reference: input gradients include the target term."""
        c = self.config
        pixel_target = patchify(pixel_values.to(pixel_logits.dtype), 1, pair(c.image_patch_size)[0]).flatten(2)
        audio_target = patchify_2d(audio_values.to(audio_logits.dtype), *pair(c.audio_patch_size))
        return (masked_mse(pixel_logits, pixel_target, out.pixel_label_masks)
                + masked_mse(audio_logits, audio_target, out.audio_label_masks))

    def pretraining_inputs(self, inputs: dict[str, torch.Tensor], mask_ratio: float | None = None,
                           generator: torch.Generator | None = None) -> dict[str, Any]:
        """The inputs of one pre-training step beside the media: MAE noise from ``generator``
        (``mask_ratio`` replaces config.pixel_mask_ratio), and for the matching task each sample's own
        frames or, for about half of a batch of two or more, the next sample's (label 0)."""
        if mask_ratio is not None:
            if not 0.0 <= mask_ratio < 1.0:
                raise ValueError(f"mask_ratio: expected a value in [0, 1), got {mask_ratio}")
            self.config.pixel_mask_ratio = mask_ratio
        out: dict[str, Any] = {"generator": generator}
        if self.config.task_matching:
            pixels = inputs["pixel_values"]
            b = pixels.shape[0]
            match = torch.rand(b, generator=generator) < 0.5 if b > 1 else torch.ones(b, dtype=torch.bool)
            match = match.to(pixels.device)
            other = torch.arange(b, device=pixels.device).roll(1)
            out["pixel_values_mixed"] = torch.where(match.view(b, 1, 1, 1, 1), pixels, pixels[other])
            if inputs.get("pixel_mask") is not None:
                mask = inputs["pixel_mask"]
                out["pixel_mask_mixed"] = torch.where(match[:, None], mask, mask[other])
            out["labels"] = match.float()
        return out

    @staticmethod
    def as_tuple(out: TvltForPreTrainingOutput) -> tuple:
        """transformers 4.57's tuple: loss, then three logit slots (None for a task that did not run)."""
        return _present(out.loss) + (out.matching_logits, out.pixel_logits, out.audio_logits) + _present(
            out.hidden_states, out.attentions)

    @forward_options
    def forward(self, pixel_values: torch.Tensor, audio_values: torch.Tensor, pixel_mask: torch.Tensor | None = None,
                audio_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                pixel_values_mixed: torch.Tensor | None = None, pixel_mask_mixed: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, *, pixel_noise: torch.Tensor | None = None,
                audio_noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> TvltForPreTrainingOutput:
        """Matching: ``pixel_values_mixed`` (batch, frames, C, H, W) against ``audio_values`` with
        ``labels`` (batch,) or (batch, 1), 1 = they match. MAE (training mode only, as in the
        reference): mask, encode, decode and regress the masked patches of ``pixel_values`` and
        ``audio_values``; noise as in :meth:`TvltModel.forward`.
        """
        c = self.config
        b = pixel_values.shape[0] if isinstance(pixel_values, torch.Tensor) else 0
        check_inputs(c, pixel_values, audio_values, pixel_mask, audio_mask)
        run_mae = c.task_mae and self.training
        if not (c.task_matching or run_mae):
            raise ValueError("TvltForPreTraining: MAE runs in training mode only and task_matching is off; "
                             "call model.train()")
        loss = matching_logits = pixel_logits = audio_logits = out = None
        flags = dict(output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        if c.task_matching:
            if pixel_values_mixed is None:
                raise ValueError("pixel_values_mixed: the matching task (config.task_matching) needs it, "
                                 "shape (batch, frames, channels, H, W), got None")
            if labels is None:
                raise ValueError("labels: the matching task (config.task_matching) needs labels of shape "
                                 f"({b},) or ({b}, 1), 1 = matched, got None")
            if not isinstance(labels, torch.Tensor) or labels.numel() != b:
                got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
                raise ValueError(f"labels: expected shape ({b},) or ({b}, 1), got {got}")
            check_inputs(c, pixel_values_mixed, audio_values, pixel_mask_mixed, audio_mask,
                         pixel_name="pixel_values_mixed", mask_name="pixel_mask_mixed")
            out = self.tvlt(pixel_values_mixed, audio_values, pixel_mask=pixel_mask_mixed, audio_mask=audio_mask,
                            return_dict=True, **flags)
            matching_logits = self.matching_head(out.last_hidden_state)
            loss = F.binary_cross_entropy_with_logits(
                matching_logits.view(-1), labels.reshape(-1).to(matching_logits.dtype))
        if run_mae:
            out = self.encode(pixel_values, audio_values, pixel_mask, audio_mask, pixel_noise=pixel_noise,
                              audio_noise=audio_noise, generator=generator, **flags)
            pixel_logits = self.decode(out.last_pixel_hidden_state, out.pixel_ids_restore, self.pixel_mask_token,
                                       self.decoder_pixel_pos, self.pixel_head)
            audio_logits = self.decode(out.last_audio_hidden_state, out.audio_ids_restore, self.audio_mask_token,
                                       self.decoder_audio_pos, self.audio_head)
            mae = self.mae_loss(pixel_values, audio_values, out, pixel_logits, audio_logits)
            loss = mae if loss is None else loss + mae
        return TvltForPreTrainingOutput(loss, matching_logits, pixel_logits, audio_logits,
                                        out.hidden_states, out.attentions)


class TvltForAudioVisualClassification(TvltPreTrainedModel):
    """cls token -> Linear(2x) -> LayerNorm -> GELU -> Linear(num_labels)."""

    is_classifier = True

    def __init__(self, config: TvltConfig):
        super().__init__(config)
        c, d = config, config.hidden_size
        self.tvlt = TvltModel(c)
        # A Sequential so its keys (classifier.0/1/3) are transformers' without a table entry.
        self.classifier = nn.Sequential(nn.Linear(d, 2 * d), nn.LayerNorm(2 * d, eps=c.layer_norm_eps), nn.GELU(),
                                        nn.Linear(2 * d, c.num_labels))
        self.post_init()

    @staticmethod
    def as_tuple(out: SequenceClassifierOutput) -> tuple:
        """transformers 4.57's tuple: (loss,) logits, then the encoder tuple from its fifth slot on, i.e.
        three masking slots that are always None here, then hidden states and attentions."""
        return _present(out.loss) + (out.logits, None, None, None) + _present(out.hidden_states, out.attentions)

    @forward_options
    def forward(self, pixel_values: torch.Tensor, audio_values: torch.Tensor, pixel_mask: torch.Tensor | None = None,
                audio_mask: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        """labels: (batch,) class ids for loss_type "classification"; (batch, num_labels) floats for "regression"."""
        out = self.tvlt(pixel_values, audio_values, pixel_mask, audio_mask, output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states)
        logits = self.classifier(out.last_hidden_state[:, 0])
        loss = self.loss(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss, logits, out.hidden_states, out.attentions)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        return audio_visual_loss(logits, labels, self.config.loss_type)


# ---- the family declaration ---------------------------------------------------------------------
def _pooled(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The cls token of the joint encoder (what the classifier reads)."""
    keys = ("pixel_values", "audio_values", "pixel_mask", "audio_mask")
    return backbone(model)(**{k: batch[k] for k in keys if k in batch}).last_hidden_state[:, 0]


def _dummy_inputs(cls: type, c: TvltConfig, batch_size: int = 1) -> dict[str, torch.Tensor]:
    inputs = {"pixel_values": random_video(batch_size, c.num_frames, c.num_image_channels, c.image_size),
              "audio_values": torch.randn(batch_size, c.num_audio_channels, c.spectrogram_length, c.frequency_length)}
    if cls is TvltForPreTraining:
        inputs["pixel_values_mixed"] = random_video(batch_size, c.num_frames, c.num_image_channels, c.image_size)
        inputs["labels"] = torch.ones(batch_size)
    return inputs


def _input_doc(c: TvltConfig) -> str:
    h, w = pair(c.image_size)
    return (f"pixel_values (batch, <= {c.num_frames}, {c.num_image_channels}, {h}, {w}) + audio_values "
            f"(batch, 1, <= {c.spectrogram_length}, {c.frequency_length}) log-mel, with pixel_mask/audio_mask")


FAMILY = register_family(Family(
    name="tvlt",
    classes=(TvltModel, TvltForPreTraining, TvltForAudioVisualClassification),
    task="audio-visual-classification",
    processors={
        # The model takes at most num_frames frames and spectrogram_length mel frames: a processor file
        # may ask for fewer, never more (longer audio is truncated). The patch sizes are the model's:
        # one preprocessor_config.json holds one patch_size for both parts (transformers' TvltProcessor
        # writes the feature extractor's last), so the file cannot say which part it meant.
        "video": Processor("video_processors:TvltVideoProcessor",
                           lambda c: {"num_frames": c.num_frames, "patch_size": list(pair(c.image_patch_size)),
                                      **frame_settings(c.image_size)}, limits=("num_frames",), fixed=("patch_size",)),
        "audio": Processor("tvlt_audio:TvltFeatureExtractor",
                           lambda c: {"spectrogram_length": c.spectrogram_length, "feature_size": c.frequency_length,
                                      "patch_size": list(pair(c.audio_patch_size))}, limits=("spectrogram_length",),
                           fixed=("patch_size",)),
    },
    accepts=frozenset({"video"}),
    pooled=_pooled, dummy_inputs=_dummy_inputs, input_doc=_input_doc,
    tiny=dict(image_size=32, num_frames=2, spectrogram_length=32, frequency_length=32, hidden_size=32,
              num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, decoder_hidden_size=16,
              decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=24),
    variants={"patch-level-audio-mask": {"audio_mask_type": "patch-level"}, "mean-pooling": {"use_mean_pooling": True}},
    pretrained={"tvlt-base": Pretrained("ZinengTang/tvlt-base", "feature-extraction", "pre-trained, no labels")},
))
