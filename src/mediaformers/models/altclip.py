"""AltCLIP (Chen et al., 2022): CLIP's ViT image tower paired with a multilingual XLM-R text tower."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..checkpoints.altclip import CONVERTER, normalise, text_layers_as_hub
from ..config import Config
from ..family import Family, Pretrained, Processor, register_family
from ..layers import Block, Encoder, PatchEmbed, resample_grid
from ..layers.losses import clip_loss as contrastive_loss
from ..modeling import LoadReport, PreTrainedModel
from ..outputs import BaseModelOutputWithPooling, forward_options
from .altclip_outputs import (
    AltCLIPOutput,
    BaseModelOutputWithPoolingAndProjection,
    check_text,
)
from .common import check_float, frame_settings, pair
from .xlmr import XLMRobertaEncoder


class _TowerConfig(Config):
    """A tower's config; ``from_dict`` of a full AltCLIP checkpoint's config.json reads the tower's part."""

    tower: ClassVar[str]  # the field of AltCLIPConfig that holds this tower

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> Any:
        if data.get("model_type") == "altclip":  # one tower of a full AltCLIP checkpoint
            data = getattr(AltCLIPConfig.from_dict(data), cls.tower).to_dict()
        return super().from_dict(data, **overrides)


@dataclass(kw_only=True)
class AltCLIPTextConfig(_TowerConfig):
    model_type = "altclip_text_model"
    tower = "text_config"

    vocab_size: int = 250002
    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    max_position_embeddings: int = 514  # 512 tokens + the two offsets below padding_idx + 1
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    initializer_factor: float = 0.02
    pad_token_id: int | None = 1  # also the padding index of the position embeddings (fairseq)
    bos_token_id: int | None = 0
    eos_token_id: int | None = 2
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.0
    type_vocab_size: int = 1
    project_dim: int = 768  # width after `transformation`, the text tower's output


@dataclass(kw_only=True)
class AltCLIPVisionConfig(_TowerConfig):
    model_type = "altclip_vision_model"
    tower = "vision_config"

    hidden_size: int = 768
    intermediate_size: int = 3072
    projection_dim: int = 512  # unused by the model; kept for config.json
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224  # square input side the position embeddings were trained for
    patch_size: int = 32
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    attention_dropout: float = 0.0
    initializer_range: float = 0.02
    initializer_factor: float = 1.0

    @property
    def grid(self) -> tuple[int, int]:
        h, w = pair(self.image_size)
        return h // self.patch_size, w // self.patch_size



@dataclass(kw_only=True)
class AltCLIPConfig(Config):
    model_type = "altclip"
    sub_configs = {"text_config": AltCLIPTextConfig, "vision_config": AltCLIPVisionConfig}

    text_config: AltCLIPTextConfig | dict | None = None  # a dict is read with AltCLIPTextConfig.from_dict
    vision_config: AltCLIPVisionConfig | dict | None = None
    projection_dim: int = 768  # width of the shared image-text embedding space
    logit_scale_init_value: float = 2.6592  # log(1 / 0.07), CLIP's initial temperature
    initializer_factor: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.text_config, AltCLIPTextConfig):
            self.text_config = AltCLIPTextConfig.from_dict(self.text_config or {})
        if not isinstance(self.vision_config, AltCLIPVisionConfig):
            self.vision_config = AltCLIPVisionConfig.from_dict(self.vision_config or {})

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> AltCLIPConfig:
        data = dict(data)
        for part in ("text", "vision"):
            # Older checkpoints carry `{part}_config_dict`; transformers lets it override `{part}_config`.
            legacy = data.pop(f"{part}_config_dict", None)
            if legacy:
                data[f"{part}_config"] = {**(data.get(f"{part}_config") or {}), **legacy}
        return super().from_dict(data, **overrides)



class AltCLIPPreTrainedModel(PreTrainedModel):
    config_class = AltCLIPConfig
    base_model_prefix = "altclip"
    converter = CONVERTER
    is_backbone = True

    def load_hf_state_dict(self, hf_state: dict[str, torch.Tensor], **kwargs: Any) -> LoadReport:
        return super().load_hf_state_dict(normalise(hf_state), **kwargs)

    def _init_weights(self) -> None:
        super()._init_weights()
        std = getattr(self.config, "initializer_range", 0.02)
        for m in self.modules():
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=std)
                if m.padding_idx is not None:
                    nn.init.zeros_(m.weight[m.padding_idx])


