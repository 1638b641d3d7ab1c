"""The import contract: every import in src/ follows the tables of docs/architecture.md.

The rules are written once, in docs/architecture.md ("Who may import whom"); this test parses
them and every ``import`` of src/flinktrade with ``ast`` (function-level and ``TYPE_CHECKING``
imports included). ``KNOWN`` names today's exceptions, each with its reason: a new violation fails,
and so does a known one that no longer happens, so the list only shrinks.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "flinktrade"
DOC = ROOT / "docs" / "architecture.md"

# (importer, imported) -> why it is still there. Names are relative to ``flinktrade``; an imported
# name is the module (or the third-party library) as the tables name it.
KNOWN: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Row:
    name: str
    members: tuple[str, ...]
    may_import: tuple[str, ...]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _names(cell: str) -> tuple[str, ...]:
    return tuple(re.findall(r"`([^`]+)`", cell))


def _tables(text: str) -> list[list[list[str]]]:
    """The markdown tables after the heading "Who may import whom", as rows of cells."""
    section = text.split("## Who may import whom", 1)[1]
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in section.splitlines():
        if line.startswith("|"):
            if not re.fullmatch(r"\|[-| ]+\|", line.strip()):
                current.append(_cells(line))
        elif current:
            tables.append(current[1:])  # without the header
            current = []
    if current:
        tables.append(current[1:])
    return tables


def load_rules(doc: Path = DOC) -> tuple[list[Row], dict[str, tuple[str, ...]]]:
    """(the import rows in order, library -> where it may be imported) from the doc."""
    imports, libraries = _tables(doc.read_text())[:2]
    rows = [Row(cells[0], _names(cells[1]), _names(cells[2])) for cells in imports]
    return rows, {_names(cells[0])[0]: _names(cells[1]) for cells in libraries}


def matches(module: str, pattern: str) -> bool:
    """Whether ``module`` (relative to flinktrade; "" is the package) is named by ``pattern``."""
    if pattern == "flinktrade":
        return module == ""
    if pattern.startswith("*."):
        parts = module.split(".")
        return len(parts) >= 2 and parts[1] == pattern[2:]
    return module == pattern or module.startswith(pattern + ".")


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package, by name relative to flinktrade ("" for the package)."""
    found: dict[str, Path] = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(the flinktrade modules, by relative name, and the top-level libraries) ``name`` imports."""
    package = ["flinktrade", *name.split(".")] if name else ["flinktrade"]
    if path.name != "__init__.py":
        package = package[:-1]
    ours: set[str] = set()
    libraries: set[str] = set()

    def add(absolute: str, imported: list[str]) -> None:
        if absolute != "flinktrade" and not absolute.startswith("flinktrade."):
            libraries.add(absolute.split(".")[0])
            return
        base = absolute.removeprefix("flinktrade").removeprefix(".")
        for item in imported or [""]:
            candidate = f"{base}.{item}" if base and item else base or item
            ours.add(candidate if candidate in known else _nearest(base, known))

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, [])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                head = package[: len(package) - (node.level - 1)]
                absolute = ".".join([*head, *([node.module] if node.module else [])])
            else:
                absolute = node.module or ""
            add(absolute, [alias.name for alias in node.names])
    ours.discard(name)
    libraries.discard("__future__")
    return ours, libraries


def _nearest(dotted: str, known: set[str]) -> str:
    """The deepest known module that ``dotted`` is or is inside ("" is the package)."""
    while dotted and dotted not in known:
        dotted = dotted.rpartition(".")[0]
    return dotted


def row_of(module: str, rows: list[Row]) -> Row | None:
    return next((r for r in rows if any(matches(module, m) for m in r.members)), None)


def allowed(module: str, target: str, rows: list[Row]) -> bool:
    row = row_of(module, rows)
    if row is None:
        return False
    patterns = [*rows[0].members, *row.may_import]
    if not all(m.startswith("*.") for m in row.members):
        patterns += row.members
    else:
        stage = module.split(".")[0]  # a stage's cli module: its stage and what its stage may
        patterns.append(stage)
        stage_row = row_of(stage, rows)
        if stage_row is not None:
            patterns += stage_row.may_import
    return any(matches(target, p) for p in patterns)


def violations(src: Path = SRC, doc: Path = DOC) -> tuple[set[tuple[str, str]], list[str]]:
    """(the arrows the tables do not allow, modules that belong to no row)."""
    rows, libraries = load_rules(doc)
    found = modules(src)
    known = set(found)
    bad: set[tuple[str, str]] = set()
    homeless = [m or "flinktrade" for m in found if row_of(m, rows) is None]
    for name, path in found.items():
        ours, libs = imports_of(name, path, known)
        bad |= {(name, t) for t in ours if not allowed(name, t, rows)}
        for lib in libs & libraries.keys():
            if not any(matches(name, place) for place in libraries[lib]):
                bad.add((name, lib))
    return bad, homeless


def test_the_doc_tables_parse_into_rules() -> None:
    rows, libraries = load_rules()
    assert rows[0].name == "kernel"
    for needed in ("events", "topics", "bus", "config", "errors", "pipeline.analytics"):
        assert needed in rows[0].members
    assert {r.name for r in rows} >= {"ingest", "pipeline", "execution", "notify", "api",
                                      "backtest", "infra", "testing", "composition root"}  # fmt: skip
    assert libraries["confluent_kafka"] == ("bus",)


def test_every_module_belongs_to_a_row() -> None:
    _, homeless = violations()
    assert not homeless, f"modules in no row of docs/architecture.md: {homeless}"


def test_imports_follow_the_contract() -> None:
    bad, _ = violations()
    new = sorted(bad - KNOWN.keys())
    gone = sorted(KNOWN.keys() - bad)
    message = []
    if new:
        message.append("imports docs/architecture.md does not allow (fix them, or add a row/arrow "
                       "there; an exception goes in KNOWN with its reason):")  # fmt: skip
        message += [f"  {a} -> {b}" for a, b in new]
    if gone:
        message.append("exceptions in KNOWN that no longer happen (delete them):")
        message += [f"  {a} -> {b}" for a, b in gone]
    assert not message, "\n".join(message)


# The checker itself, on a small made-up package: each rule can fail.


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "flinktrade"
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


DOC_TEXT = """## Who may import whom

