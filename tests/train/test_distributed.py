"""Distributed training on CPU (gloo) through torchrun: 2 DDP processes x batch 2 take the same steps
as 1 process x batch 4; FSDP2 with 2 x batch 1 x accumulation 2 ends with the same weights, its final
folder reloads in one process, and a run cut mid-epoch resumes bit for bit; each rank resumes its own
RNG. Contrastive AltCLIP training over the global batch (embeddings gathered): 2 DDP or FSDP processes
take the 1-process steps, with its gradients. Plus the reporter."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from mediaformers.train import Recipe, fit

from .conftest import TINY_AUDIO, write_audio_classes
from .test_tasks import altclip, pairs  # noqa: F401  (fixtures: the tiny AltCLIP checkpoint, image/video pairs)

# every file in train and val, 12 files: 3 global batches of 4 per epoch, no padding anywhere
COMMON = dict(config=TINY_AUDIO, max_steps=3, lr=3e-3, clip_grad=1.0, warmup_steps=1, seed=1)

def _torchrun(args: list[str], timeout: int = 150) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           *args], env=env, capture_output=True, text=True, timeout=timeout)


def _train_cli(data, run, *flags):
    return _torchrun(["-m", "mediaformers", "train", "ast", str(data), "--val", str(data), "-o", str(run),
                      "--config", json.dumps(TINY_AUDIO), "--max-steps", "3", "--lr", "3e-3", "--warmup-steps", "1",
                      "--seed", "1", "--quiet", *flags])


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _losses(run):
    return [r["train_loss"] for r in _rows(run) if "lr" in r]


def _weights(run):
    from safetensors.torch import load_file

    return load_file(run / "final" / "model.safetensors")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: 1 process x batch 4 (the global batch of 2 x 2)."""
    root = tmp_path_factory.mktemp("dist")
    data = write_audio_classes(root / "data")
    run = root / "one"
    metrics = fit(Recipe(model="ast", data=str(data), val=str(data), output=str(run), batch_size=4, **COMMON))
    return data, run, metrics


def _same_run(run, ref_run, ref_metrics, same_losses=True):
    assert len(_losses(run)) == 3
    if same_losses:  # (with accumulation the logged loss is the last micro-batch's)
        assert _losses(run) == pytest.approx(_losses(ref_run), abs=1e-5)
    last = _rows(run)[-1]  # validation after the epoch: every file once, gathered over the ranks
    assert last["evaluated"] == 12 and last["val_loss"] == pytest.approx(ref_metrics["val_loss"], abs=1e-5)
    wa, wb = _weights(run), _weights(ref_run)
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


@pytest.mark.timeout(200)
def test_ddp_two_processes_match_one_process(one_process, tmp_path):
    data, ref_run, ref_metrics = one_process
    out = _train_cli(data, tmp_path / "ddp", "--batch-size", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    _same_run(tmp_path / "ddp", ref_run, ref_metrics)
    assert len(_rows(tmp_path / "ddp")) == 4  # only rank 0 writes: 3 steps + 1 validation
    assert out.stdout.count('"val_loss"') == 1  # the CLI prints its summary once


@pytest.mark.timeout(300)
def test_fsdp_trains_like_one_process_reloads_in_one_and_resumes_exactly(one_process, tmp_path):
    data, ref_run, ref_metrics = one_process
    run = tmp_path / "fsdp"
    flags = ("--fsdp", "--batch-size", "1", "--grad-accum", "2")  # 2 x 1 x 2: the same global batch of 4
    out = _train_cli(data, run, *flags, "--save-every", "1", "--keep-last", "5")
    assert out.returncode == 0, out.stderr[-3000:]
    _same_run(run, ref_run, ref_metrics, same_losses=False)
    import mediaformers as mf

    # the gathered folder in one process: same outputs as the sharded model had (its validation)
    model = mf.ASTForAudioClassification.from_pretrained(run / "final")
    assert model.config.id2label == {0: "noise", 1: "tone"}
    again = fit(Recipe(model=str(run / "final"), data=str(data), val=str(data), output=str(tmp_path / "eval"),
                       config=TINY_AUDIO, eval_only=True))
    assert again["val_loss"] == pytest.approx(_rows(run)[-1]["val_loss"], abs=1e-6)
    state = torch.load(run / "checkpoints" / "step-00000002.pt", weights_only=False)
    assert state["world"] == 2 and len(state["rng"]) == 2  # every rank's RNG, each its own stream
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])

    # cut right after the mid-epoch step-2 checkpoint (what a SIGKILL there leaves; test_resume.py kills
    # for real) and resume: the sharded optimizer state and the sampler position come back exactly
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    shutil.rmtree(cut / "final")
    (cut / "checkpoints" / "step-00000003.pt").unlink()
    (cut / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(run)[:2]))
    out = _train_cli(data, cut, *flags, "--resume")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resumed at step 2 (epoch 0, batch 4)" in (cut / "train.log").read_text()
    assert _losses(cut) == _losses(run)
    wa, wb = _weights(run), _weights(cut)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_each_rank_resumes_its_own_rng_and_the_world_must_match():
    from mediaformers.train.checkpointing import rng_state
    from mediaformers.train.distributed import Dist

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    torch.manual_seed(5)
    mine = rng_state()
    other = {**mine, "torch": torch.manual_seed(6).get_state()}
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": [other, mine], "world": 2}
    Dist(rank=1, world=2).load_train_state(model, opt, state)
    assert torch.equal(torch.get_rng_state(), mine["torch"])
    with pytest.raises(ValueError, match=r"resume: expected 2 process\(es\) with fsdp=False as the checkpoint "
                                         r"was written, got 1 with fsdp=False"):
        Dist().load_train_state(model, opt, state)


