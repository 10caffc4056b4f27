"""Known checkpoints by short name: the hub id and the family, so users need not remember ids.

Preprocessing travels with the weights (the checkpoint's preprocessor_config.json), so an entry
holds no processor settings of its own.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    hub_id: str
    family: str  # model_type
    task: str  # what `mediaformers classify` does with it
    note: str = ""


REGISTRY: dict[str, Entry] = {
    "videomae-base-kinetics": Entry("MCG-NJU/videomae-base-finetuned-kinetics", "videomae", "video-classification",
                                    "Kinetics-400, 16x224"),
    "videomae-base-ssv2": Entry("MCG-NJU/videomae-base-finetuned-ssv2", "videomae", "video-classification",
                                "Something-Something v2, 16x224"),
    "videomae-base": Entry("MCG-NJU/videomae-base", "videomae", "feature-extraction", "self-supervised, K400"),
    "vivit-b-kinetics": Entry("google/vivit-b-16x2-kinetics400", "vivit", "video-classification",
                              "Kinetics-400, 32x224"),
    "ast-audioset": Entry("MIT/ast-finetuned-audioset-10-10-0.4593", "audio-spectrogram-transformer",
                          "audio-classification", "AudioSet-527, 10.24 s windows"),
    "ast-speech-commands": Entry("MIT/ast-finetuned-speech-commands-v2", "audio-spectrogram-transformer",
                                 "audio-classification", "Speech Commands v2"),
    "tvlt-base": Entry("ZinengTang/tvlt-base", "tvlt", "feature-extraction", "pre-trained, no labels"),
    "altclip": Entry("BAAI/AltCLIP", "altclip", "zero-shot-classification", "ViT-L/14 + XLM-R large"),
}


def lookup(ref: str) -> str:
    """The hub id for a registry name; anything else is returned unchanged."""
    entry = REGISTRY.get(ref)
    return entry.hub_id if entry else ref
