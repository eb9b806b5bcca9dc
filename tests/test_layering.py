"""The package's rooms keep their rules: no import loops, GUI code only in _qt/, heavy imports lazy."""

import ast
import subprocess
import sys
from pathlib import Path

import napari_livecell

PACKAGE = Path(napari_livecell.__file__).parent
GUI_PACKAGES = {"napari", "qtpy", "magicgui", "PyQt6", "PySide6", "PyQt5", "vispy", "superqt"}
QT_PACKAGES = GUI_PACKAGES - {"napari", "vispy"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_names(path: Path) -> list[str]:
    """Every module a file imports, at any depth (lazy imports inside functions too)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            names.append(base)
            # "from package import module" imports that module
            names += [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
    return names


def internal_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        graph[name] = {
            target
            for target in imported_names(path)
            if target in MODULES and target != name and not name.startswith(f"{target}.")
        }
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    assert find_cycle(internal_graph()) is None


def offenders(modules: dict[str, Path], banned: set[str]) -> list[str]:
    return [
        f"{name}: {imported}"
        for name, path in modules.items()
        for imported in imported_names(path)
        if imported.split(".")[0] in banned
    ]


def room(prefix: str) -> dict[str, Path]:
    return {name: path for name, path in MODULES.items() if name == prefix or name.startswith(f"{prefix}.")}


def test_core_never_imports_gui_packages():
    assert offenders(room("napari_livecell.core"), GUI_PACKAGES) == []


def test_layers_and_io_never_import_qt():
    modules = {**room("napari_livecell.layers"), **room("napari_livecell.io")}
    assert offenders(modules, QT_PACKAGES) == []


def test_cli_imports_napari_only_in_demo():
    cli = {k: v for k, v in room("napari_livecell.cli").items() if k != "napari_livecell.cli.demo"}
    assert offenders(cli, GUI_PACKAGES) == []


def test_nothing_outside_qt_imports_qt():
    outside = {k: v for k, v in MODULES.items() if not k.startswith("napari_livecell._qt")}
    found = [
        f"{name}: {imported}"
        for name, path in outside.items()
        for imported in imported_names(path)
        if imported.startswith("napari_livecell._qt")
    ]
    assert found == []


def test_the_core_never_imports_the_rooms_above_it():
    above = ("napari_livecell.layers", "napari_livecell.io", "napari_livecell.cli", "napari_livecell.service")
    found = [
        f"{name}: {imported}"
        for name, path in room("napari_livecell.core").items()
        for imported in imported_names(path)
        if imported.startswith(above)
    ]
    assert found == []


# core's domains, bottom first: each imports only the shared modules at core's top and the domains before it
CORE_DOMAINS = ("tracking", "formats", "models", "inference", "analysis", "training")


def core_domain(module: str) -> str | None:
    """The domain of a core module, "" for the shared modules at core's top, None outside core."""
    prefix = "napari_livecell.core."
    if not module.startswith(prefix):
        return None
    first, _, rest = module[len(prefix) :].partition(".")
    return first if rest or first in CORE_DOMAINS else ""


def upward_core_imports(graph: dict[str, set[str]]) -> list[str]:
    rank = {"": -1, **{domain: i for i, domain in enumerate(CORE_DOMAINS)}}
    found = []
    for name, targets in graph.items():
        source = core_domain(name)
        if source is None:
            continue
        for target in targets:
            domain = core_domain(target)
            if domain is not None and target != "napari_livecell.core" and rank[domain] > rank[source]:
                found.append(f"{name} -> {target}")
    return sorted(found)


def test_the_domain_check_finds_an_upward_import():
    graph = {
        "napari_livecell.core.formats.coco": {"napari_livecell.core.inference.predict"},
        "napari_livecell.core.inference.predict": {"napari_livecell.core.formats.coco"},
        "napari_livecell.core.segmentation": {"napari_livecell.core.tracking.track"},
    }
    assert upward_core_imports(graph) == [
        "napari_livecell.core.formats.coco -> napari_livecell.core.inference.predict",
        "napari_livecell.core.segmentation -> napari_livecell.core.tracking.track",
    ]


def test_core_domains_import_only_downwards():
    assert upward_core_imports(internal_graph()) == []


def test_core_top_holds_only_the_shared_modules_and_the_domains():
    top = sorted(path.name for path in (PACKAGE / "core").iterdir() if path.suffix == ".py" or path.is_dir())
    domains = [name for name in top if not name.endswith(".py") and name != "__pycache__"]
    assert sorted(domains) == sorted(CORE_DOMAINS)
    assert len([name for name in top if name.endswith(".py")]) <= 12


def test_importing_the_plugin_loads_no_heavy_framework():
    code = (
        "import sys, napari_livecell.core.inference.predict, napari_livecell.core.formats.coco, "
        "napari_livecell.core.inference.run, napari_livecell.io.read, napari_livecell.io.write, "
        "napari_livecell.layers, napari_livecell.cli; "
        "heavy = ('torch', 'ultralytics', 'cv2', 'napari', 'onnxruntime'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