def test_fsdp_needs_torchrun(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="fsdp: expected a run started by torchrun"):
        fit(Recipe(model="ast", data=str(tmp_path), output=str(tmp_path / "run"), fsdp=True))


def test_reporter_progress_bar_and_optional_tensorboard(tmp_path, monkeypatch, capsys):
    import types

    from mediaformers.train.report import Reporter

    scalars = []

    class Writer:
        def __init__(self, folder):
            self.folder = folder

        def add_scalar(self, tag, value, step):
            scalars.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    rep = Reporter(tmp_path, quiet=False)
    rep.start(total=2, step=0)
    for step in (1, 2):
        rep.row({"step": step, "epoch": 0, "train_loss": 0.5 / step, "lr": 1e-3, "samples_per_s": 12.5})
    rep.row({"step": 2, "epoch": 0, "train_loss": 0.4, "val_loss": 0.3, "top1": 1.0, "confusion": [[1]]})
    rep.close()
    err = capsys.readouterr().err
    assert "2/2" in err and "loss=0.25" in err and "lr=0.001" in err and "samples_s=12.5" in err
    assert ("train/train_loss", 0.25, 2) in scalars and ("val/top1", 1.0, 2) in scalars
    assert ("train/epoch_loss", 0.4, 2) in scalars
    assert not any(tag.endswith(("step", "epoch", "confusion")) for tag, _, _ in scalars)

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed: skipped silently
    (tmp_path / "q").mkdir()
    quiet = Reporter(tmp_path / "q", quiet=True)
    quiet.start(total=1, step=0)
    quiet.row({"step": 1, "epoch": 0, "train_loss": 0.1, "lr": 1e-3, "samples_per_s": 1.0})
    quiet.close()
    assert capsys.readouterr().err == "" and len(_rows(tmp_path / "q")) == 1
    silent = Reporter(tmp_path / "other", quiet=False, main=False)  # rank > 0: nothing at all
    silent.start(total=1, step=0)
    silent.row({"step": 1, "train_loss": 0.1, "lr": 1e-3, "samples_per_s": 1.0})
    assert not (tmp_path / "other").exists()



# ---- contrastive (AltCLIP): the loss over the global batch, every rank's embeddings gathered ----------
CONTRASTIVE = dict(max_steps=3, lr=3e-3, clip_grad=1.0, warmup_steps=1, seed=1)  # 4 pairs: a step per epoch


def _contrastive_cli(ckpt, data, run, *flags):
    return _torchrun(["-m", "mediaformers", "train", str(ckpt), str(data), "--val", str(data), "-o", str(run),
                      "--task", "contrastive", "--max-steps", "3", "--lr", "3e-3", "--warmup-steps", "1",
                      "--seed", "1", "--quiet", "--batch-size", "2", *flags])


def _differing(wa, wb, skip=()) -> int:
    """Elements more than 1e-5 apart, outside the tensors named with a suffix in ``skip``."""
    return sum(int(((wa[k] - wb[k]).abs() > 1e-5).sum()) for k in wa if not k.endswith(skip))


KEY_BIASES = ("attention.self.key.bias", "self_attn.k_proj.bias")


