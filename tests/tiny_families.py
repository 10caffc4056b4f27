"""One tiny model per declared family (its task class, else its backbone) with generated inputs.

Read from the family declarations, so a new family is covered by the tests that use this without
editing them.
"""
from __future__ import annotations

import torch

from mediaformers.family import families


def tiny_cases(seed: int = 0, batch: int = 2) -> dict[str, tuple[torch.nn.Module, dict[str, torch.Tensor]]]:
    """family name -> (model in eval mode, keyword inputs for one forward at ``batch``)."""
    cases = {}
    for fam in sorted(families().values(), key=lambda f: f.name):
        cls = fam.head() or fam.backbone
        torch.manual_seed(seed)
        config = fam.config_for(cls, fam.config(**fam.tiny))
        model = cls(config).eval()
        torch.manual_seed(seed + 1)
        cases[fam.name] = (model, fam.dummy_inputs(cls, config, batch))
    return cases
