"""Export a model for deployment: ONNX (torch's dynamo exporter) or a saved torch.export ExportedProgram.

Each export is checked on the spot: the exported artefact (through onnxruntime for ONNX, through the
ExportedProgram itself otherwise) runs on generated inputs and is compared with eager PyTorch; the
max absolute difference is returned and must be within the precision's tolerance.

The exported graph takes the model's input tensors by name in a fixed order and returns a flat,
named tuple of tensors (``logits``; or ``last_hidden_state``/``pooler_output``; or ``text_embeds``/
``image_embeds`` for a two-tower model), so a runtime needs no Python classes of ours.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMATS = ("onnx", "exported-program")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Max |eager - exported| accepted per precision (the low precisions round differently per kernel).
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 1e-1}
PARTS = ("model", "text", "image")
# Files that travel with the weights and that a runtime needs for preprocessing.
SIDECARS = ("config.json", "preprocessor_config.json", "processor_config.json", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json", "sentencepiece.bpe.model")


def quiet_onnxruntime() -> None:
    """Turn off onnxruntime's usage telemetry unless the user chose otherwise, before it is imported.

    onnxruntime >= 1.32 starts an upload thread on import (mobile.events.data.microsoft.com); where that host
    is unreachable but resolvable the process waits on it, so an offline export hangs for minutes.
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


class ExportError(ValueError):
    """A model/option combination that cannot be exported, with the reason."""


@dataclass
class ExportResult:
    path: Path
    format: str
    precision: str
    inputs: list[str]
    outputs: list[str]
    max_abs_diff: float
    tolerance: float
    files: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.path}: {self.format} {self.precision}, inputs {self.inputs} -> outputs {self.outputs}; "
                f"max |exported - eager| = {self.max_abs_diff:.2e} (tolerance {self.tolerance:g})")


class _Graph(nn.Module):
    """Positional tensors in, a flat tuple of the chosen output tensors out."""

    def __init__(self, model: nn.Module, call: str, names: list[str], fields: list[str]):
        super().__init__()
        self.model, self.call, self.names, self.fields = model, call, names, fields

    def forward(self, *tensors: torch.Tensor):
        out = getattr(self.model, self.call)(**dict(zip(self.names, tensors)))
        if isinstance(out, torch.Tensor):
            return (out,)
        return tuple(getattr(out, name) for name in self.fields)


def _pick_fields(out: Any, part: str) -> tuple[list[str], list[str]]:
    """(attributes of the output to export, their names in the graph)."""
    if part != "model":  # one tower: its projected embedding (transformers' get_*_features pooler_output)
        if isinstance(out, torch.Tensor):
            return [], [f"{part}_embeds"]
        return ["pooler_output"], [f"{part}_embeds"]
    for wanted in (["logits"], ["text_embeds", "image_embeds"], ["last_hidden_state", "pooler_output"],
                   ["last_hidden_state"]):
        if all(isinstance(getattr(out, n, None), torch.Tensor) for n in wanted):
            return wanted, wanted
    raise ExportError(f"export: found no tensor output to export in {type(out).__name__}")


def _graph_for(model: nn.Module, part: str, inputs: dict[str, torch.Tensor]):
    """The call to export and the inputs it takes: a two-tower model exports one tower by ``part``."""
    if part not in PARTS:
        raise ExportError(f"part: expected one of {list(PARTS)}, got {part!r}")
    if part == "model":
        call = "forward"
    else:
        call = f"get_{part}_features"
        if not hasattr(model, call):
            raise ExportError(f"part: {type(model).__name__} has no separate {part} tower; use part='model'")
        keep = {"text": ("input_ids", "attention_mask"), "image": ("pixel_values",)}[part]
        inputs = {k: v for k, v in inputs.items() if k in keep}
    with torch.no_grad():
        out = getattr(model, call)(**inputs)
    fields, outputs = _pick_fields(out, part)
    return _Graph(model, call, list(inputs), fields), inputs, outputs


def _cast(inputs: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}


def _dynamic(inputs: dict[str, torch.Tensor], dynamic_batch: bool):
    if not dynamic_batch:
        return None
    batch = torch.export.Dim("batch", min=1, max=1024)
    return (tuple({0: batch} for _ in inputs),)  # one entry: the graph's *tensors


def _max_diff(a: tuple, b: tuple) -> float:
    return max((x.float() - torch.as_tensor(y).float()).abs().max().item() for x, y in zip(a, b))


def _onnx(graph, args, names, outputs, dynamic, path: Path, check_inputs):
    quiet_onnxruntime()
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ExportError("format onnx: needs onnx, onnxscript and onnxruntime (pip install 'mediaformers[export]')") from e
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(graph, args, dynamo=True, input_names=names, output_names=outputs,
                                    dynamic_shapes=dynamic, external_data=False, verbose=False)
    if program is None:  # dynamo=True always returns one; None is the legacy exporter's
        raise ExportError("format onnx: torch.onnx.export returned no program")
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    diffs = []
    for x in check_inputs:
        feed = {n: _numpy(t) for n, t in zip(names, x)}
        with torch.no_grad():
            eager = graph(*x)
        diffs.append(_max_diff(eager, session.run(outputs, feed)))
    return max(diffs)


