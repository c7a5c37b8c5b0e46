"""Packaging contracts: light import, a valid npe2 manifest, the launcher's version flag."""

import subprocess
import sys
from pathlib import Path

import napari_segnet
from napari_segnet import cli


def test_import_pulls_in_neither_torch_nor_napari_nor_qt():
    code = (
        "import sys, napari_segnet, napari_segnet.numerics.metrics, napari_segnet.numerics.weightmap; "
        "heavy = {'torch', 'napari', 'qtpy', 'PyQt5', 'magicgui'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_manifest_is_valid_npe2():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(Path(napari_segnet.__file__).parent / "napari.yaml")
    assert manifest.name == "napari-segnet"


def test_version_flag(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == napari_segnet.__version__


#: Layers of the package, lowest first: a module may import from its own layer and the ones below, never above.
LAYERS = [
    # __version__: a constant of __init__, which imports nothing heavy; progress: the typed protocol of long work
    {"_validation", "models", "__version__", "progress"},
    {"numerics"},
    {"io", "data", "sample_data"},
    {"inference", "training"},  # training uses inference.devices; inference never imports training
    {"bioimageio"},
    {"segmenter", "model_versions"},  # model_versions: the version half of Segmenter
    {"project", "live", "distributed", "distributed_views", "big_image"},
    {"session"},  # a viewer's work: model, versions, training set, project (uses project and segmenter)
    {"commands", "_widgets", "_sample_data", "display"},
    {"cli", "__main__", "__init__"},
]


def _imports_between_themes():
    """(importing theme, imported theme, file) for every relative import that crosses a theme of the package."""
    import ast

    root = Path(napari_segnet.__file__).parent
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        package = parts[:-1]
        theme = parts[1] if len(parts) > 1 else "__init__"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = list(package[: len(package) - node.level + 1])
                targets = [base + node.module.split(".")] if node.module else [base + [a.name] for a in node.names]
                for target in targets:
                    other = target[1] if len(target) > 1 else "__init__"
                    if other != theme:
                        yield theme, other, path.name


def test_dependencies_run_one_way():
    rank = {theme: i for i, layer in enumerate(LAYERS) for theme in layer}
    crossings = list(_imports_between_themes())
    assert ("training", "numerics", "loop.py") in crossings  # the walk sees real imports
    upward = [(a, b, f) for a, b, f in crossings if rank[b] > rank[a]]
    assert upward == []


#: The benchmarks, a package beside napari_segnet (run as ``python -m benchmarks.<name>``).
BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _module_imports(root: Path | None = None):
    """{module: the modules of the package at ``root`` (default: napari_segnet) it imports} for every module of
    it, counting every import statement (also those inside functions and under ``TYPE_CHECKING``)."""
    import ast

    root = root or Path(napari_segnet.__file__).parent
    names = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        package = parts[:-1]
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = (path, package)
    graph = {}
    for name, (path, package) in names.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (node.level or (node.module or "").startswith(root.name)):
                continue
            base = package[: len(package) - node.level + 1] if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            found |= {".".join(c) for c in [module] + [module + [a.name] for a in node.names]}
        graph[name] = {m for m in found if m in names and m != name}
    return graph


def _cycles(graph: dict) -> list[list[str]]:
    """The import cycles of ``graph`` ({module: modules it imports}), each as a path that returns to its start."""
    done, cycles = set(), []

    def visit(module, path):
        if module in path:
            cycles.append(path[path.index(module):] + [module])
            return
        if module in done:
            return
        for other in sorted(graph[module]):
            visit(other, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return cycles


def test_no_import_cycle():
    graph = _module_imports()
    assert "napari_segnet.training.settings" in graph["napari_segnet.training.patches"]  # the walk sees imports
    assert _cycles(graph) == []


def test_no_import_cycle_in_the_benchmarks():
    graph = _module_imports(BENCHMARKS)
    assert "benchmarks.simulated_user" in graph["benchmarks.hitl"]  # the walk sees relative imports
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]  # and it finds a cycle where there is one


def test_modules_and_functions_stay_small():
    """No module over 400 lines, no function over 60: a reader sees a whole function at once."""
    import ast

    root = Path(napari_segnet.__file__).parent
    long_modules, long_functions = [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            long_modules.append(path.name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long_functions.append(f"{path.name}:{node.name}")
    assert (long_modules, long_functions) == ([], [])
