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
  JSONL labels may be text, whole numbers or lists of them (one type in a manifest); files are UTF-8.

resume (--resume): the run goes on from its last checkpoint only with the data, model, task and options it
was trained with (recorded in OUTPUT/run.json; a mismatch is refused, naming the field). These may change:
  --epochs, --max-steps, --save-every, --keep-last, --workers, --quiet, --compile, --gradient-checkpointing,
  --max-bad-fraction
files that fail to decode are skipped and named; the run stops once more distinct files have failed than
--max-bad-fraction of the files one epoch holds (a bad file early in an epoch does not stop it alone).
"""


HELP = {
    "max_bad_fraction": "stop once more distinct files fail to decode than this fraction of the files one epoch "
                        "holds (default 0.1; the files that fail are skipped and named)",
    "allow_partial": "damaged or cut media: train on the part that decodes instead of skipping the file (files "
                     "that decode not at all still count against --max-bad-fraction)",
    "label_smoothing": "in [0, 1) (default 0)", "grad_accum": "batches per optimizer step, >= 1 (default 1)",
    "epochs": "may change on --resume", "max_steps": "stop after this many optimizer steps; may change on --resume",
    "save_every": "steps between resumable checkpoints (default 0: each epoch's end); may change on --resume",
}


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
            t.add_argument(*flags, action="store_true", help=HELP.get(f.name))
        else:
            kind = int if str(f.type).startswith("int") else float
            t.add_argument(*flags, type=kind, default=f.default, help=HELP.get(f.name))
    t.add_argument("--resume", action="store_true", help="continue the run in OUTPUT from its last checkpoint")
    t.add_argument("--eval-only", action="store_true", help="evaluate the model on the validation data only")
    t.add_argument("--quiet", action="store_true")


def _recipe_module():
    from . import recipe

    return recipe


def _recipe():
    return _recipe_module().Recipe


def check(args):
    """The recipe the flags make, every number checked before anything loads; errors name the flag."""
    Recipe = _recipe()
    names = {f.name for f in fields(Recipe)}
    recipe = Recipe(**{k: v for k, v in vars(args).items() if k in names})
    if recipe.resume and recipe.eval_only:
        raise ValueError("--resume and --eval-only: expected one of them (continue a run or evaluate a model), "
                         "got both")
    try:
        recipe.check()
    except ValueError as err:
        field, _, rest = str(err).partition(":")
        flag = {"model": "MODEL", "data": "DATA", "output": "-o", "num_workers": "--num-workers/--workers"}.get(
            field, "--" + field.replace("_", "-"))
        raise ValueError(f"{flag}:{rest}") from None
    return recipe


def run(args) -> int:
    recipe = check(args)
    from .loop import fit

    metrics = fit(recipe)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, once
        print(json.dumps({k: v for k, v in metrics.items() if k != "confusion"}, default=str))
    return 0
