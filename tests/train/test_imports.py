"""train/ has no import cycle (module-level and in-function imports; type-only ones excluded), no module
over 400 lines, and one CLIP loss / one recall@k in the package (issue 23's train part)."""
import ast
from pathlib import Path

import mediaformers

SRC = Path(mediaformers.__file__).parent
TRAIN = SRC / "train"


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    here = _module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_train_has_no_import_cycle_and_no_module_over_400_lines():
    files = {_module(p): p for p in TRAIN.rglob("*.py")}
    graph = {m: {d for d in _imports(p) if d in files and d != m} for m, p in files.items()}
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}  # a package's own init
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in graph[m]:
            assert state.get(d) != 1, f"import cycle: {' -> '.join(stack + [m, d])}"
            if d not in state:
                visit(d, stack + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
    assert graph["mediaformers.train.recipe"] >= {"mediaformers.train.loop"}  # the check sees in-function imports
    long = {m: n for m, p in files.items() if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_one_clip_loss_and_one_recall_at_k_in_the_package():
    defs = {}
    for p in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name in ("clip_loss", "contrastive_loss", "recall_at_k",
                                                                   "retrieval_recall"):
                defs.setdefault(node.name, []).append(_module(p))
    assert defs == {"clip_loss": ["mediaformers.layers.losses"], "recall_at_k": ["mediaformers.tasks.retrieval"]}
