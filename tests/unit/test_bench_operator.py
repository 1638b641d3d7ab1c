"""``bench.operator`` runs the job's bundled operator on a tiny workload and reports what it
promises (no timing is asserted: speed is measured by the benchmark itself)."""

from __future__ import annotations

from bench import operator


def test_the_bundles_are_the_sqls_lines_one_per_symbol_and_minute() -> None:
    bundles = operator.bundles(3, 2)
    assert len(bundles) == 2
    lines = bundles[1].split("\n")
    assert [line.split("\t")[0] for line in lines] == ["S000", "S001", "S002"]
    assert all(len(line.split("\t")) == 9 for line in lines)
    assert lines[0].split("\t")[1] == str(operator.T0 + operator.MINUTE)


def test_a_run_reports_the_cost_rows_and_collections_of_every_bar() -> None:
    line = operator.measure(symbols=4, minutes=3, repeats=2, every=2)
    assert line["contender"] == "operator" and line["bars_per_run"] == 12
    assert line["us_per_bar"] > 0 and line["min"] <= line["us_per_bar"] <= line["max"]
    assert line["checkpoint_every_minutes"] == 2
    assert 0 < line["us_per_bar_in_markers"] < line["us_per_bar"]  # the states' writes
    assert line["rows_per_bar"] >= 1.0  # an analytics bar each, alerts and signals on top
    assert len(line["gc_collections_per_run"]) == 3