class AltCLIPTextModel(AltCLIPPreTrainedModel):
    """XLM-R encoder -> LayerNorm (``pre_LN``) -> linear (``transformation``) on every token; pooled = token 0."""

    config_class = AltCLIPTextConfig
    base_model_prefix = "roberta"  # transformers' name
    checkpoint_prefix = "text_model"  # so the text tower loads out of a full AltCLIP checkpoint
    main_input_name = "input_ids"
    input_embeddings = "xlmr.embeddings.word"

    def __init__(self, config: AltCLIPTextConfig):
        super().__init__(config)
        c = config
        self.xlmr = XLMRobertaEncoder(
            vocab_size=c.vocab_size, dim=c.hidden_size, depth=c.num_hidden_layers, num_heads=c.num_attention_heads,
            mlp_hidden=c.intermediate_size, max_positions=c.max_position_embeddings, type_vocab_size=c.type_vocab_size,
            padding_idx=c.pad_token_id, act=c.hidden_act, eps=c.layer_norm_eps, drop=c.hidden_dropout_prob,
            attn_drop=c.attention_probs_dropout_prob,
        )
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.proj = nn.Linear(c.hidden_size, c.project_dim)
        self.post_init()

    @forward_options
    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, *, head_mask: torch.Tensor | None = None,
                encoder_hidden_states: torch.Tensor | None = None, encoder_attention_mask: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None) -> BaseModelOutputWithPoolingAndProjection:
        """input_ids (batch, tokens) or inputs_embeds (batch, tokens, hidden), attention_mask 1 = token,
        0 = padding -> last_hidden_state (batch, tokens, project_dim), pooler_output (batch, project_dim).

        ``hidden_states`` are the encoder's (hidden_size wide), the embeddings' output first.
        ``encoder_hidden_states`` / ``encoder_attention_mask`` are accepted and unused, as in the
        reference: the text tower is an encoder without cross-attention.
        """
        check_text(input_ids, attention_mask, inputs_embeds)
        out = self.xlmr(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, head_mask=head_mask,
                        output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        x = self.proj(self.norm(out.last_hidden_state))
        return BaseModelOutputWithPoolingAndProjection(x, x[:, 0], out.hidden_states, out.attentions)


class AltCLIPVisionModel(AltCLIPPreTrainedModel):
    """CLIP's pre-norm ViT: [CLS] + patches + learned positions, pre-LayerNorm, blocks; pooled = LN(CLS)."""

    config_class = AltCLIPVisionConfig
    checkpoint_prefix = "vision_model"  # so the vision tower loads out of a full AltCLIP checkpoint
    embedding_parameters = ("pos_embed",)  # an nn.Embedding in transformers

    def __init__(self, config: AltCLIPVisionConfig):
        super().__init__(config)
        c = config
        d = c.hidden_size
        self.patch_embed = PatchEmbed(c.num_channels, d, (c.patch_size, c.patch_size), bias=False)
        self.cls_token = nn.Parameter(torch.zeros(d))
        self.pos_embed = nn.Parameter(torch.zeros(c.grid[0] * c.grid[1] + 1, d))
        self.norm_pre = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.encoder = Encoder(
            [Block(d, c.num_attention_heads, c.intermediate_size, act=c.hidden_act, eps=c.layer_norm_eps,
                   attn_drop=c.attention_dropout) for _ in range(c.num_hidden_layers)]
        )
        self.norm_post = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.post_init()

    def _init_weights(self) -> None:
        super()._init_weights()
        nn.init.normal_(self.cls_token, std=self.config.hidden_size**-0.5)
        nn.init.normal_(self.pos_embed, std=self.config.initializer_range)

    def position_embeddings(self, height: int, width: int) -> torch.Tensor:
        """(1 + grid_h * grid_w, dim): the trained table, resized bicubically for another grid."""
        c = self.config
        new = (height // c.patch_size, width // c.patch_size)
        return torch.cat([self.pos_embed[:1], resample_grid(self.pos_embed[1:], c.grid, new)])

    @forward_options
    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False, *,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None) -> BaseModelOutputWithPooling:
        """pixel_values (batch, channels, H, W) -> last_hidden_state (batch, 1 + patches, hidden),
        pooler_output (batch, hidden). ``hidden_states`` start with the pre-LayerNorm'd embeddings."""
        c = self.config
        want = f"(batch, {c.num_channels}, {c.image_size}, {c.image_size})"
        b, channels, h, w = check_float(pixel_values, "pixel_values", 4, want, "normalised pixels")
        if channels != c.num_channels:
            raise ValueError(f"pixel_values: expected shape {want}, got {tuple(pixel_values.shape)}")
        if not interpolate_pos_encoding and (h, w) != pair(c.image_size):
            raise ValueError(
                f"pixel_values: expected shape {want}, got {tuple(pixel_values.shape)} "
                "(pass interpolate_pos_encoding=True for other sizes)"
            )
        if h < c.patch_size or w < c.patch_size:
            raise ValueError(f"pixel_values: images of {h}x{w} are smaller than one {c.patch_size}px patch")
        x = self.patch_embed(pixel_values.to(self.patch_embed.proj.weight.dtype))
        x = torch.cat([self.cls_token.expand(b, 1, -1), x], dim=1)
        pos = self.position_embeddings(h, w) if interpolate_pos_encoding else self.pos_embed
        x = self.norm_pre(x + pos)
        out = self.encoder(x, output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        pooled = self.norm_post(out.last_hidden_state[:, 0])
        return BaseModelOutputWithPooling(out.last_hidden_state, pooled, out.hidden_states, out.attentions)


class AltCLIPModel(AltCLIPPreTrainedModel):
    """Both towers and their projections into one space; logits = exp(logit_scale) * cosine similarity."""

    is_contrastive = True  # what ``mediaformers train --task contrastive`` trains
    main_input_name = "input_ids"
    input_embeddings = ""  # two towers, no single input embedding (as transformers)

    def __init__(self, config: AltCLIPConfig):
        super().__init__(config)
        c = config
        self.text_model = AltCLIPTextModel(c.text_config)
        self.vision_model = AltCLIPVisionModel(c.vision_config)
        self.visual_projection = nn.Linear(c.vision_config.hidden_size, c.projection_dim, bias=False)
        self.text_projection = nn.Linear(c.text_config.project_dim, c.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(c.logit_scale_init_value)))
        if not self.is_meta:  # the towers initialised themselves; only the projections are left
            self._init_projections()

    def _init_projections(self) -> None:
        c = self.config
        nn.init.normal_(self.visual_projection.weight, std=c.vision_config.hidden_size**-0.5 * c.initializer_factor)
        nn.init.normal_(self.text_projection.weight, std=c.text_config.project_dim**-0.5 * c.initializer_factor)
        nn.init.constant_(self.logit_scale, c.logit_scale_init_value)

    def _init_weights(self) -> None:
        """Each tower's own init, then the projections (after a meta build: one init of the whole)."""
        self.text_model._init_weights()
        self.vision_model._init_weights()
        self._init_projections()

    def hf_state_dict(self, state: dict[str, torch.Tensor] | None = None, *, layout: str = "file") -> dict[str, torch.Tensor]:
        hf = super().hf_state_dict(state, layout=layout)
        return text_layers_as_hub(hf) if layout == "file" else hf  # transformers' modules: layers.N in both towers

    @forward_options
    def _attention_towers(self) -> dict[str, nn.Module]:
        return {"text_config": self.text_model, "vision_config": self.vision_model}

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          token_type_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None, *,
                          inputs_embeds: torch.Tensor | None = None, output_attentions: bool | None = None,
                          output_hidden_states: bool | None = None,
                          return_dict: bool | None = None) -> BaseModelOutputWithPoolingAndProjection:
        """The text tower's output with ``pooler_output`` = text_projection(token 0), (batch, projection_dim),
        not normalised (as transformers 5 returns it)."""
        out = self.text_model(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                              output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        out.pooler_output = self.text_projection(out.last_hidden_state[:, 0])
        return out

    @forward_options
    def get_image_features(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False, *,
                           output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                           return_dict: bool | None = None) -> BaseModelOutputWithPooling:
        """The vision tower's output with ``pooler_output`` = visual_projection(LN(CLS)), (batch, projection_dim)."""
        out = self.vision_model(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding,
                                output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        out.pooler_output = self.visual_projection(out.pooler_output)
        return out

    @forward_options
    def forward(self, input_ids: torch.Tensor | None = None, pixel_values: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, return_loss: bool | None = None,
                interpolate_pos_encoding: bool = False, *, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None) -> AltCLIPOutput:
        """input_ids (texts, tokens) and pixel_values (images, C, H, W) -> logits_per_image (images, texts).

        ``return_loss`` needs as many texts as images (pair i matches pair i).
        """
        if input_ids is None or pixel_values is None:
            raise ValueError("input_ids and pixel_values: AltCLIPModel needs both; use get_text_features / "
                             "get_image_features for one modality")
        vision = self.vision_model(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding,
                                   output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        text = self.text_model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                               position_ids=position_ids, output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        image_embeds = self.visual_projection(vision.pooler_output)
        text_embeds = self.text_projection(text.pooler_output)
        image_embeds = image_embeds / image_embeds.norm(p=2, dim=-1, keepdim=True)
        text_embeds = text_embeds / text_embeds.norm(p=2, dim=-1, keepdim=True)
        logits_per_text = text_embeds @ image_embeds.t() * self.logit_scale.exp()
        loss = None
        if return_loss:
            if logits_per_text.shape[0] != logits_per_text.shape[1]:
                raise ValueError(
                    f"return_loss: the contrastive loss pairs text i with image i; got {logits_per_text.shape[0]} "
                    f"texts and {logits_per_text.shape[1]} images"
                )
            loss = contrastive_loss(logits_per_text)
        return AltCLIPOutput(loss, logits_per_text.t(), logits_per_text, text_embeds, image_embeds, text, vision)


# ---- the family declaration ---------------------------------------------------------------------
def _pooled(model: AltCLIPPreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The projected image embedding (not normalised), per image or video frame; a tower alone gives
    its own pooled output."""
    if isinstance(model, AltCLIPModel):
        return model.get_image_features(pixel_values=batch["pixel_values"]).pooler_output
    if isinstance(model, AltCLIPVisionModel):
        return model(pixel_values=batch["pixel_values"]).pooler_output
    return model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).pooler_output


def _dummy_inputs(cls: type, c: Config, batch_size: int = 1) -> dict[str, torch.Tensor]:
    """Token ids past the special ones, and images, for whichever towers ``cls`` has."""
    inputs = {}
    text = c if isinstance(c, AltCLIPTextConfig) else getattr(c, "text_config", None)
    vision = c if isinstance(c, AltCLIPVisionConfig) else getattr(c, "vision_config", None)
    if text is not None:
        inputs["input_ids"] = torch.randint(3, text.vocab_size, (batch_size, 7))
        inputs["attention_mask"] = torch.ones(batch_size, 7, dtype=torch.long)
    if vision is not None:
        h, w = pair(vision.image_size)
        inputs["pixel_values"] = torch.randn(batch_size, vision.num_channels, h, w)
    return inputs


def _input_doc(c: AltCLIPConfig) -> str:
    v = c.vision_config
    h, w = pair(v.image_size)
    return (f"pixel_values (batch, {v.num_channels}, {h}, {w}) CLIP-normalised images, and/or input_ids "
            f"(batch, <= {c.text_config.max_position_embeddings - 2}) from the XLM-R tokenizer")


FAMILY = register_family(Family(
    name="altclip",
    classes=(AltCLIPModel, AltCLIPTextModel, AltCLIPVisionModel),
    task="zero-shot-classification",
    processors={"image": Processor("clip_image_processor:CLIPImageProcessor",
                                   lambda c: frame_settings(c.vision_config.image_size)),
                "text": Processor("altclip_processor:AltCLIPProcessor")},
    accepts=frozenset({"image", "video"}),  # a video: its frames, averaged
    pooled=_pooled, dummy_inputs=_dummy_inputs, input_doc=_input_doc,
    tiny=dict(text_config=dict(vocab_size=100, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                               num_attention_heads=4, max_position_embeddings=40, project_dim=24,
                               hidden_dropout_prob=0.0),
              vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                                 image_size=30, patch_size=10),
              projection_dim=16),
    pretrained={"altclip": Pretrained("BAAI/AltCLIP", "zero-shot-classification", "ViT-L/14 + XLM-R large")},
    exports=(AltCLIPTextConfig, AltCLIPVisionConfig),
))
