"""pytest plugin (``-p peer_record``): each test's outcome appended to MF_PEER_RESULTS as it ends, and a
"started" line before it runs, so a test that kills the process is known and the rest can run after it."""
from __future__ import annotations

import json
import os


def _write(record: dict) -> None:
    with open(os.environ["MF_PEER_RESULTS"], "a") as fh:
        fh.write(json.dumps(record) + "\n")


def pytest_runtest_logstart(nodeid, location) -> None:
    _write({"started": nodeid})


def pytest_runtest_logreport(report) -> None:
    if report.when == "call" or report.outcome != "passed":
        line = ""
        if report.outcome != "passed":
            text = getattr(report, "longreprtext", "") or ""
            lines = [ln[2:].strip() for ln in text.splitlines() if ln.startswith("E ")]
            line = lines[0] if lines else next(iter(text.strip().splitlines()[-1:]), "")
            if report.skipped and isinstance(report.longrepr, tuple):
                line = str(report.longrepr[2])
        _write({"id": report.nodeid, "outcome": report.outcome, "when": report.when, "line": line[:300]})
