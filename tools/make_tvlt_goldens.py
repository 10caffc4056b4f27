"""TVLT model golden files from the reference (transformers 4.57.1, the last release with TVLT).

Run under the reference venv (``bash tools/make_tvlt_venv.sh``):

    tools/.venv-tvlt/bin/python tools/make_tvlt_goldens.py            # (re)write tests/fixtures/tvlt_models/
    tools/.venv-tvlt/bin/python tools/make_tvlt_goldens.py --run CKPT_DIR --case NAME --cls CLASS --out FILE
    tools/.venv-tvlt/bin/python tools/make_tvlt_goldens.py --jobs JOBS.json   # several --run at once

The first form builds small random-weight reference models for each case below, perturbs every
parameter (default inits zero biases and norms, which would hide mapping bugs), saves the checkpoint
(save_pretrained: config.json + model.safetensors) and, per class, ``io.safetensors`` holding the
inputs (``in.*``), every output field (``out.*``; tuples as ``out.NAME.I``) and the gradients of
the loss (or of a fixed weighted sum of ``last_hidden_state``) w.r.t. the float inputs (``grad.*``),
plus ``meta.json`` (forward keywords, seed, train mode, the reference's key set).

The second form is the reverse direction: it loads a checkpoint someone else wrote (ours) with
4.57.1, insists that no key is missing, unexpected or mis-shaped, runs the stored inputs of a case
under the stored seed and writes the outputs to FILE (same ``out.*`` naming).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import torch
from safetensors.torch import load_file, save_file

warnings.filterwarnings("ignore")
import transformers as tf  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "tvlt_models")
CLASSES = ["TvltModel", "TvltForPreTraining", "TvltForAudioVisualClassification"]
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
            decoder_hidden_size=24, decoder_num_hidden_layers=2, decoder_num_attention_heads=2,
            decoder_intermediate_size=32)
# Each case: config, batch, input frames, input audio time steps, padding (pixel_mask/audio_mask
# with zeros), and which classes run how. Patch-level audio masking is spelled "patch_level" in
# config.json (the reference config rejects "patch-level") but "patch-level" in the reference
# model (which rejects "patch_level"), so the generator switches the spelling at run time.
CASES = {
    "base": dict(
        config=dict(image_size=16, image_patch_size=[8, 8], num_frames=4, spectrogram_length=64,
                    frequency_length=16, audio_patch_size=[8, 8], pixel_mask_ratio=0.5, audio_mask_ratio=0.3),
        batch=2, frames=4, audio_time=64, padded=False),
    "padded-patchlevel": dict(
        config=dict(image_size=16, image_patch_size=[8, 8], num_frames=4, spectrogram_length=64,
                    frequency_length=16, audio_patch_size=[8, 8], audio_mask_type="patch_level",
                    audio_mask_ratio=0.4, num_labels=3, hidden_act="gelu_new"),
        batch=2, frames=3, audio_time=48, padded=True),
    "rect-regression": dict(
        config=dict(image_size=[16, 8], image_patch_size=[8, 8], num_frames=2, spectrogram_length=32,
                    frequency_length=8, audio_patch_size=[8, 4], qkv_bias=False, use_mean_pooling=True,
                    loss_type="regression", num_labels=2, task_mae=True, pixel_mask_ratio=0.6),
        batch=1, frames=2, audio_time=24, padded=False),
    "matching-only": dict(
        config=dict(image_size=16, image_patch_size=[8, 8], num_frames=2, spectrogram_length=32,
                    frequency_length=16, audio_patch_size=[8, 8], task_mae=False, num_labels=4),
        batch=3, frames=2, audio_time=32, padded=True),
}
SEED = 1234


def perturb(model: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def make_inputs(case: dict, cls: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs for one case: pixels, audio, masks (with padding where the case asks) and labels."""
    c, b, t = case["config"], case["batch"], case["frames"]
    g = torch.Generator().manual_seed(seed)
    h, w = c["image_size"] if isinstance(c["image_size"], list) else (c["image_size"],) * 2
    p = c["image_patch_size"]
    per_frame = (h // p[0]) * (w // p[1])
    time, freq = case["audio_time"], c["frequency_length"]
    n_audio = (time // c["audio_patch_size"][0]) * (freq // c["audio_patch_size"][1])
    x = {
        "pixel_values": torch.randn(b, t, 3, h, w, generator=g),
        "audio_values": torch.randn(b, 1, time, freq, generator=g),
    }
    if case["padded"]:
        pm, am = torch.ones(b, t * per_frame), torch.ones(b, n_audio)
        pm[-1, (t - 1) * per_frame:] = 0  # last sample: its last frame is padding
        am[-1, n_audio // 2:] = 0  # last sample: the second half of its audio is padding
        x["pixel_mask"], x["audio_mask"] = pm, am
    if cls == "TvltForPreTraining" and c.get("task_matching", True):
        x["pixel_values_mixed"] = torch.randn(b, t, 3, h, w, generator=g)
        if case["padded"]:
            x["pixel_mask_mixed"] = x["pixel_mask"].flip(0)
        x["labels"] = torch.randint(0, 2, (b, 1), generator=g).float()
    if cls == "TvltForAudioVisualClassification":
        n = c.get("num_labels", 2)
        if c.get("loss_type") == "regression":
            x["labels"] = torch.randn(b, n, generator=g)
        else:
            x["labels"] = torch.randint(0, n, (b,), generator=g)
    return x


def runs_for(cls: str) -> list[dict]:
    """Forward variants per class: (name, keywords, train mode)."""
    if cls == "TvltModel":
        return [dict(name="plain", kwargs={}, train=False),
                dict(name="masked", kwargs=dict(mask_pixel=True, mask_audio=True), train=False)]
    if cls == "TvltForPreTraining":
        return [dict(name="train", kwargs={}, train=True), dict(name="eval", kwargs={}, train=False)]
    return [dict(name="plain", kwargs={}, train=False)]


def flatten(out) -> dict[str, torch.Tensor]:
    flat = {}
    for key, value in out.items():
        if isinstance(value, torch.Tensor):
            flat[f"out.{key}"] = value.detach().float() if key.endswith("label_masks") else value.detach()
        elif isinstance(value, (tuple, list)):
            for i, v in enumerate(value):
                flat[f"out.{key}.{i}"] = v.detach()
        elif isinstance(value, float):  # TvltForPreTraining's loss starts as 0.0
            flat[f"out.{key}"] = torch.tensor(value)
    return flat


def scalar(last_hidden_state: torch.Tensor) -> torch.Tensor:
    w = torch.linspace(-1, 1, last_hidden_state.numel()).reshape(last_hidden_state.shape)
    return (last_hidden_state * w).sum()


def run(model, inputs: dict[str, torch.Tensor], kwargs: dict, train: bool):
    """Forward (under SEED, so masking noise is reproducible) and backward; returns outputs and grads."""
    model.train(train)
    if getattr(model.config, "audio_mask_type", None) == "patch_level":
        model.config.audio_mask_type = "patch-level"  # the reference model's spelling, see CASES
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()
              if k in ("pixel_values", "audio_values", "pixel_values_mixed")}
    torch.manual_seed(SEED)
    # Attention weights only for the bare model: they are the largest outputs and the heads add nothing.
    attn = type(model).__name__ == "TvltModel"
    out = model(**{**inputs, **leaves}, **kwargs, output_hidden_states=True, output_attentions=attn)
    loss = out.get("loss") if "loss" in out else None
    target = loss if isinstance(loss, torch.Tensor) else scalar(out["last_hidden_state"])
    target.backward()
    grads = {f"grad.{k}": v.grad for k, v in leaves.items() if v.grad is not None}
    return out, grads


def generate() -> None:
    for case_name, case in CASES.items():
        for ci, cls in enumerate(CLASSES):
            config = tf.TvltConfig(**TINY, **case["config"])
            torch.manual_seed(ci)
            model = getattr(tf, cls)(config)
            perturb(model, seed=10 * ci + 1)
            folder = os.path.join(ROOT, case_name, cls)
            model.save_pretrained(folder)
            inputs = make_inputs(case, cls)
            tensors = {f"in.{k}": v for k, v in inputs.items()}
            meta = {"seed": SEED, "runs": [], "keys": sorted(model.state_dict())}
            for r in runs_for(cls):
                out, grads = run(model, inputs, r["kwargs"], r["train"])
                tensors.update({f"{r['name']}.{k}": v.contiguous().clone() for k, v in {**flatten(out), **grads}.items()})
                meta["runs"].append(r)
            save_file(tensors, os.path.join(folder, "io.safetensors"))
            with open(os.path.join(folder, "meta.json"), "w") as fh:
                json.dump(meta, fh, indent=1)
            print(case_name, cls, "ok", file=sys.stderr)


def run_foreign(folder: str, case_name: str, cls: str, out_file: str) -> None:
    """Load a checkpoint written by mediaformers with 4.57.1 and run a case's stored inputs."""
    model, info = getattr(tf, cls).from_pretrained(folder, output_loading_info=True)
    problems = {k: v for k, v in info.items() if k != "error_msgs" and v}
    if problems:
        raise SystemExit(f"transformers 4.57.1 reports: {problems}")
    io = load_file(os.path.join(ROOT, case_name, cls, "io.safetensors"))
    inputs = {k[3:]: v for k, v in io.items() if k.startswith("in.")}
    tensors = {}
    for r in runs_for(cls):
        out, grads = run(model, inputs, r["kwargs"], r["train"])
        tensors.update({f"{r['name']}.{k}": v.contiguous().clone() for k, v in {**flatten(out), **grads}.items()})
    save_file(tensors, out_file)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", metavar="CKPT_DIR", help="reverse direction: run a foreign checkpoint with 4.57.1")
    ap.add_argument("--case", choices=sorted(CASES))
    ap.add_argument("--cls", choices=CLASSES)
    ap.add_argument("--out")
    ap.add_argument("--jobs", help="JSON list of {folder, case, cls, out}: one process for several --run")
    args = ap.parse_args()
    if args.jobs:
        with open(args.jobs) as fh:
            for job in json.load(fh):
                run_foreign(job["folder"], job["case"], job["cls"], job["out"])
    elif args.run:
        run_foreign(args.run, args.case, args.cls, args.out)
    else:
        generate()
