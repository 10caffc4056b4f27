"""``mediaformers train``: flags -> :class:`Recipe` -> :func:`fit`."""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import fields

EPILOG = """examples:
  mediaformers train ./videomae-base clips/ -o run/ --epochs 5          # clips/<label>/*.mp4
  mediaformers train ast-audioset sounds.csv -o runs/ft --epochs 10 --augment --mixup 0.5
  mediaformers train ast data/train --config '{"hidden_size": 192}' -o runs/ast   # random weights
  mediaformers train runs/ft/best data/train --val data/val -o runs/ft --eval-only
  torchrun --nproc-per-node 4 -m mediaformers train ./videomae-base clips/ -o run/ --batch-size 8   # DDP
  torchrun --nproc-per-node 4 -m mediaformers train ./videomae-base clips/ -o run/ --fsdp           # FSDP2
  mediaformers classify runs/ft/best clip.wav
  mediaformers train ast sounds.csv -o runs/ast --norm-stats-from-data   # mean/std of your fbank features
  mediaformers train videomae unlabelled/ -o runs/mae --task pretraining --mask-ratio 0.9   # any media files
  mediaformers train tvlt clips.csv -o runs/tvlt-mae     # manifest with only `path` (and start,end): pre-training
  mediaformers train ./altclip pairs.csv -o runs/clip    # manifest `path,caption`: contrastive, recall@1/5/10

manifests (.csv with a header row, or .jsonl one object a line; paths relative to the manifest):
  path,label            classification (several labels joined by ';', or a JSON list)
  path,caption          contrastive media-text pairs (captions in any language)
  path                  pre-training
  start,end             optional, any of the above: seconds; only that part of the file is decoded
"""


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="fine-tune a classifier, pre-train (masked autoencoding) or train media-text "
                                    "contrastively, on a folder or a manifest",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("model", help="checkpoint folder, hub id or registry name (its head is re-initialised), "
                                 "or a family name with --config for random weights")
    t.add_argument("data", help="folder of class subfolders (<label>/*.mp4|wav|jpg), a folder of media files "
                                "(pre-training), or a .csv/.jsonl manifest (see below)")
    t.add_argument("-o", "--output", required=True, help="run folder (checkpoints, metrics.jsonl, best/, final/)")
    t.add_argument("--config", type=json.loads, default={}, help="JSON config keywords when MODEL is a family name")
    t.add_argument("--val", help="validation data (default: hold out --val-fraction of train)")
    t.add_argument("--task", choices=("auto", *_recipe_module().TASKS), default="auto",
                   help="what to train (default auto: the task the model's family trains; for a family that "
                        "trains several, the one the data fits: labels -> classification, captions -> contrastive, "
                        "neither -> pretraining)")
    t.add_argument("--mask-ratio", type=float, default=None,
                   help="pre-training: share of patches masked (default: VideoMAE 0.9, TVLT its config's)")
    t.add_argument("--norm-stats-from-data", dest="norm_stats_from_data", action="store_true",
                   help="AST: compute the spectrogram mean/std from (a sample of) the training data before "
                        "training, train with them and save them in preprocessor_config.json")
    for f in fields(_recipe()):
        if f.name in ("data", "output", "model", "config", "val", "resume", "eval_only", "quiet", "task",
                      "mask_ratio", "norm_stats_from_data"):
            continue
        flag = "--" + f.name.replace("_", "-")
        flags = (flag, "--workers") if f.name == "num_workers" else (flag,)
        if f.type in ("bool", bool):
            t.add_argument(*flags, action="store_true")
        else:
            kind = int if str(f.type).startswith("int") else float
            t.add_argument(*flags, type=kind, default=f.default)
    t.add_argument("--resume", action="store_true", help="continue the run in OUTPUT from its last checkpoint")
    t.add_argument("--eval-only", action="store_true", help="evaluate the model on the validation data only")
    t.add_argument("--quiet", action="store_true")


def _recipe_module():
    from . import recipe

    return recipe


def _recipe():
    return _recipe_module().Recipe


def run(args) -> int:
    from .loop import fit

    Recipe = _recipe()
    names = {f.name for f in fields(Recipe)}
    metrics = fit(Recipe(**{k: v for k, v in vars(args).items() if k in names}))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, once
        print(json.dumps({k: v for k, v in metrics.items() if k != "confusion"}, default=str))
    return 0
