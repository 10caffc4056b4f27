"""``mediaformers search`` through a running ``serve`` of the same library: the models are already
loaded there, so a query answers in well under a second instead of reloading them."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .hosts import is_loopback

STATE_FILE = ".serve.json"  # what a running server leaves in its library: pid, url, token

TIMEOUT = 0.5  # seconds for the liveness check: a stale or hung server is skipped, not waited for


def running_server(library: str | os.PathLike) -> dict[str, Any] | None:
    """The state a live server of this library left (pid, url, token), else None."""
    state = Path(library) / STATE_FILE
    try:
        info = json.loads(state.read_text(encoding="utf-8"))
        os.kill(int(info["pid"]), 0)  # raises when that process is gone
        if not is_loopback(urllib.parse.urlsplit(info["url"]).hostname or ""):
            return None  # the query and token go only to this machine, whatever the file says
        request = urllib.request.Request(info["url"] + "/api/ping", headers={"X-Mediaformers-Token": info["token"]})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as r:
            same = Path(json.loads(r.read())["library"]) == Path(library).resolve()
        return info if same else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def search_remote(info: dict[str, Any], text: str, k: int, timeout: float = 300.0) -> list[dict[str, Any]]:
    """The grouped hits (records) the server finds for ``text``; a query error is a ValueError, as locally."""
    query = urllib.parse.urlencode({"q": text, "k": k})
    request = urllib.request.Request(f"{info['url']}/api/search?{query}",
                                     headers={"X-Mediaformers-Token": info["token"]})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            results = json.loads(r.read())["results"]
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            message = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):  # not the app's JSON (a 421, a 503 from the server itself)
            message = f"server {info['url']}: HTTP {err.code} {body[:200].decode('utf-8', 'replace')}".strip()
        raise ValueError(message) from None
    return [{key: v for key, v in rec.items() if key not in ("id", "name")} for rec in results]
