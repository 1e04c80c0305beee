"""The rules of the house that the layout can show, checked on the source tree:
- the libraries under customer360/ never import Dagster (only the composition root
  customer360/definitions.py and the command in customer360/cli/ face Dagster);
- resources/ never load the local Dataverse (customer360.emulator) nor import assets: production
  code reaches Dataverse only over HTTP; the CLI starts the local one;
- asset modules never import each other, except the small shared modules (keys, partitions,
  refresh settings, table docs)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGSTER_FACING = {ROOT / "customer360" / "definitions.py", ROOT / "customer360" / "cli"}
SHARED_ASSET_MODULES = {
    "assets.keys",
    "assets.partitions",
    "assets.refresh",
    "assets.skipping",
    "assets.table_docs",
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def is_dagster_facing(path: Path) -> bool:
    return any(path == p or p in path.parents for p in DAGSTER_FACING)


def test_libraries_never_import_dagster():
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if _is_dagster(m))
        for path in python_files(ROOT / "customer360")
        if not is_dagster_facing(path)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_resources_never_load_the_emulator():
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m
            for m in imported_modules(path)
            if m.startswith(("customer360.emulator", "customer360.cli", "assets"))
        )
        for path in python_files(ROOT / "resources")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("path", python_files(ROOT / "assets"), ids=lambda p: p.name)
def test_asset_modules_import_only_shared_asset_modules(path):
    own = f"assets.{path.stem}"
    others = {
        m
        for m in imported_modules(path)
        if m.startswith("assets.") and m != own and m not in SHARED_ASSET_MODULES
    }
    assert others == set()


def test_the_checks_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import dagster as dg\nfrom customer360.emulator.app import x\n")
    modules = imported_modules(bad)
    assert any(_is_dagster(m) for m in modules)
    assert "customer360.emulator.app" in modules


def _is_dagster(module: str) -> bool:
    return module == "dagster" or module.startswith(("dagster.", "dagster_"))


def test_asset_keys_mirror_lake_places_and_ops_name_what_they_build(c360_home):
    """`<layer>/<table>` keys with the layer as group; an op's name starts with the layer of
    what it builds and names a table it builds (so run config and logs say what runs)."""
    from customer360.definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        layer, _table = key.path
        assert node.group_name == layer, key
        op = node.assets_def.node_def.name
        builds = {k.path[-1] for k in node.assets_def.keys}
        assert op.startswith(f"{layer}__"), (key, op)
        assert any(name in op for name in builds), (key, op)
