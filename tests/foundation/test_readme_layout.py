"""The README's layout tree names real files and folders, each in the folder it is drawn in, and
lists every package folder under customer360/ (so the tree cannot drift from the code)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def layout_entries(readme: str) -> list[Path]:
    """Paths drawn in the README's layout block: two spaces of indent per folder level; deeper
    indented lines continue a description."""
    block = re.search(r"## Layout\n\n```\n(.*?)```", readme, re.S).group(1)
    entries, parents = [], []
    for line in block.splitlines():
        indent, name = re.match(r"( *)(\S*)", line).groups()
        depth = len(indent) // 2
        if not (name.endswith("/") or "." in name) or depth > len(parents):
            continue
        parents = parents[:depth]
        entries.append(ROOT.joinpath(*parents, name.rstrip("/")))
        if name.endswith("/"):
            parents.append(name.rstrip("/"))
    return entries


def test_every_entry_exists_where_it_is_drawn():
    entries = layout_entries(README)
    assert len(entries) > 30
    assert [str(p.relative_to(ROOT)) for p in entries if not p.exists()] == []


def test_every_package_folder_is_listed():
    listed = set(layout_entries(README))
    folders = {p for p in (ROOT / "customer360").iterdir() if p.is_dir() and p.name[0] != "_"}
    assert sorted(str(p.relative_to(ROOT)) for p in folders - listed) == []


def test_a_misplaced_entry_is_caught():
    misplaced = README.replace(
        "  publish_targets.py      loads publish_specs/",
        "    publish_targets.py    loads publish_specs/",
    )
    assert misplaced != README
    entries = layout_entries(misplaced)
    wrong = ROOT / "customer360" / "publish_specs" / "publish_targets.py"
    assert wrong in entries and not wrong.exists()
