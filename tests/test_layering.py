"""The package's layering, read from its imports (ast; every import counts, function-local and
``TYPE_CHECKING`` ones too): backends <- core <- API <- CLI/demo, each module importing only its
own level and those below, no import cycle, and no function-local import of a graia module but
the few listed below, none of them there to break a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "graia"

#: Each module's level, by the longest matching name prefix: a module may import only modules of
#: its own level or below.
LEVELS: dict[str, int] = {
    # below the backends: declarations and helpers they all share
    "graia.errors": 0,
    "graia.spec": 0,
    "graia.files": 0,
    "graia.rules": 0,
    "graia._interrupt": 0,
    "graia._version": 0,
    "graia.backends": 1,
    # core: layers, their shapes and host states, data, callbacks, MPI
    "graia._validation": 2,
    "graia.layers": 2,
    "graia.state": 2,
    "graia.adapt": 2,
    "graia.augment": 2,
    "graia.io": 2,
    "graia.datasets": 2,
    "graia.callbacks": 2,
    "graia.distributed": 2,
    # API: the package itself, the model and what it trains, saves and exports with
    "graia": 3,
    "graia.model": 3,
    "graia.training": 3,
    "graia.saving": 3,
    "graia.export": 3,
    "graia.plot": 3,
    "graia.recipes": 3,
    # CLI and demo
    "graia.cli": 4,
    "graia.__main__": 4,
    "graia.demo": 4,
}
NAMES = {0: "below backends", 1: "backends", 2: "core", 3: "API", 4: "CLI/demo"}

#: The function-local imports of graia modules allowed, (importer, imported), each for a reason
#: that is not a cycle (the cycle test above holds with them counted as imports).
LOCAL_IMPORTS = {
    # The registry loads a backend when it is first asked for one, not when graia is imported
    # (test_importing_graia_loads_no_backend): a backend's import compiles (Numba) or loads a
    # shared library that may be absent or fail to load (Futhark), which the registry reports.
    ("graia.backends", "graia.backends.numba"),
    ("graia.backends", "graia.backends.futhark"),
    # adapt runs the oracle's forward pass only when a shift is chosen; importing it with
    # graia would load the Numba backend with every import of graia (same test).
    ("graia.adapt", "graia.backends.numba"),
    # Written by the build (CMakeLists.txt); absent in a source tree that was never built.
    ("graia.backends.futhark.ffi", "graia.backends._build_notes"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(node: ast.AST, path: Path, modules: dict[str, Path]) -> set[str]:
    """The graia modules an import statement imports (``from a import b`` is module ``a.b``
    when that is a module, else ``a``); empty for any other node."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
        assert node.level == 0, f"{path}: relative import"
        names = [
            f"{node.module}.{alias.name}"
            if f"{node.module}.{alias.name}" in modules
            else node.module
            for alias in node.names
        ]
    else:
        return set()
    return {name for name in names if name == "graia" or name.startswith("graia.")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The graia modules ``path`` imports, wherever the import statement is."""
    return set().union(
        *(_imported(n, path, modules) for n in ast.walk(ast.parse(path.read_text())))
    )


def _local_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The graia modules ``path`` imports inside a function."""
    functions = [
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    ]
    return set().union(*(_imported(n, path, modules) for f in functions for n in ast.walk(f)))


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def _level(module: str) -> int:
    prefixes = [p for p in LEVELS if module == p or module.startswith(p + ".")]
    assert prefixes, f"{module}: no level in tests/test_layering.py's LEVELS"
    return LEVELS[max(prefixes, key=len)]


def test_no_upward_imports():
    upward = [
        f"{a} ({NAMES[_level(a)]}) imports {b} ({NAMES[_level(b)]})"
        for a, targets in _graph().items()
        for b in sorted(targets)
        if _level(b) > _level(a)
    ]
    assert not upward, "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def test_no_import_cycles():
    cycles = [sorted(c) for c in _cycles(_graph())]
    assert not cycles, f"import cycles: {cycles}"


def test_no_function_local_imports_but_the_listed_ones():
    """A graia module is imported at the top of the module that uses it: an import inside a
    function hides the dependency from a reader (and once hid a cycle)."""
    modules = _modules()
    found = {
        (name, imported)
        for name, path in modules.items()
        for imported in _local_imports(path, modules)
    }
    assert found <= LOCAL_IMPORTS, f"function-local imports: {sorted(found - LOCAL_IMPORTS)}"
    assert LOCAL_IMPORTS <= found, (
        f"no longer imported in a function: {sorted(LOCAL_IMPORTS - found)}"
    )


def test_importing_graia_loads_no_backend():
    """The registry chooses and loads a backend when first asked, so importing graia (or a
    backend's module, whose package is the registry's) does not load the backends."""
    code = (
        "import sys, graia, graia.backends.interface; "
        "print(sorted(m for m in sys.modules if m.startswith(('graia.backends.numba', "
        "'graia.backends.futhark'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]"
