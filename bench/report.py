"""Writes benchmark results into docs/: the raw JSON under docs/bench-results/, and the generated
tables in docs/benchmarks.md between the ``bench:begin`` / ``bench:end`` markers (the hand-written
analysis around them is kept).

``python -m bench.report results.jsonl ...`` renders JSON lines that ``bench.run`` printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
RAW = ROOT / "docs" / "bench-results"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def tables(results: list[dict[str, Any]]) -> str:
    catch = defaultdict(list)
    for r in results:
        if r.get("mode") == "catch-up":
            catch[r["contender"]].append(r)
    base = [r["trades_per_s"] for r in catch.get("flinktrade", []) if r.get("trades_per_s")]
    base_med = statistics.median(base) if base else None
    lines = [
        "### Catch-up throughput (trades-1m, from the records)",
        "",
        "| contender | runs | trades/s median (min-max) | flinktrade / this | CPU-s per 1 M trades,"
        " contender incl. start-up | same, steady state | broker CPU-s per 1 M | gate | delivery |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in catch.items():
        rates = [r["trades_per_s"] for r in runs if r.get("trades_per_s")]
        cpu = [r["cpu_s_per_1m"]["contender"] for r in runs if "cpu_s_per_1m" in r]
        steady = [
            r["cpu_s_per_1m"]["contender_steady"]
            for r in runs
            if "contender_steady" in r.get("cpu_s_per_1m", {})
        ]
        bcpu = [r["cpu_s_per_1m"]["broker_during_run"] for r in runs if "cpu_s_per_1m" in r]
        ok = [r.get("correct") for r in runs]
        if all(x is True for x in ok):
            verdict = "pass"
        elif all(x is None for x in ok):
            verdict = "n/a (no work)"
        else:
            reasons = sorted({str(r.get("reason")) for r in runs if r.get("correct") is False})
            verdict = "FAIL: " + "; ".join(reasons)
        ratio = "-"
        if base_med and rates and name != "flinktrade":
            ratio = f"{base_med / statistics.median(rates):.2f}x"
        label = name + (
            f" (capped at {runs[0]['trades']:,} trades)" if runs[0].get("capped") else ""
        )
        lines.append(
            f"| {label} | {len(runs)} | {_spread(rates)} | {ratio} | {_spread(cpu, '{:.1f}')} | "
            f"{_spread(steady, '{:.1f}')} | "
            f"{_spread(bcpu, '{:.1f}')} | {verdict} | {runs[0].get('delivery', '')} |"
        )
    lat = [r for r in results if r.get("mode") == "latency"]
    if lat:
        lines += [
            "",
            "### Open-loop latency (ms, receipt at a consumer minus scheduled send time)",
            "",
            "| contender | profile | rate/s | output | count | p50 | p90 | p99 | p99.9 | max |"
            " driver late >1 ms | load (1-min) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in lat:
            late = r.get("driver", {}).get("sent_late_over_1ms", "-")
            if "error" in r:
                lines.append(
                    f"| {r['contender']} | {r['profile']} | {r['rate_per_s']:,} | - | - | - | - |"
                    f" - | - | - | - | {r['error'][:80]} |"
                )
                continue
            for kind in ("alert", "bar", "signal"):
                h = r.get("latency", {}).get(kind)
                if h is None:
                    h_txt = "| - | - | - | - | - | - |"
                else:
                    h_txt = (
                        f"| {h['count']:,} | {h['p50_ms']} | {h['p90_ms']} | {h['p99_ms']} | "
                        f"{h['p99.9_ms']} | {h['max_ms']} |"
                    )
                lines.append(
                    f"| {r['contender']} | {r['profile']} | {r['rate_per_s']:,} | {kind} {h_txt} "
                    f"{late} | {r.get('load_before', '').split(' ')[0]} |"
                )
    live = [r for r in results if r.get("mode") == "latency-live"]
    if live:
        lines += [
            "",
            "### Live-like latency (ms): event time = wall time, 500 symbols, 3 minute ends",
            "",
            "From the moment a minute's bars can close (minute end + the contender's bound:"
            " flinktrade's 2 s watermark, 0 for the peers) to receipt; for the peers also from"
            " the trade that closed the bar (`own trigger`).",
            "",
            "| contender | profile | rate/s | output | count | p50 | p99 | max |"
            " own trigger p50 / p99 | driver late >1 ms | load (1-min) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in live:
            late = r.get("driver", {}).get("sent_late_over_1ms", "-")
            head = f"| {r['contender']} | {r['profile']} | {r['rate_per_s']:,} |"
            if "error" in r:
                lines.append(f"{head} - | - | - | - | - | - | - | {r['error'][:80]} |")
                continue
            for kind in ("bar", "signal"):
                h = r.get("latency", {}).get(kind)
                if h is None:
                    lines.append(f"{head} {kind} | 0 | - | - | - | - | {late} | - |")
                    continue
                own = h.get("from_trigger")
                own_txt = f"{own['p50_ms']} / {own['p99_ms']}" if own else "-"
                lines.append(
                    f"{head} {kind} | {h['count']:,} | {h['p50_ms']} | {h['p99_ms']} | "
                    f"{h['max_ms']} | {own_txt} | {late} | "
                    f"{r.get('load_before', '').split(' ')[0]} |"
                )
    first = results[0] if results else {}
    loads = sorted(
        {r["load_before"] for r in results if r.get("load_before")},
        key=lambda x: float(x.split()[0]),
    )
    lines += [
        "",
        f"Machine: {first.get('machine', '?')}. Date: {first.get('date', '?')}. "
        f"Load averages seen before runs (1/5/15 min): {loads[0]} .. {loads[-1]}"
        if loads
        else "",
    ]
    return "\n".join(lines)


def write(
    results: list[dict[str, Any]], started: datetime, argv: list[str], sources: str = ""
) -> Path:
    """Save the raw JSON (unless ``sources`` names saved files already) and replace the
    generated part of docs/benchmarks.md."""
    raw = RAW / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    if not sources:
        RAW.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps({"argv": argv, "results": results}, indent=1) + "\n")
        sources = f"`{raw.relative_to(ROOT)}`"
    block = (
        f"{BEGIN}\n_Generated from {sources} (command: `{' '.join(argv)}`)._\n\n"
        f"{tables(results)}\n{END}"
    )
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + block + tail)
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("jsonl", nargs="+", type=Path, help="JSON lines, or a saved .json")
    parser.add_argument("--command", required=True, help="the command that produced the lines")
    args = parser.parse_args()
    results = []
    for path in args.jsonl:
        if path.suffix == ".json":  # a file that write() saved
            results += json.loads(path.read_text())["results"]
        else:
            results += [json.loads(line) for line in path.read_text().splitlines() if line]
    sources = ", ".join(f"`{p}`" for p in args.jsonl)
    print(write(results, datetime.now(UTC), args.command.split(), sources))


if __name__ == "__main__":
    main()
