"""pytest plugin (``-p peer_swap``) for the swapped run: patch before test modules import transformers' names,
then check every collected module sees ours. Importable by this bare name because the peer tests' own
``tests`` package shadows ours."""
from __future__ import annotations

import json
import os
import sys

import swap

_MAP: dict = {}


def pytest_configure(config) -> None:
    family = os.environ["MF_PEER_FAMILY"]
    _MAP.update(swap.install(family))


def pytest_collection_finish(session) -> None:
    seen, stale = set(), {}
    for item in session.items:
        module = getattr(item, "module", None)
        if module is None or module.__name__ in seen:
            continue
        seen.add(module.__name__)
        if bad := swap.swapped_in(vars(module), _MAP):
            stale[module.__name__] = bad
    report = os.environ.get("MF_PEER_SWAP_REPORT")
    if report:
        with open(report, "w") as fh:
            json.dump({"swapped": sorted(_MAP), "modules": sorted(seen), "stale": stale}, fh)
    if stale:
        sys.stderr.write(f"peer swap did not take effect: {stale}\n")
        raise SystemExit(3)
