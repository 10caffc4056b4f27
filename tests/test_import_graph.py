"""No import cycles in src/, hidden or not: the graph of every import, module level and inside functions.

The rule (issue 23): an import inside a function is for an optional dependency (ray, lancedb, onnx,
tqdm, ...) or a genuinely heavy part that most commands never touch (the CLI starts without torch;
training, export and the library load on first use) -- never to dodge a cycle. So imports inside
functions count here like any other: a cycle through one is a cycle. Imports under ``if TYPE_CHECKING:``
do not run; they name a type for annotations (a ``Library`` parameter of ``search.sync``) and are left out.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"
PACKAGE = "mediaformers"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (``from x import y`` counts ``x.y`` when that is a module)."""
    files = {_module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        type_only = {id(n) for guard in ast.walk(tree) if isinstance(guard, ast.If) and _is_type_checking(guard.test)
                     for stmt in guard.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node.level, node.module)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                while target and target not in files:  # `import a.b.c` of a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != module and target.startswith(PACKAGE):
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert _resolve("mediaformers.tasks.views", False, 2, "processors") == "mediaformers.processors"
    assert _resolve("mediaformers.processors", True, 1, "kinds") == "mediaformers.processors.kinds"


def test_no_import_cycles():
    graph = import_graph()
    assert graph["mediaformers.tasks.views"] >= {"mediaformers.processors.sampling", "mediaformers.tasks.loading"}
    found = cycles(graph)
    assert not found, "import cycles (break them, don't hide them in functions):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_only_the_decoders_import_av():
    """PyAV (FFmpeg) is the decoding backend: only processors/video/ (its PyAV backend) and the audio decoder
    import it; everything else goes through their public functions."""
    allowed = ("mediaformers.processors.video.", "mediaformers.processors.audio.audio_decode")
    found = []
    for path in (SRC / PACKAGE).rglob("*.py"):
        module = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            if any(n == "av" or n.startswith("av.") for n in names) and not module.startswith(allowed):
                found.append(module)
    assert not found, f"modules importing av outside the decoders: {sorted(set(found))}"
