"""The package's layers: dependencies run one way, no import cycle, few flat modules, short modules.

core <- models, data <- training <- evaluation <- cli and the public names at the top.
Every import counts, lazy ones inside functions included.
"""

import ast
import os

import pytest

from helpers import ROOT

# layer -> the layers it may import from (its own included)
ALLOWED = {
    "core": {"core"},
    "models": {"core", "models"},
    "data": {"core", "data"},
    "training": {"core", "models", "data", "training"},
    "evaluation": {"core", "models", "data", "training", "evaluation"},
    "top": {"core", "models", "data", "training", "evaluation", "top"},
}
MAX_FLAT_MODULES, MAX_LINES = 10, 500


def modules(package_dir: str) -> dict:
    """Dotted module name -> file path for every ``.py`` file under ``package_dir``."""
    base = os.path.dirname(package_dir)
    found = {}
    for folder, _, files in os.walk(package_dir):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def import_graph(mods: dict) -> dict:
    """Module -> the package's modules it imports (anywhere in the file, relative imports resolved)."""
    graph = {}
    for name, path in mods.items():
        is_package = path.endswith("__init__.py")
        targets = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_package else name.split(".")[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                candidates = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in candidates:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED and parts[1] != "top" else "top"


def wrong_way_imports(graph: dict) -> list:
    """``(importer, imported)`` pairs that go against the layers; a package's own
    ``__init__`` (the root package's included) is never a target."""
    bad = []
    for src, targets in graph.items():
        for dst in targets:
            if src.startswith(dst + "."):  # a module's parent package runs first anyway
                continue
            if layer(dst) not in ALLOWED[layer(src)]:
                bad.append((src, dst))
    return sorted(bad)


def cycles(graph: dict) -> list:
    """Strongly connected groups of more than one module, ignoring edges to a parent package."""
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return groups


@pytest.fixture(scope="module")
def package():
    mods = modules(os.path.join(ROOT, "kacjax"))
    return mods, import_graph(mods)


def test_dependencies_run_one_way(package):
    _, graph = package
    assert wrong_way_imports(graph) == []


def test_no_import_cycle(package):
    _, graph = package
    assert cycles(graph) == []


def test_few_flat_modules_and_none_too_long(package):
    mods, _ = package
    flat = sorted(m for m in mods if m.count(".") == 1 and m not in ("kacjax.__main__",))
    assert len(flat) <= MAX_FLAT_MODULES, flat
    long = {m: n for m, p in mods.items() if (n := sum(1 for _ in open(p))) > MAX_LINES}
    assert long == {}


def test_the_checks_catch_a_broken_rule(tmp_path):
    """A crafted package with a lazy upward import and a cycle: both are reported."""
    pkg = tmp_path / "kacjax"
    for sub in ("core", "training", "evaluation"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "kac.py").write_text("def f():\n    from kacjax.training import loop\n")
    (pkg / "training" / "loop.py").write_text("from kacjax.evaluation import report\n")
    (pkg / "evaluation" / "report.py").write_text("from ..training import loop\n")
    graph = import_graph(modules(str(pkg)))
    assert wrong_way_imports(graph) == [
        ("kacjax.core.kac", "kacjax.training"), ("kacjax.core.kac", "kacjax.training.loop"),
        ("kacjax.training.loop", "kacjax.evaluation"), ("kacjax.training.loop", "kacjax.evaluation.report"),
    ]
    assert cycles(graph) == [["kacjax.evaluation.report", "kacjax.training.loop"]]


def test_public_names_still_resolve():
    """The names the README and users reach keep working after the move into layers."""
    import importlib

    import kacjax
    import kacjax.kac
    import kacjax.samplers
    from kacjax.core import kac, samplers
    from kacjax.data import build_input

    assert kacjax.kac is kac and importlib.import_module("kacjax.samplers") is samplers
    for name in ("sample", "density", "cdf", "velocity", "atom_mass", "variance"):
        assert callable(getattr(kacjax.kac, name))
    assert callable(kacjax.samplers.integrate) and callable(build_input) and callable(kacjax.load)
