"""transformers' test files for a pinned version, in a cache outside the repository (nothing committed).

The PyPI sdist (``pip download --no-binary :all:``) ships ``tests/*_common.py`` and the mixins but not
``tests/models/``; the per-family files come from a transformers checkout named by ``MF_PEER_TESTS``
(its root or its ``tests`` folder, at the pinned tag) or are already in the cache.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REFERENCE = "5.23.0"


def cache_root() -> Path:
    return Path(os.environ.get("MF_PEER_CACHE") or Path.home() / ".cache" / "mediaformers" / "peer")


class Unavailable(Exception):
    """The test files cannot be had here; the message is the skip reason."""


def common_tests(version: str = REFERENCE) -> Path:
    """``<cache>/<version>``, holding ``tests/`` with transformers' common mixins from the sdist."""
    root = cache_root() / version
    tests = root / "tests"
    if (tests / "test_modeling_common.py").exists():
        _support(tests)
        return root
    sdist = cache_root() / f"transformers-{version}.tar.gz"
    if not sdist.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
               f"transformers=={version}", "-d", str(cache_root())]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"pip download transformers=={version}: no answer from the registry in 300 s") from None
        if done.returncode or not sdist.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise Unavailable(f"pip download transformers=={version} failed (registry unreachable?): {last}")
    tests.mkdir(parents=True, exist_ok=True)
    prefix = f"transformers-{version}/tests/"
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            name = member.name
            if member.isfile() and name.startswith(prefix) and "/" not in name[len(prefix):] and name.endswith(".py"):
                (tests / name[len(prefix):]).write_bytes(tar.extractfile(member).read())
    (tests / "__init__.py").touch()
    _support(tests)
    return root


# Modules the common mixins import that the sdist lacks. A checkout (MF_PEER_TESTS) provides the real
# ones; otherwise stand-ins: the export and generation mixins add no test to these encoder families
# here (export tests need backends not installed; none of them generates), and the config keywords are
# transformers' ``config_common_kwargs`` (tests/utils/test_configuration_utils.py), which its ConfigTester
# passes to every config. Without the hub's tiny models, the pipeline mixin's tests skip.
_STUBS = {
    "utils/test_configuration_utils.py": (
        "config_common_kwargs = {\n"
        "    'return_dict': False, 'output_hidden_states': True, 'output_attentions': True, 'dtype': 'float16',\n"
        "    'chunk_size_feed_forward': 5, 'architectures': ['BertModel'], 'id2label': {0: 'label'},\n"
        "    'label2id': {'label': '0'}, 'problem_type': 'regression',\n}\n"),
    "exporters/test_export.py": "class ExportTesterMixin:  # stand-in: see tests/peer/sources.py\n    pass\n",
    "utils/tiny_model_summary.json": "{}\n",  # the pipeline mixin's list of hub tiny models: none here
    # the pipeline mixin "imports transformers directly" from <root>/src/transformers; an empty file there
    # leaves the transformers already imported (and patched) in place
    "../src/transformers/__init__.py": "",
    # the processing mixins fetch their sample media through this CI helper; without it, by URL
    "../utils/fetch_hub_objects_for_ci.py": "def url_to_local_path(url, **kwargs):\n    return url\n",
    "generation/test_utils.py": "class GenerationTesterMixin:  # stand-in: see tests/peer/sources.py\n    pass\n",
}


def _support(tests: Path) -> None:
    checkout = _checkout()
    for rel, text in _STUBS.items():
        target = tests / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".py"):
            (target.parent / "__init__.py").touch()
        if checkout and (checkout / rel).exists():
            shutil.copy(checkout / rel, target)
        elif not target.exists():
            target.write_text(text)


def _checkout() -> Path | None:
    source = os.environ.get("MF_PEER_TESTS")
    if not source:
        return None
    src = Path(source)
    return src / "tests" if (src / "tests").is_dir() else src


def reference_site(version: str = REFERENCE) -> Path:
    """transformers==<version> alone (``pip install --no-deps --target``), put first on the path of both
    runs so the test files meet the transformers they were written for; its dependencies are the venv's.
    torchvision goes there too when a build for this torch exists (its processor tests run then): the
    project itself never depends on it."""
    site = cache_root() / f"site-{version}"
    if not (site / "transformers" / "__init__.py").exists():
        _pip_target(site, f"transformers=={version}", required=True)
    if not (site / "torchvision").exists() and not (site / "no-torchvision.txt").exists():
        import torch

        major, minor = (int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
        # torchvision 0.(m+15) is built for torch 2.m (0.15 for 2.0, 0.28 for 2.13)
        wanted = f"torchvision=={0 if major == 2 else 'x'}.{minor + 15}.*"
        reason = _pip_target(site, wanted, required=False) or _imports(site, "torchvision")
        if reason:
            for path in site.glob("torchvision*"):
                shutil.rmtree(path)
            (site / "no-torchvision.txt").write_text(reason + "\n")
    return site


def torchvision_note(version: str = REFERENCE) -> str | None:
    """Why torchvision is missing from the reference site (its tests skip in both runs), or None."""
    note = cache_root() / f"site-{version}" / "no-torchvision.txt"
    return note.read_text().strip() if note.exists() else None


def _imports(site: Path, module: str) -> str | None:
    """None when ``module`` imports from ``site`` beside this torch, else why not (the last error line):
    PyPI's torchvision is built against the CUDA torch, and a CPU torch lacks the operators it registers."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, env=env,
                          timeout=300)
    if not done.returncode:
        return None
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return f"{module} from PyPI does not import beside this torch: {last}"


def _pip_target(site: Path, requirement: str, required: bool) -> str | None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), requirement]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        reason = f"pip install {requirement}: no answer from the registry in 600 s"
    else:
        if not done.returncode:
            return None
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        reason = f"pip install {requirement} failed (no such build, or registry unreachable): {last}"
    if required:
        raise Unavailable(reason)
    return reason


def family_tests(folder: str, files: tuple[str, ...], version: str = REFERENCE) -> list[Path]:
    """The family's test files inside the cache's ``tests/models/<folder>/``, copied from MF_PEER_TESTS
    when given; raise Unavailable naming what is missing."""
    root = common_tests(version)
    dest = root / "tests" / "models" / folder
    dest.mkdir(parents=True, exist_ok=True)
    for init in (root / "tests" / "models" / "__init__.py", dest / "__init__.py"):
        init.touch()
    src = _checkout()
    if src:
        for name in files:
            if (src / "models" / folder / name).exists():
                shutil.copy(src / "models" / folder / name, dest / name)
    found = [dest / n for n in files if (dest / n).exists()]
    if not found:
        raise Unavailable(f"transformers' sdist ships no tests/models/; set MF_PEER_TESTS to a transformers "
                          f"checkout at v{version} (or put {', '.join(files)} into {dest})")
    return found
