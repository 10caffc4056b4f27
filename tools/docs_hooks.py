"""MkDocs hooks: pages generated from the code at build time, so the reference cannot drift from it.

- ``<!-- readme -->`` (docs/index.md): README.md itself, its ``docs/`` links made site-relative.
- ``<!-- cli-reference -->``: ``--help`` of every command, from the argument parser that ships.
- ``<!-- api-reference -->``: one mkdocstrings block per public name, found by importing the package
  (family names come from the declarations, so a new family appears without editing the docs).
"""
from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Public names by section; the family section is read from the declarations.
API_SECTIONS: dict[str, tuple[str, list[str]]] = {
    "Loading and saving": ("mediaformers", ["from_pretrained", "list_models", "PreTrainedModel", "Config",
                                            "LoadReport", "CheckpointError"]),
    "Tasks": ("mediaformers", ["pipeline"]),
    "Processors": ("mediaformers.processors", []),  # all of processors.__all__
    "Training": ("mediaformers.train", ["Recipe", "fit", "DataError"]),
    "Search": ("mediaformers", ["Library"]),
    "Precision and export": ("mediaformers", ["apply_precision", "export_model"]),
    "Families (for adding one)": ("mediaformers", ["Family", "Processor", "Pretrained", "register_family",
                                                   "families"]),
}


def _qualified(module: str, name: str) -> str:
    obj = getattr(importlib.import_module(module), name)
    return f"{obj.__module__}.{obj.__qualname__}"


def api_reference() -> str:
    from mediaformers.family import families

    out: list[str] = []
    for title, (module, names) in API_SECTIONS.items():
        names = names or list(importlib.import_module(module).__all__)
        out += [f"## {title}", ""] + [f"::: {_qualified(module, n)}\n" for n in names]
        if title == "Tasks":  # the families come right after the tasks
            for fam in families().values():
                out += [f"## {fam.name}", ""]
                out += [f"::: {_qualified('mediaformers', n)}\n" for n in sorted(fam.names())]
    return "\n".join(out)


def cli_reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal width: fix it so the page is stable
    from mediaformers.cli import build_parser

    parser = build_parser()
    out = ["## mediaformers", "", "```text", parser.format_help().rstrip(), "```", ""]
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, command in sub.choices.items():
        out += [f"## mediaformers {name}", "", "```text", command.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def readme() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    text = re.sub(r"\]\(docs/", "](", text)
    return text.split("\n", 1)[1]  # the page has its own title


MARKERS = {"<!-- readme -->": readme, "<!-- cli-reference -->": cli_reference,
           "<!-- api-reference -->": api_reference}


def on_page_markdown(markdown: str, page, config, files) -> str:
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
