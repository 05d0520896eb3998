"""The package's layers: dependencies run one way, no import cycle, few flat modules, no crowded
folder, short modules, and every name the README and docs use resolves.

core <- models, data; runtime (logging, devices) beside core; core, runtime, models, data <- training
<- evaluation <- cli and the public names at the top; configs stand alone (the experiments, the
command line and ``kacjax.load_config`` read them).
Every import counts, lazy ones inside functions included.
"""

import ast
import glob
import importlib
import os
import re

import pytest

from helpers import ROOT

# layer -> the layers it may import from (its own included)
ALLOWED = {
    "core": {"core"},
    "runtime": {"runtime"},
    "configs": {"configs"},
    "models": {"core", "models"},
    "data": {"core", "data"},
    "training": {"core", "runtime", "models", "data", "training"},
    "evaluation": {"core", "runtime", "models", "data", "training", "evaluation"},
    "top": {"core", "runtime", "configs", "models", "data", "training", "evaluation", "top"},
}
MAX_FLAT_MODULES, MAX_LINES, MAX_MODULES_PER_FOLDER = 10, 500, 12
FACADES = {"kacjax.kac": "kacjax.core.kac", "kacjax.samplers": "kacjax.core.samplers",
           "kacjax.flight": "kacjax.core.flight", "kacjax.fid": "kacjax.evaluation.metrics.fid"}


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


def crowded_folders(package_dir: str) -> dict:
    """Folder -> its number of modules (``__init__`` and ``__main__`` not counted), for each folder
    holding more than :data:`MAX_MODULES_PER_FOLDER` directly."""
    counts = {folder: sum(1 for f in files if f.endswith(".py") and f not in ("__init__.py", "__main__.py"))
              for folder, _, files in os.walk(package_dir)}
    return {os.path.relpath(folder, os.path.dirname(package_dir)): n
            for folder, n in counts.items() if n > MAX_MODULES_PER_FOLDER}


def reachable(graph: dict, start: str) -> set:
    """Every module ``start`` imports, directly or through others (a module's parent packages,
    which run first anyway, not followed)."""
    seen, todo = set(), [start]
    while todo:
        src = todo.pop()
        for target in graph[src]:
            if target not in seen and not src.startswith(target + "."):
                seen.add(target)
                todo.append(target)
    return seen


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
    flat = sorted(m for m, p in mods.items() if m.count(".") == 1 and m != "kacjax.__main__"
                  and not p.endswith("__init__.py"))  # modules, not packages
    assert len(flat) <= MAX_FLAT_MODULES, flat
    long = {m: n for m, p in mods.items() if (n := sum(1 for _ in open(p))) > MAX_LINES}
    assert long == {}


def test_no_folder_holds_more_than_12_modules():
    assert crowded_folders(os.path.join(ROOT, "kacjax")) == {}


def test_evaluation_never_reaches_the_distillation_chain(package):
    """Reports only report: no module of ``kacjax.evaluation`` imports ``kacjax.training.distill``,
    directly or through another module (the mode that distils lives in ``kacjax.cli``)."""
    _, graph = package
    reaching = sorted(m for m in graph if layer(m) == "evaluation" and "kacjax.training.distill" in reachable(graph, m))
    assert reaching == []
    assert "kacjax.training.distill" in reachable(graph, "kacjax.cli.modes")  # the check can see the chain


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
    assert crowded_folders(str(pkg)) == {}
    (pkg / "models").mkdir()
    for i in range(MAX_MODULES_PER_FOLDER + 1):
        (pkg / "models" / f"m{i}.py").write_text("")
    assert crowded_folders(str(pkg)) == {os.path.join("kacjax", "models"): MAX_MODULES_PER_FOLDER + 1}


def test_public_names_still_resolve():
    """The names the README and users reach keep working after the move into layers: each public
    module re-exports its implementation's ``__all__``, the same objects."""
    import kacjax
    import kacjax.kac
    import kacjax.samplers
    from kacjax.data import build_input

    for facade, implementation in FACADES.items():
        public, inner = importlib.import_module(facade), importlib.import_module(implementation)
        assert public is not inner and sorted(public.__all__) == sorted(inner.__all__), facade
        assert all(getattr(public, name) is getattr(inner, name) for name in public.__all__), facade
    for name in ("sample", "density", "cdf", "velocity", "atom_mass", "variance"):
        assert callable(getattr(kacjax.kac, name))
    assert callable(kacjax.samplers.integrate) and callable(build_input) and callable(kacjax.load)


def _docs() -> dict:
    paths = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
    return {os.path.relpath(p, ROOT): open(p).read() for p in paths}


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` is a module, or a module and attributes after it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


def test_every_dotted_name_in_the_readme_and_docs_resolves():
    names = {(doc, m.group(0)) for doc, text in _docs().items()
             for m in re.finditer(r"(?<![\w.])kacjax(?:\.[A-Za-z_]\w*)+", text)}
    assert names, "the pattern found no name"
    assert sorted((doc, name) for doc, name in names if not _resolves(name)) == []


def test_every_package_path_in_the_readme_and_docs_exists():
    paths = {(doc, m.group(0).rstrip(".")) for doc, text in _docs().items()
             for m in re.finditer(r"(?<![\w./~-])kacjax/[\w./]*", text)}
    assert sorted((doc, path) for doc, path in paths if not os.path.exists(os.path.join(ROOT, path))) == []
