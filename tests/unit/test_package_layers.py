"""The house rules of the package, read from its source: layers without cycles, boto3 in its place.

- no import cycle between the subpackages of ``alertprod`` (imports under ``TYPE_CHECKING``
  are annotations, not dependencies);
- ``boto3``/``botocore`` imported only by ``alertprod.aws`` and ``alertprod.local``;
- no ``sys.path`` manipulation anywhere in the library, the handlers or the tests;
- the pipeline and precovery depend on the APDB's interfaces, never on a backend.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "alertprod" / "python" / "alertprod"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        out[name] = ast.parse(path.read_text(), filename=str(path))
    return out


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported outside ``if TYPE_CHECKING:`` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    names = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "alertprod" and len(parts) > 1 else None


@pytest.fixture(scope="module")
def modules():
    return _modules()


def test_subpackages_import_each_other_without_a_cycle(modules):
    graph: dict[str, set[str]] = defaultdict(set)
    for name, tree in modules.items():
        src = _subpackage(name)
        if src is None:
            continue
        for imported in _runtime_imports(tree):
            dst = _subpackage(imported)
            if dst is not None and dst != src and (PACKAGE / dst).is_dir():
                graph[src].add(dst)
    # depth-first search for a back edge
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*path, nxt]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if state.get(start) is None and visit(start, [start]):
            break
    assert not cycle, f"import cycle between subpackages: {' -> '.join(cycle)}"


def test_only_the_aws_and_local_packages_import_boto3(modules):
    offenders = sorted(name for name, tree in modules.items()
                       if _subpackage(name) not in ("aws", "local")
                       and any(m.split(".")[0] in ("boto3", "botocore")
                               for m in _runtime_imports(tree)))
    assert offenders == []


def test_nothing_edits_sys_path():
    offenders = []
    for folder in ("layers", "functions", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            if "sys.path" in text and path.name != Path(__file__).name:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_pipeline_and_precovery_depend_on_apdb_interfaces_not_a_backend(modules):
    backend_only = ("alertprod.apdb.dynamodb", "alertprod.apdb.memory")
    offenders = []
    for name, tree in modules.items():
        if _subpackage(name) not in ("pipeline", "precovery"):
            continue
        for imported in _runtime_imports(tree):
            if imported.startswith(backend_only) or imported.endswith((".DynamoApdb",
                                                                      ".MemoryApdb")):
                offenders.append(f"{name} imports {imported}")
    # the pipeline's one composition point (build from a deployment's Services) may name the
    # DynamoDB factory; nothing else may
    offenders = [o for o in offenders if "dynamo_level1" not in o]
    assert offenders == []
    text = "\n".join(ast.unparse(t) for n, t in modules.items()
                     if _subpackage(n) in ("pipeline", "precovery"))
    assert ".client." not in text and ".table_name" not in text
