"""The module map in utils/__init__.py and the README's list agree with the package and with
what the notebooks import."""

from __future__ import annotations

import re

import utils
from utils import notebooks as nbs

ENTRY = re.compile(r"^- ``(\w+)`` \(([^)]*)\): ", re.M)


def _modules() -> set[str]:
    package = utils.REPO_ROOT / "utils"
    found = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    return found | {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}


def _lessons(text: str) -> set[str]:
    """``"00-02, 05"`` -> {"00", "01", "02", "05"}; ``"-"`` -> set()."""
    out: set[str] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part == "-":
            continue
        low, _, high = part.partition("-")
        out |= {f"{n:02d}" for n in range(int(low), int(high or low) + 1)}
    return out


def _imports() -> dict[str, set[str]]:
    """Which lessons import each module, read from the notebooks' code cells."""
    used: dict[str, set[str]] = {}
    for path in nbs.discover():
        code = "\n".join(c.source for c in nbs.read(path).cells if c.cell_type == "code")
        for module in _modules():
            if re.search(rf"(from|import) utils(\.{module}\b| import [\w, ]*\b{module}\b)",
                         code):
                used.setdefault(module, set()).add(path.stem[:2])
    return used


def test_every_module_is_on_the_map_once():
    names = [m for m, _ in ENTRY.findall(utils.__doc__)]
    assert sorted(names) == sorted(set(names)), "a module is listed twice"
    assert set(names) == _modules()


def test_the_map_names_the_lessons_that_import_each_module():
    used = _imports()
    wrong = {m: (sorted(_lessons(listed)), sorted(used.get(m, set())))
             for m, listed in ENTRY.findall(utils.__doc__)
             if _lessons(listed) != used.get(m, set())}
    assert not wrong, f"module: (map says, notebooks import) {wrong}"


def test_readme_lists_every_module():
    readme = (utils.REPO_ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("\n## ", 4)]
    missing = [m for m in _modules() if f"`{m}`" not in layout]
    assert not missing, f"README's Layout does not name {missing}"
