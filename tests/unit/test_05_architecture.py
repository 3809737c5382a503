"""The import graph of the package: no cycles (lazy imports included), layers respected.

Every ``import`` statement of every module is read with ``ast``, wherever it is (module
level or inside a function); imports under ``if TYPE_CHECKING:`` are left out, since they
never run. The layers are those of ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import xarray_ome_zarr

PACKAGE = Path(xarray_ome_zarr.__file__).parent
NAME = "xarray_ome_zarr"

#: Each module's layer (docs/architecture.md): a module imports from its own layer or lower.
LAYERS = {
    # 0: foundations
    "errors": 0,
    "_version": 0,
    "_compat": 0,
    "collector": 0,
    # 1: the format layer (OME-NGFF documents; no xarray)
    "ngff": 1,
    # 2: numbers
    "transforms": 2,
    "level_lengths": 2,
    # 3: the xarray side of the model
    "node_attrs": 3,
    "layout": 3,
    "coordinate_index": 3,
    "systems": 3,
    # 4: storage, arrays and the walk of a stored hierarchy
    "store": 4,
    "consolidated": 4,
    "ozx": 4,
    "targets": 4,
    "compression": 4,
    "chunking": 4,
    "array": 4,
    "direct_read": 4,
    "remote_read": 4,
    "s3_obstore": 4,
    "hierarchy": 4,
    "existing": 4,
    "locks": 4,
    "pyramid_state": 4,
    # 5: reading, validating, building images and pyramids
    "reader": 5,
    "validation": 5,
    "multiscale": 5,
    "builder": 5,
    "points": 5,
    "stored_data": 5,
    "summary": 5,
    "pyramid_update": 5,
    "plate_view": 5,
    # 6: writing
    "writer": 6,
    "regions": 6,
    "additions": 6,
    "metadata_writer": 6,
    "append": 6,
    # 7: the faces users touch
    "backend": 7,
    "accessor": 7,
    "adapters": 7,
    "render": 7,
    "cli": 7,
    "": 7,  # the package itself (__init__.py)
}


def module_name(path: Path) -> str:
    """``xarray_ome_zarr.ngff.parse`` for ``.../xarray_ome_zarr/ngff/parse.py``."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str) -> set[str]:
    """Every module ``name`` imports (absolute names), lazy imports included."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


GRAPH = {name: {m for m in imports_of(name) if m in MODULES and m != name} for name in MODULES}


def layer_of(name: str) -> int:
    short = name.removeprefix(NAME).lstrip(".")
    key = short.split(".")[0] if short.startswith("ngff") else short
    if key not in LAYERS:
        pytest.fail(
            f"module {name} has no layer: add it to LAYERS here and to docs/architecture.md"
        )
    return LAYERS[key]


def test_the_import_reader_sees_lazy_imports():
    # accessor imports the writer only inside OmeAccessor.to_zarr
    assert f"{NAME}.writer" in GRAPH[f"{NAME}.accessor"]
    assert f"{NAME}.layout" in GRAPH[f"{NAME}.accessor"]


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for dep in sorted(GRAPH[name]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep) :] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_the_format_layer_never_imports_xarray():
    for name in MODULES:
        if name.startswith(f"{NAME}.ngff"):
            outside = {
                m
                for m in imports_of(name)
                if m.split(".")[0] in ("xarray", "dask", "zarr")
                or (
                    m.startswith(NAME)
                    and not m.startswith(f"{NAME}.ngff")
                    and m != f"{NAME}.errors"
                )
            }
            assert not outside, f"{name} imports {sorted(outside)}"


def test_every_import_goes_down_the_layers():
    upward = [
        f"{name} (layer {layer_of(name)}) imports {dep} (layer {layer_of(dep)})"
        for name, deps in sorted(GRAPH.items())
        for dep in sorted(deps)
        if layer_of(dep) > layer_of(name)
    ]
    assert not upward, "\n".join(upward)


def test_the_model_layer_knows_nothing_of_storage():
    for name in (f"{NAME}.layout", f"{NAME}.transforms"):
        heavy = {m for m in imports_of(name) if m.split(".")[0] in ("zarr", "dask", "fsspec")}
        assert not heavy, f"{name} imports {sorted(heavy)}"