def _numpy(t: torch.Tensor):
    if t.dtype == torch.bfloat16:
        import ml_dtypes  # onnx's own dependency; numpy has no bfloat16

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _exported_program(graph, args, dynamic, path: Path, check_inputs):
    program = torch.export.export(graph, args, dynamic_shapes=dynamic)
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path)).module()
    diffs = []
    with torch.no_grad():
        for x in check_inputs:
            diffs.append(_max_diff(graph(*x), loaded(*x)))
    return max(diffs)


def export_model(
    model: nn.Module,
    out_dir: str | os.PathLike,
    example_inputs: dict[str, torch.Tensor],
    *,
    format: str = "onnx",
    precision: str = "fp32",
    dynamic_batch: bool = False,
    part: str = "model",
    source_folder: str | os.PathLike | None = None,
    check_batches: tuple[int, ...] = (),
) -> ExportResult:
    """Export ``model`` (eval mode) to ``out_dir`` and verify it against eager PyTorch.

    ``example_inputs``: keyword tensors for one forward (batch first). ``check_batches``: extra batch
    sizes to verify with (with ``dynamic_batch``; default: the example's batch and, when dynamic, 3).
    ``source_folder``: a checkpoint folder whose config/processor/tokenizer files are copied beside
    the export, so preprocessing travels with it.
    """
    if format not in FORMATS:
        raise ExportError(f"format: expected one of {list(FORMATS)}, got {format!r}")
    if precision not in PRECISIONS:
        raise ExportError(f"precision: expected one of {list(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if format == "onnx" and precision == "bf16":
        raise ExportError("precision bf16: onnxruntime's CPU provider has no bfloat16 kernels for these "
                          "models' ops; export fp32 or fp16 to ONNX, or bf16 as an exported-program")
    model = model.eval().to(dtype)
    inputs = _cast(dict(example_inputs), dtype)
    graph, inputs, outputs = _graph_for(model, part, inputs)
    names = list(inputs)
    args = tuple(inputs[n] for n in names)
    checks = [args]
    batches = check_batches or ((3,) if dynamic_batch else ())
    for b in batches:
        if b == args[0].shape[0]:
            continue
        if not dynamic_batch:
            raise ExportError(f"check_batches: batch {b} needs dynamic_batch=True (the graph is fixed to "
                              f"batch {args[0].shape[0]})")
        g = torch.Generator().manual_seed(b)
        checks.append(tuple(_resample_batch(t, b, g) for t in args))
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"output: expected a directory, got a file {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if part == "model" else f"_{part}"
    path = out_dir / (f"model{suffix}.onnx" if format == "onnx" else f"model{suffix}.pt2")
    try:
        if format == "onnx":
            diff = _onnx(graph, args, names, outputs, _dynamic(inputs, dynamic_batch), path, checks)
        else:
            diff = _exported_program(graph, args, _dynamic(inputs, dynamic_batch), path, checks)
    except ExportError:
        raise
    except Exception as e:  # an exporter's failure: keep its reason, say what was tried
        raise ExportError(f"export of {type(model).__name__} ({part}) as {format} {precision} failed: "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    tol = TOLERANCE[precision]
    copied = _copy_sidecars(source_folder, out_dir)
    io = {"format": format, "precision": precision, "part": part, "inputs": names, "outputs": outputs,
          "dynamic_batch": dynamic_batch, "file": path.name, "max_abs_diff": diff}
    (out_dir / f"export{suffix}.json").write_text(json.dumps(io, indent=2) + "\n")
    result = ExportResult(path, format, precision, names, outputs, diff, tol, copied)
    if not diff <= tol:
        raise ExportError(f"{result.summary()}: over the tolerance, the export is not faithful")
    return result


def _resample_batch(t: torch.Tensor, batch: int, g: torch.Generator) -> torch.Tensor:
    """A tensor like ``t`` with another batch size: random values of the same kind."""
    shape = (batch, *t.shape[1:])
    if t.is_floating_point():
        return torch.randn(shape, generator=g).to(t.dtype)
    if t.dtype == torch.bool:
        return t[:1].expand(shape).clone()
    low, high = int(t.min()), int(t.max()) + 1
    return torch.randint(low, max(high, low + 1), shape, generator=g, dtype=t.dtype)


def _copy_sidecars(folder: str | os.PathLike | None, out_dir: Path) -> list[str]:
    if folder is None:
        return []
    copied = []
    for name in SIDECARS:
        src = Path(folder) / name
        if src.is_file() and src.resolve() != (out_dir / name).resolve():
            shutil.copyfile(src, out_dir / name)
            copied.append(name)
    return copied
