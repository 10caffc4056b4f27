"""Tiny task models of every family with generated inputs, for tests that run each family once."""
from __future__ import annotations

import torch

import mediaformers as mf

ENC = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)


def tiny_cases(seed: int = 0) -> dict[str, tuple[torch.nn.Module, dict[str, torch.Tensor]]]:
    """name -> (model in eval mode, keyword inputs for one forward at batch 2)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(2, 4, 3, 32, 32, generator=g)
    altclip = mf.AltCLIPConfig(
        text_config=dict(vocab_size=100, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=40, project_dim=24),
        vision_config=dict(**ENC, image_size=32, patch_size=8), projection_dim=16)
    tvlt = mf.TvltConfig(**ENC, image_size=32, image_patch_size=[16, 16], num_frames=2, spectrogram_length=32,
                         frequency_length=32, audio_patch_size=[16, 16], num_labels=3)
    cases = {
        "videomae": (mf.VideoMAEForVideoClassification(mf.VideoMAEConfig(
            **ENC, image_size=32, patch_size=8, num_frames=4, num_labels=10)), dict(pixel_values=video)),
        "vivit": (mf.VivitForVideoClassification(mf.VivitConfig(
            **ENC, image_size=32, num_frames=4, tubelet_size=[2, 8, 8], num_labels=10)), dict(pixel_values=video)),
        "ast": (mf.ASTForAudioClassification(mf.ASTConfig(**ENC, max_length=64, num_mel_bins=32, num_labels=10)),
                dict(input_values=torch.randn(2, 64, 32, generator=g))),
        "tvlt": (mf.TvltForAudioVisualClassification(tvlt),
                 dict(pixel_values=torch.randn(2, 2, 3, 32, 32, generator=g),
                      audio_values=torch.randn(2, 1, 32, 32, generator=g))),
        "altclip": (mf.AltCLIPModel(altclip),
                    dict(input_ids=torch.randint(5, 100, (2, 7), generator=g),
                         attention_mask=torch.ones(2, 7, dtype=torch.long),
                         pixel_values=torch.randn(2, 3, 32, 32, generator=g))),
    }
    return {k: (m.eval(), x) for k, (m, x) in cases.items()}
