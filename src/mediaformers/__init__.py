"""mediaformers: fast, lean VideoMAE, ViViT, AST, TVLT and AltCLIP that load transformers checkpoints."""
from .auto import from_pretrained
from .config import Config
from .modeling import CheckpointError, LoadReport, PreTrainedModel
from .models.videomae import (
    VideoMAEConfig,
    VideoMAEForPreTraining,
    VideoMAEForVideoClassification,
    VideoMAEModel,
    make_tube_mask,
)
from .models.vivit import VivitConfig, VivitForVideoClassification, VivitModel

__version__ = "0.1.0"
