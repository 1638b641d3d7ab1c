"""The alert kinds: one enum, ``events.AlertKind``, that the code emitting alerts, the SQL and the
docs agree on.

The sources are read with ``ast``: every ``Alert`` built in src/ takes its kind from the enum
(never a string written in place), and the members the emitting stages name are exactly the
enum's, so a member nobody emits, or a kind emitted around the enum, fails here.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from flinktrade import events
from flinktrade.events import AlertKind

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "flinktrade"
CONSUMERS = ("notify", "api")
"""Packages that read alerts (they compare against kinds, never emit them)."""


@cache
def _modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(SRC)): ast.parse(path.read_text(), str(path))
        for path in sorted(SRC.rglob("*.py"))
        if "_mypyc" not in path.parts
    }


def _member(node: ast.AST) -> str | None:
    """``X`` for ``AlertKind.X`` or ``events.AlertKind.X``; else None."""
    if not isinstance(node, ast.Attribute):
        return None
    owner = node.value
    if isinstance(owner, ast.Name) and owner.id == "AlertKind":
        return node.attr
    if isinstance(owner, ast.Attribute) and owner.attr == "AlertKind":
        return node.attr
    return None


def _is_alert(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "Alert") or (
        isinstance(func, ast.Attribute) and func.attr == "Alert"
    )


def _is_make_id(func: ast.expr) -> bool:
    return isinstance(func, ast.Attribute) and func.attr == "make_id" and _is_alert(func.value)


def _from_enum(expr: ast.expr, function: ast.FunctionDef | None) -> bool:
    """Whether ``expr`` is a member of the enum: ``AlertKind.X``; a parameter annotated
    ``AlertKind``; a local name only ever assigned members; an f-string led by a member."""
    if _member(expr) is not None:
        return True
    if isinstance(expr, ast.JoinedStr):
        first = expr.values[0] if expr.values else None
        return isinstance(first, ast.FormattedValue) and _member(first.value) is not None
    if not isinstance(expr, ast.Name) or function is None:
        return False
    for arg in [*function.args.args, *function.args.kwonlyargs]:
        if arg.arg == expr.id:
            return arg.annotation is not None and "AlertKind" in ast.unparse(arg.annotation)
    values: list[ast.expr] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == expr.id:
                    values.append(node.value)
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for name, value in zip(target.elts, node.value.elts, strict=True):
                        if isinstance(name, ast.Name) and name.id == expr.id:
                            values.append(value)
    return bool(values) and all(_member(v) is not None for v in values)


def _kind_arguments(tree: ast.Module) -> list[tuple[int, ast.expr, ast.FunctionDef | None]]:
    """(line, expression, enclosing function) of every kind given to ``Alert(kind=...)`` and to
    ``Alert.make_id(kind, ...)``."""
    found: list[tuple[int, ast.expr, ast.FunctionDef | None]] = []

    def visit(node: ast.AST, function: ast.FunctionDef | None) -> None:
        if isinstance(node, ast.FunctionDef):
            function = node
        if isinstance(node, ast.Call):
            if _is_alert(node.func):
                found.extend(
                    (node.lineno, k.value, function) for k in node.keywords if k.arg == "kind"
                )
            elif _is_make_id(node.func) and node.args:
                found.append((node.lineno, node.args[0], function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return found


def test_every_alert_built_in_src_takes_its_kind_from_the_enum() -> None:
    checked, loose = 0, []
    for name, tree in _modules().items():
        for line, expr, function in _kind_arguments(tree):
            checked += 1
            if not _from_enum(expr, function):
                loose.append(f"{name}:{line}: {ast.unparse(expr)}")
    assert loose == [], "alert kinds written around events.AlertKind"
    assert checked >= 10  # the scan does find the alerts (analytics, due, live, execution)


def test_the_emitting_stages_name_exactly_the_enums_members() -> None:
    emitted: set[str] = set()
    for name, tree in _modules().items():
        if name == "events.py" or name.split("/")[0] in CONSUMERS:
            continue
        emitted |= {m for node in ast.walk(tree) if (m := _member(node)) is not None}
    emitted |= {AlertKind(kind).name for kind in _java_kinds()}  # the job's Java functions
    assert emitted == set(AlertKind.__members__)


def _java_kinds() -> list[str]:
    """The alert kinds the job's Java functions write (``KIND`` constants in ``jvm/udf``)."""
    return [
        kind
        for source in sorted((ROOT / "jvm" / "udf" / "src").rglob("*.java"))
        for kind in re.findall(r'public static final String KIND = "([^"]*)";', source.read_text())
    ]


def test_no_kind_is_spelled_out_as_a_string_in_src() -> None:
    values = {kind.value for kind in AlertKind}
    spelled = [
        f"{name}:{node.lineno}: {node.value!r}"
        for name, tree in _modules().items()
        if name != "events.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in values
    ]
    assert spelled == []


def test_the_java_large_trade_alert_has_the_enums_kind_in_its_row_and_its_id() -> None:
    """``LargeTradeAlerts.java`` writes the kind and hashes it into the id from one constant."""
    source = (
        ROOT / "jvm" / "udf" / "src" / "io" / "flinktrade" / "udf" / "LargeTradeAlerts.java"
    ).read_text()
    assert [AlertKind(kind) for kind in _java_kinds()] == [AlertKind.LARGE_TRADE]
    assert 'json.writeStringField("kind", KIND);' in source
    assert 'stableId("alert", KIND, symbol, tradeId)' in source


def test_docs_alerts_lists_every_kind_once() -> None:
    text = (ROOT / "docs" / "alerts.md").read_text()
    listed = re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE)
    assert sorted(listed) == sorted(kind.value for kind in AlertKind)


def test_the_wire_values_stay_as_consumers_know_them() -> None:
    # written out by hand: a renamed value would orphan records and notify routes already out
    assert {kind.value for kind in AlertKind} == {
        "price_jump", "price_gap", "volume_spike", "news_shock", "stale_feed", "strategy_error",
        "large_trade", "bad_bar", "bad_news", "stream_silent", "trading_status", "executor.halt",
        "executor.kill_switch", "executor.order_denied", "executor.order_rejected",
        "executor.reconciliation_failed", "executor.reconciled",
    }  # fmt: skip


@pytest.mark.parametrize("kind", ["options.assignment", "price_jump_v2", "x"])
def test_an_alert_of_a_kind_this_version_does_not_know_still_decodes(kind: str) -> None:
    record = f'{{"id": "a1", "kind": "{kind}", "message": "m", "ts": 1}}'.encode()
    assert events.decode(events.Alert, record).kind == kind


def test_an_alert_built_from_a_member_carries_the_plain_value() -> None:
    alert = events.Alert(id="a1", kind=AlertKind.HALT, message="m", ts=1)
    assert type(alert.kind) is str
    assert b'"kind":"executor.halt"' in events.encode(alert)
    assert alert.make_id(AlertKind.STALE_FEED, "AAPL", 5) == events.stable_id(
        "alert", "stale_feed", "AAPL", 5
    )
