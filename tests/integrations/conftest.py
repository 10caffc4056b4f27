"""One tiny fine-tuning setup shared by the client tests: a VideoMAE classifier of ours and transformers'
class loaded from the same checkpoint, and four labelled clips."""
from __future__ import annotations

import copy

import pytest
import torch

from mediaformers.family import get_family
from tests.parity import hf_load, perturb


@pytest.fixture(scope="session")
def videomae_pair(tmp_path_factory):
    """(ours, transformers', checkpoint folder), both in train mode; deep-copy before changing them."""
    transformers = pytest.importorskip("transformers")
    fam = get_family("videomae")
    torch.manual_seed(0)
    ours = perturb(fam.head()(fam.config(**fam.tiny, num_labels=3)))
    folder = tmp_path_factory.mktemp("videomae")
    ours.save_pretrained(folder)
    theirs = hf_load(transformers.VideoMAEForVideoClassification, str(folder))
    return ours.train(), theirs.train(), folder


def make_clips() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [{"pixel_values": torch.randn(4, 3, 32, 32, generator=g), "labels": i % 3} for i in range(4)]


@pytest.fixture(scope="session")
def clips():
    return make_clips()


def fresh(model):
    return copy.deepcopy(model)
