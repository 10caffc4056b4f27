"""Errors as one line: Python options named as the flags that do the same, out-of-memory and Ctrl-C notes."""
from __future__ import annotations

from pathlib import Path

# Python option -> the flag that does the same on the command line, for error hints.
_FLAGS = {"allow_partial=True": "--allow-partial", "strict=False": "--non-strict",
          "ignore_mismatched_sizes=True": "--non-strict (a head of another size is then left as initialised)"}


def _cli_hint(err: BaseException) -> str:
    text = str(err) if not isinstance(err, OSError) or not err.filename else f"{err.strerror}: {err.filename}"
    if isinstance(err, OSError) and err.errno == 28 and "disk is full" not in text:  # unless it says so itself
        text += " (disk full; records written so far are kept: free space and rerun with --resume)"
    for python, flag in _FLAGS.items():
        text = text.replace(python, flag)
    return text


def _visible(text: str) -> str:
    """One line whatever a message holds: a newline or a terminal escape (from a file name, a library's
    multi-line text) is shown escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text.strip())


def _one_line(err: BaseException) -> str:
    lines = [x.strip() for x in str(err).strip().splitlines() if x.strip()]
    return lines[0] if len(lines) == 1 else (lines[0] + " ...") if lines else type(err).__name__



def _train_interrupted(output: str) -> str:
    """What Ctrl-C left of a run: --resume goes on from a checkpoint only where one was written."""
    states = sorted(Path(output).glob("checkpoints/step-*.pt"))
    if states:
        return (f"the same command with --resume continues the run in {output} from its last checkpoint "
                f"({states[-1].stem}; steps after it are done again)")
    if Path(output).is_dir() and any(Path(output).iterdir()):
        return f"no checkpoint was written yet: the same command with --resume starts the run in {output} again"
    return "no checkpoint was written yet: run the same command again"


def _out_of_memory(err: BaseException) -> bool:
    text = str(err)
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or any(
        s in text for s in ("can't allocate memory", "out of memory", "DefaultCPUAllocator"))