| row | modules | may also import |
|---|---|---|
| kernel | `flinktrade`, `events`, `*.settings` | |
| stage commands | `*.cli` | `cli.options` |
| ingest | `ingest` | |
| api | `api` | `ingest.store` |
| composition root | `cli` | `*.cli` |

| library | only in |
|---|---|
| `confluent_kafka` | `bus` |
"""


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"api/app.py": "from flinktrade.ingest import store\n"}, set()),
        ({"api/app.py": "from flinktrade.ingest.live import run\n"}, {("api.app", "ingest.live")}),
        (
            {"api/app.py": "def f():\n    import flinktrade.ingest.live\n"},
            {("api.app", "ingest.live")},
        ),
        ({"ingest/live.py": "from ..api import app\n"}, {("ingest.live", "api.app")}),
        ({"events.py": "from flinktrade.api.settings import S\n"}, set()),
        ({"events.py": "from flinktrade.ingest.live import run\n"}, {("events", "ingest.live")}),
        ({"ingest/cli.py": "from flinktrade.cli.options import O\n"}, set()),
        (
            {"ingest/live.py": "from flinktrade.cli.options import O\n"},
            {("ingest.live", "cli.options")},
        ),
        ({"cli/app.py": "from flinktrade.api import cli\n"}, set()),
        ({"cli/app.py": "from flinktrade.api.app import run\n"}, {("cli.app", "api.app")}),
        ({"api/app.py": "import confluent_kafka\n"}, {("api.app", "confluent_kafka")}),
        (
            {
                "api/app.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from flinktrade.ingest.live import run\n"
            },
            {("api.app", "ingest.live")},
        ),
    ],
)
def test_the_checker_finds_what_the_rules_forbid(
    tmp_path: Path, files: dict[str, str], expected: set[tuple[str, str]]
) -> None:
    base = {
        "__init__.py": "",
        "events.py": "",
        "api/__init__.py": "",
        "api/app.py": "",
        "api/cli.py": "",
        "api/settings.py": "",
        "ingest/__init__.py": "",
        "ingest/store.py": "",
        "ingest/live.py": "",
        "ingest/cli.py": "",
        "cli/__init__.py": "",
        "cli/app.py": "",
        "cli/options.py": "",
    }
    src = _tree(tmp_path, {**base, **files})
    doc = tmp_path / "architecture.md"
    doc.write_text(DOC_TEXT)
    bad, homeless = violations(src, doc)
    assert bad == expected
    assert homeless == []


def test_a_module_in_no_row_is_reported(tmp_path: Path) -> None:
    src = _tree(tmp_path, {"__init__.py": "", "events.py": "", "stray.py": ""})
    doc = tmp_path / "architecture.md"
    doc.write_text(DOC_TEXT)
    assert violations(src, doc)[1] == ["stray"]