@pytest.mark.timeout(300)
def test_contrastive_ddp_and_fsdp_take_the_one_process_steps_over_the_global_batch(altclip, pairs, tmp_path):
    """2 processes x batch 2 (a rank holds images and videos of 2 frames) = 1 process x batch 4: the same
    losses (each the loss of the whole global batch), validation and final weights, under DDP and FSDP2;
    the FSDP folder and checkpoints keep the model's own names and reload in one process."""
    import mediaformers as mf
    from safetensors.torch import load_file

    ref = tmp_path / "one"
    ref_metrics = fit(Recipe(model=str(altclip), data=str(pairs), val=str(pairs), output=str(ref), batch_size=4,
                             **CONTRASTIVE))
    ddp, fsdp = tmp_path / "ddp", tmp_path / "fsdp"
    out = _contrastive_cli(altclip, pairs, ddp)
    assert out.returncode == 0, out.stderr[-3000:]
    out = _contrastive_cli(altclip, pairs, fsdp, "--fsdp")
    assert out.returncode == 0, out.stderr[-3000:]
    recall = [k for k in ref_metrics if "_R@" in k]
    assert len(recall) == 6
    start, wb = load_file(altclip / "model.safetensors"), _weights(ref)
    assert _differing(start, wb) > 0.9 * sum(v.numel() for v in wb.values())  # training moved (nearly) all
    for run in (ddp, fsdp):
        assert len(_losses(run)) == 3 and _losses(run) == pytest.approx(_losses(ref), abs=1e-5), run.name
        last = _rows(run)[-1]  # the last validation: every pair once
        assert last["evaluated"] == 4 and last["val_loss"] == pytest.approx(ref_metrics["val_loss"], abs=1e-5)
        assert {k: last[k] for k in recall} == {k: ref_metrics[k] for k in recall}
        wa = _weights(run)
        # Adam turns a gradient at rounding level into an lr-sized step of either sign: the attention key
        # biases (their gradient is zero but for rounding) and the elements whose gradient is as small may
        # differ -- how many depends on the CPU's summation order (10-20 of 44,717 here); a wrong gradient
        # (e.g. the local batch's loss only) moves nearly every element apart, as training moved them above
        total = sum(v.numel() for v in wb.values())
        assert wa.keys() == wb.keys() and _differing(wa, wb, KEY_BIASES) <= 2e-3 * total, run.name
    model = mf.AltCLIPModel.from_pretrained(fsdp / "final")  # the gathered weights, in one process
    state = torch.load(fsdp / "checkpoints" / "step-00000003.pt", weights_only=False)["model"]
    ref_state = torch.load(ref / "checkpoints" / "step-00000003.pt", weights_only=False)["model"]
    assert state.keys() == ref_state.keys() == model.state_dict().keys()  # no "model." prefix
    assert _differing(model.state_dict(), state) == 0  # the folder holds the last step's gathered weights
    torch.testing.assert_close(state["logit_scale"], ref_state["logit_scale"], atol=1e-5, rtol=0)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _split_pairs(inputs: dict, frames: list[int], rank: int, world: int) -> tuple[dict, list[int]]:
    """Rank ``rank``'s items of a batch (every world-th, as the sampler deals them)."""
    starts = [sum(frames[:i]) for i in range(len(frames))]
    mine = list(range(rank, len(frames), world))
    rows = [r for i in mine for r in range(starts[i], starts[i] + frames[i])]
    return ({"pixel_values": inputs["pixel_values"][rows], "input_ids": inputs["input_ids"][mine],
             "attention_mask": inputs["attention_mask"][mine]}, [frames[i] for i in mine])


def _contrastive_grads_worker(rank: int, folder: str, port: int, inputs: dict, frames: list[int], out: str) -> None:
    import torch.distributed as td
    from torch.distributed.tensor import DTensor

    import mediaformers as mf
    from mediaformers.train.distributed import Dist

    torch.set_num_threads(1)
    td.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    from mediaformers.train.objectives import ContrastiveStep, gather_interleaved

    mine, my_frames = _split_pairs(inputs, frames, rank, 2)
    grads = {"order": gather_interleaved(torch.arange(rank, 5, 2.0)[:, None], 2).flatten()}  # 3 rows and 2
    for fsdp in (False, True):
        dist = Dist(rank, 2, fsdp=fsdp)
        model = mf.AltCLIPModel.from_pretrained(folder).eval()
        dist.wrap(ContrastiveStep(model, 2))(mine, my_frames).backward()
        dist.sync_whole_grads()
        grads[fsdp] = {n: (p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad).clone()
                       for n, p in model.named_parameters()}
    if rank == 0:
        torch.save(grads, out)
    td.destroy_process_group()


@pytest.mark.timeout(120)
def test_contrastive_gradients_under_ddp_and_fsdp_are_the_one_process_gradients(altclip, tmp_path):
    """The gradient scale: each rank backpropagates the global loss through the gather (whose backward
    sums the ranks' copies) and DDP / FSDP average over the ranks: exactly the one process's gradients of
    the same global batch (Adam would hide a constant factor from the training comparison)."""
    import torch.multiprocessing as mp

    import mediaformers as mf
    from mediaformers.train.objectives import ContrastiveStep

    g = torch.Generator().manual_seed(0)
    frames = [1, 2, 2, 1]  # images and 2-frame videos, unevenly over the ranks' rows
    inputs = {"pixel_values": torch.randn(sum(frames), 3, 30, 30, generator=g),
              "input_ids": torch.randint(5, 60, (4, 7), generator=g), "attention_mask": torch.ones(4, 7, dtype=torch.long)}
    inputs["attention_mask"][1, 5:] = 0
    model = mf.AltCLIPModel.from_pretrained(altclip).eval()
    ContrastiveStep(model)(inputs, frames).backward()
    ref = {n: p.grad for n, p in model.named_parameters()}
    mp.spawn(_contrastive_grads_worker, (str(altclip), _free_port(), inputs, frames, str(tmp_path / "g.pt")), nprocs=2)
    grads = torch.load(tmp_path / "g.pt")
    assert grads["order"].tolist() == [0, 1, 2, 3, 4]  # the one-process order, uneven shares too
    for fsdp in (False, True):
        assert grads[fsdp].keys() == ref.keys()
        for n, v in ref.items():
            torch.testing.assert_close(grads[fsdp][n], v, rtol=1e-4, atol=1e-6, msg=f"fsdp={fsdp} {n}")
