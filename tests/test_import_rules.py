"""The package layering of docs/architecture.md, checked over the real import graph.

Every `import` / `from … import` in src/evalfleet (at module level or inside functions:
a lazy import is still a dependency) is read with `ast`; each rule names a package and
what it must never import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "evalfleet"

# (importer prefix, forbidden prefixes, why)
RULES = [
    ("evalfleet.engine", ("evalfleet.executors", "evalfleet.planner", "evalfleet.store"),
     "the engine never knows which backend or store runs it"),
    ("evalfleet.engine", ("evalfleet.harness",),
     "the engine runs built-in tasks; harness jobs are dispatched above it"),
    ("evalfleet.harness", ("evalfleet.executors", "evalfleet.planner", "evalfleet.store",
                           "evalfleet.api"),
     "a harness job, like the engine, never knows which backend or store runs it"),
    ("evalfleet.harness.frameworks", ("evalfleet.engine", "evalfleet.config", "evalfleet.tasks"),
     "the framework catalog is data that tasks.catalog reads: a leaf"),
    ("evalfleet.jobs", ("evalfleet.executors", "evalfleet.planner", "evalfleet.store",
                        "evalfleet.api", "evalfleet.cli"),
     "running job files, like the engine, knows no backend or store"),
    ("evalfleet.progress", ("evalfleet.engine", "evalfleet.executors", "evalfleet.api",
                            "evalfleet.cli", "evalfleet.jobs"),
     "the progress display only reads counters it is given"),
    ("evalfleet.exporters", ("evalfleet.store",), "exporters get store records from the caller"),
    ("evalfleet.compare", ("evalfleet.api", "evalfleet.store", "evalfleet.executors",
                           "evalfleet.cli"),
     "compare works on the finished results it is handed (api gathers them)"),
    ("evalfleet.report", ("evalfleet.api", "evalfleet.store", "evalfleet.executors",
                          "evalfleet.cli", "evalfleet.compare"),
     "the pages show the records and dicts they are handed"),
    ("evalfleet.executors", ("evalfleet.planner",), "executors run plans, they do not make them"),
    ("evalfleet.contract", ("evalfleet.executors", "evalfleet.planner", "evalfleet.store",
                            "evalfleet.engine", "evalfleet.api"),
     "the job contract sits below everything that uses it"),
    ("evalfleet.store", ("evalfleet.executors", "evalfleet.planner", "evalfleet.engine",
                         "evalfleet.api", "evalfleet.config"),
     "the store holds records, it knows nothing above it"),
    ("evalfleet.config", ("evalfleet.executors.local", "evalfleet.executors.slurm",
                          "evalfleet.executors.lepton", "evalfleet.executors.base",
                          "evalfleet.planner", "evalfleet.engine", "evalfleet.store"),
     "config reads only the backend registry, never a backend"),
]  # fmt: skip
# Outside executors/, no module may name a backend: they are found through the registry.
BACKEND_PACKAGES = ("evalfleet.executors.local", "evalfleet.executors.slurm",
                    "evalfleet.executors.lepton")  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


GRAPH = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _violations(importer: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module == importer or module.startswith(importer + ".")
        for target in sorted(targets)
        if any(target == bad or target.startswith(bad + ".") for bad in forbidden)
    ]


@pytest.mark.parametrize(("importer", "forbidden", "why"), RULES, ids=[r[0] for r in RULES])
def test_layering(importer: str, forbidden: tuple[str, ...], why: str) -> None:
    assert _violations(importer, forbidden) == [], why


def _imported_from_outside(package: str, targets: tuple[str, ...]) -> list[str]:
    """Imports of `targets` by modules outside `package`."""
    return [
        f"{module} imports {target}"
        for module, imported in GRAPH.items()
        if not (module == package or module.startswith(package + "."))
        for target in sorted(imported)
        if any(target == t or target.startswith(t + ".") for t in targets)
    ]


def test_product_code_imports_nothing_from_testing() -> None:
    assert _imported_from_outside("evalfleet.testing", ("evalfleet.testing",)) == []


def test_no_backend_is_named_outside_executors() -> None:
    assert _imported_from_outside("evalfleet.executors", BACKEND_PACKAGES) == []


def test_the_rules_see_real_imports() -> None:
    """The graph is not empty and a known edge is in it (a broken parser would pass all)."""
    assert "evalfleet.contract" in GRAPH["evalfleet.store._records"]
    assert "evalfleet.executors.registry.get_executor" in GRAPH["evalfleet.planner"]
    assert _violations("evalfleet.planner", ("evalfleet.executors.registry",)) != []
    assert _imported_from_outside("evalfleet.executors", ("evalfleet.executors.registry",)) != []
