"""``mediaformers train``: flags -> :class:`Recipe` -> :func:`fit`."""
from __future__ import annotations

import argparse
import json
from dataclasses import fields

EPILOG = """examples:
  mediaformers train data/train --family ast --config '{"hidden_size": 192}' -o runs/ast
  mediaformers train data/train.csv --model MIT/ast-finetuned-audioset-10-10-0.4593 -o runs/ft --epochs 10
  mediaformers train data/train --model runs/ft/best --val data/val -o runs/ft --eval-only
  mediaformers classify runs/ft/best clip.wav
"""


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="fine-tune or train a classifier on a folder of class subfolders or a manifest",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("train", help="folder of <label>/ subfolders, or a .csv/.jsonl manifest (path,label)")
    t.add_argument("-o", "--output", required=True, help="run folder (checkpoints, metrics.jsonl, best/, final/)")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="checkpoint to start from (head re-initialised to the data's labels)")
    src.add_argument("--family", help="start from a config of this family (random weights)")
    t.add_argument("--config", type=json.loads, default={}, help="JSON config keywords with --family")
    t.add_argument("--val", help="validation data (default: hold out --val-fraction of train)")
    for f in fields(_recipe()):
        if f.name in ("train", "output", "model", "family", "config", "val", "resume", "eval_only", "quiet"):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            t.add_argument(flag, action="store_true")
        else:
            kind = int if str(f.type).startswith("int") else float
            t.add_argument(flag, type=kind, default=f.default)
    t.add_argument("--resume", action="store_true", help="continue the run in OUTPUT from its last checkpoint")
    t.add_argument("--eval-only", action="store_true", help="evaluate the model on the validation data only")
    t.add_argument("--quiet", action="store_true")


def _recipe():
    from .recipe import Recipe

    return Recipe


def run(args) -> int:
    from .loop import fit

    Recipe = _recipe()
    names = {f.name for f in fields(Recipe)}
    metrics = fit(Recipe(**{k: v for k, v in vars(args).items() if k in names}))
    print(json.dumps({k: v for k, v in metrics.items() if k != "confusion"}, default=str))
    return 0
