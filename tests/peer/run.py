"""transformers' own tests, run against transformers and then against mediaformers.

    python -m tests.peer.run [--family videomae ...] [--json failures.json]

For each family and test file: one pytest subprocess as is (the baseline) and one with mediaformers'
classes patched in (peer_swap.py, which asserts the swap held). Prints per family: tests passing with
transformers, how many of those pass with mediaformers, the percentage; writes the failing test ids
with their first error line (for sorting into causes).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import sources

HERE = Path(__file__).resolve().parent
SRC = HERE.parent.parent / "src"
# family -> (transformers' tests/models folder, test files)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "videomae": ("videomae", ("test_modeling_videomae.py", "test_image_processing_videomae.py",
                              "test_video_processing_videomae.py")),
    "vivit": ("vivit", ("test_modeling_vivit.py", "test_image_processing_vivit.py", "test_video_processing_vivit.py")),
    "ast": ("audio_spectrogram_transformer", ("test_modeling_audio_spectrogram_transformer.py",
                                              "test_feature_extraction_audio_spectrogram_transformer.py")),
    "altclip": ("altclip", ("test_modeling_altclip.py", "test_processing_altclip.py")),
}
TIMEOUT = 2400  # one pytest run of one file (a loaded 2-core machine needs ~15 min); a hang must not stall CI


def run_pytest(root: Path, site: Path, file: Path, family: str | None, workers: int,
               select: str | None = None) -> dict[str, tuple[str, str]]:
    """{test id: (outcome, first error line)} of one file; ``family`` set -> the swapped run. A test that
    kills the process is recorded as failed and the file runs again without it (at most MAX_CRASHES)."""
    results: dict[str, tuple[str, str]] = {}
    crashed: list[str] = []
    for _ in range(MAX_CRASHES + 1):
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "results.jsonl"
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(root), str(HERE)]
                                                                + ([str(SRC)] if family else [])),
                   "MF_PEER_RESULTS": str(log)}
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                   "-p", "peer_record", "--rootdir", str(root), "-o", "addopts=", str(file.relative_to(root))]
            cmd += [f"--deselect={t}" for t in crashed]
            if workers > 1:
                cmd += ["-n", str(workers)]
            if select:
                cmd += ["-k", select]
            if family:
                env["MF_PEER_FAMILY"] = family
                env["MF_PEER_SWAP_REPORT"] = str(Path(tmp) / "swap.json")
                cmd += ["-p", "peer_swap"]
            try:
                done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                results[f"{file.name}::<timeout>"] = ("failed", f"pytest ran past {TIMEOUT} s")
                return results
            if family:
                swap = Path(tmp) / "swap.json"
                if not swap.exists() or json.loads(swap.read_text())["stale"]:
                    tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
                    raise RuntimeError(f"{file.name}: the mediaformers swap did not take effect: {tail}")
            started, finished = _read(log, results)
        if started is None or started in finished:  # the run ended on its own
            if not results:
                results[f"{file.name}::<collection>"] = ("failed", (done.stdout + done.stderr).strip()[-300:])
            return results
        crashed.append(started)
        results[_short(started)] = ("failed", f"the test process died in this test (exit {done.returncode})")
    return results


MAX_CRASHES = 5


def _short(nodeid: str) -> str:
    """``Class::test`` (the file is implied), as the ids in the report."""
    parts = nodeid.split("::")
    return "::".join(parts[1:]) if len(parts) > 1 else nodeid


def _read(log: Path, results: dict[str, tuple[str, str]]) -> tuple[str | None, set[str]]:
    """Fold one run's records into ``results``; (the last test started, the tests that finished)."""
    started, finished = None, set()
    if not log.exists():
        return None, finished
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        if "started" in rec:
            started = rec["started"]
            continue
        finished.add(rec["id"])
        outcome = {"passed": "passed", "skipped": "skipped"}.get(rec["outcome"], "failed")
        key = _short(rec["id"])
        if results.get(key, ("passed",))[0] == "passed" or outcome == "failed":
            results[key] = (outcome, rec["line"])
    return started, finished


def baseline(root: Path, site: Path, file: Path, workers: int, fresh: bool) -> dict[str, tuple[str, str]]:
    """The run against transformers, cached beside the test file (keyed by its text): it changes only
    with the test files or the reference, not with mediaformers."""
    key = hashlib.sha256(file.read_bytes() + str(sorted(os.listdir(site))).encode()).hexdigest()[:16]
    cache = file.with_name(f".{file.stem}.{key}.baseline.json")
    if cache.exists() and not fresh:
        return {k: tuple(v) for k, v in json.loads(cache.read_text()).items()}
    out = run_pytest(root, site, file, None, workers)
    if not any(k.endswith(("<collection>", "<timeout>")) for k in out):
        cache.write_text(json.dumps(out))
    return out


def compare(baseline: dict, ours: dict) -> tuple[int, int, dict[str, str]]:
    """(passing with transformers, of those passing with ours, {id: our first error line})."""
    ref = [t for t, (o, _) in baseline.items() if o == "passed"]
    failing = {t: ours.get(t, ("missing", "not run with mediaformers"))[1] or ours.get(t, ("?",))[0]
               for t in ref if ours.get(t, ("missing",))[0] != "passed"}
    return len(ref), len(ref) - len(failing), failing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES))
    parser.add_argument("--json", default="peer_failures.json", help="where to write the failing test ids")
    parser.add_argument("-n", "--workers", type=int, default=1, help="pytest-xdist workers per run")
    parser.add_argument("-k", help="pytest -k selection for the mediaformers run (while iterating)")
    parser.add_argument("--min-percent", type=float, help="exit 1 when a family passes less than this")
    parser.add_argument("--fresh", action="store_true", help="rerun the transformers baseline, not the cached one")
    args = parser.parse_args(argv)
    rows, failures, skipped = [], {}, {}
    for family in args.family or sorted(FAMILIES):
        folder, files = FAMILIES[family]
        try:
            paths = sources.family_tests(folder, files)
            site = sources.reference_site()
        except sources.Unavailable as err:
            skipped[family] = str(err)
            continue
        root = paths[0].parents[3]
        base, mine = {}, {}
        for path in paths:
            base.update(baseline(root, site, path, args.workers, args.fresh))
            mine.update(run_pytest(root, site, path, folder, args.workers, args.k))
        if args.k:  # a selection: compare only the tests it ran
            base = {t: r for t, r in base.items() if t in mine}
        ref, ok, failing = compare(base, mine)
        rows.append((family, ref, ok))
        failures[family] = failing
    print(table(rows))
    for family, reason in skipped.items():
        print(f"{family}: skipped: {reason}")
    if note := sources.torchvision_note():
        print(f"torchvision-only tests skip in both runs: {note}")
    with open(args.json, "w") as fh:
        json.dump({"table": rows, "failures": failures, "skipped": skipped,
                   "torchvision": sources.torchvision_note()}, fh, indent=1, sort_keys=True)
    low = [f for f, ref, ok in rows if args.min_percent is not None and ref and 100 * ok / ref < args.min_percent]
    return 1 if low else 0


def table(rows: list[tuple[str, int, int]]) -> str:
    lines = ["| family | pass with transformers | of those, pass with mediaformers | % |", "|---|---:|---:|---:|"]
    total_ref = total_ok = 0
    for family, ref, ok in rows:
        lines.append(f"| {family} | {ref} | {ok} | {100 * ok / ref if ref else 0:.0f}% |")
        total_ref, total_ok = total_ref + ref, total_ok + ok
    lines.append(f"| all | {total_ref} | {total_ok} | {100 * total_ok / total_ref if total_ref else 0:.0f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
