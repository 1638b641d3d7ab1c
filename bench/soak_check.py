"""The soak's verdicts: what the services wrote compared with what the load generator sent, and the
process facts (RSS of a process tree, the Flink REST endpoint of a MiniCluster) it watches.

Comparisons take plain data (decoded JSON with exact decimals) and return plain dicts of counts,
with a few examples of each kind of difference, ready for the soak's one JSON line.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.soak_load import BAR_MS, PRICE_UNITS
from flinktrade.testing.reference import RefBar, add_sma, sma_cross_signals

CLOSE_AFTER_MS = BAR_MS + 2_000
"""A bar [ts, ts + 1 min) closes once the watermark (max event time - 2 s out-of-orderness, the
job's default) passes its end: when a trade at ts + 62 s or later has been read on every
partition."""
CLOSE_MARGIN_MS = 1_000
"""Bars closing within this of the last trade are not required (a partition's last trade may be
up to this much older than the very last one at low rates)."""
VWAP_REL_TOL = 1e-9
EXAMPLES = 3

Key = tuple[str, int]


def reference_bars(load: dict[str, Any]) -> dict[Key, list[int]]:
    """The load generator's bars: (symbol, ts) -> [open, high, low, close, volume, notional,
    trades] in price units (1/10,000)."""
    symbols = load["symbols"]
    return {(symbols[s], start): agg for s, start, *agg in load["bars"]}


def must_close(load: dict[str, Any]) -> set[Key]:
    """The reference bars the job must have closed once it has read every trade sent."""
    cutoff = int(load["last_ts"]) - CLOSE_MARGIN_MS
    return {key for key in reference_bars(load) if key[1] + CLOSE_AFTER_MS <= cutoff}


def bar_differences(ref: list[int], bar: dict[str, Any]) -> list[str]:
    """The fields of an emitted bar (decoded with exact decimals) that differ from the reference."""
    o, h, low, c, volume, notional, trades = ref
    diffs = [
        name
        for name, units in (("open", o), ("high", h), ("low", low), ("close", c))
        if Decimal(str(bar.get(name))) * PRICE_UNITS != units
    ]
    if int(bar.get("volume", -1)) != volume:
        diffs.append("volume")
    if bar.get("trades") is not None and int(bar["trades"]) != trades:
        diffs.append("trades")
    vwap = notional / volume / PRICE_UNITS
    got = bar.get("vwap")
    if got is None or abs(float(got) - vwap) > VWAP_REL_TOL * vwap:
        diffs.append("vwap")
    return diffs


def compare_bars(load: dict[str, Any], received: dict[Key, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every bar the job must have closed is there and equals the reference; every bar it wrote
    is a reference bar with the same values; repeats of one bar are counted (``wire_repeats``:
    same values, dropped by id downstream; ``conflicting``: different values)."""
    ref = reference_bars(load)
    required = must_close(load)
    missing = sorted(required - received.keys())
    unknown = sorted(received.keys() - ref.keys())
    mismatched: list[tuple[Key, list[str]]] = []
    repeats = conflicting = 0
    for key, copies in received.items():
        if key not in ref:
            continue
        if len(copies) > 1:
            distinct = {json.dumps(_bar_values(b), sort_keys=True) for b in copies}
            repeats += len(copies) - 1
            conflicting += len(distinct) - 1
        diffs = bar_differences(ref[key], copies[0])
        if diffs:
            mismatched.append((key, diffs))
    return {
        "reference": len(ref),
        "required": len(required),
        "received": len(received),
        "missing": len(missing),
        "mismatched": len(mismatched),
        "unknown": len(unknown),
        "wire_repeats": repeats,
        "conflicting": conflicting,
        "examples": {
            "missing": [list(k) for k in missing[:EXAMPLES]],
            "mismatched": [[*k, d] for k, d in mismatched[:EXAMPLES]],
            "unknown": [list(k) for k in unknown[:EXAMPLES]],
        },
        "ok": not missing and not mismatched and not unknown and not conflicting,
    }


def _bar_values(bar: dict[str, Any]) -> dict[str, str]:
    fields = ("open", "high", "low", "close", "volume", "vwap", "trades")
    return {f: str(bar.get(f)) for f in fields}


def reference_signals(
    load: dict[str, Any], fast: int, slow: int, closed: Iterable[Key]
) -> tuple[set[tuple[str, int, str]], dict[str, int]]:
    """SMA-cross signals on the reference bars among ``closed``, and per symbol the first bar
    time at which SMA(fast) equals SMA(slow) exactly (a tie: the job compares floats, so what
    follows a tie is not compared)."""
    closed = set(closed)
    bars = [
        RefBar(
            symbol,
            ts,
            *(Decimal(u) / PRICE_UNITS for u in agg[:4]),
            volume=agg[4],
            notional=agg[5] / PRICE_UNITS,
            trades=agg[6],
        )
        for (symbol, ts), agg in sorted(reference_bars(load).items())
        if (symbol, ts) in closed
    ]
    add_sma(bars, (fast, slow))
    ties: dict[str, int] = {}
    for bar in bars:
        f, s = bar.exact.get(f"sma_{fast}"), bar.exact.get(f"sma_{slow}")
        if f is not None and f == s and bar.symbol not in ties:
            ties[bar.symbol] = bar.ts
    return set(sma_cross_signals(bars, fast, slow)), ties


def compare_signals(
    expected: set[tuple[str, int, str]],
    ties: dict[str, int],
    received: list[dict[str, Any]],
    strategy: str,
) -> dict[str, Any]:
    """Signals of ``strategy`` against the reference (before each symbol's first tie)."""

    def comparable(symbol: str, bar_ts: int) -> bool:
        return bar_ts < ties.get(symbol, 2**63)

    got = Counter(
        (s["symbol"], int(s["bar_ts"]), s["side"]) for s in received if s["strategy"] == strategy
    )
    ids = Counter(s["id"] for s in received)
    want = {x for x in expected if comparable(x[0], x[1])}
    have = {x for x in got if comparable(x[0], x[1])}
    missing, extra = sorted(want - have), sorted(have - want)
    return {
        "reference": len(want),
        "received": len(received),
        "missing": len(missing),
        "extra": len(extra),
        "wire_repeats": sum(n - 1 for n in ids.values()),
        "not_compared_after_tie": sum(1 for x in got if not comparable(x[0], x[1])),
        "symbols_with_ties": len(ties),
        "examples": {"missing": missing[:EXAMPLES], "extra": extra[:EXAMPLES]},
        "ok": not missing and not extra,
    }


def compare_orders(
    signals: list[dict[str, Any]], orders: list[dict[str, Any]], fills: list[dict[str, Any]]
) -> dict[str, Any]:
    """One order per signal (by ``signal_id`` and ``client_order_id``), no fill twice, fills adding
    up to what the order events say was filled."""
    signal_ids = {s["id"] for s in signals}
    per_signal: dict[str, set[str]] = defaultdict(set)
    filled: dict[str, Decimal] = defaultdict(Decimal)
    qty: dict[str, Decimal] = {}
    statuses: Counter[str] = Counter()
    last_status: dict[str, str] = {}
    event_ids = Counter(o["event_id"] for o in orders)
    for o in orders:
        if o.get("signal_id"):
            per_signal[o["signal_id"]].add(o["client_order_id"])
        coid = o["client_order_id"]
        filled[coid] = max(filled[coid], Decimal(str(o.get("filled_qty", 0))))
        if o.get("qty") is not None:
            qty[coid] = Decimal(str(o["qty"]))
        last_status[coid] = o["status"]
    statuses.update(last_status.values())
    fill_copies: dict[str, set[str]] = defaultdict(set)
    fill_records = Counter(f["id"] for f in fills)
    fill_sum: dict[str, Decimal] = defaultdict(Decimal)
    for f in fills:
        content = json.dumps([f["client_order_id"], str(f["qty"]), str(f["price"])])
        if content not in fill_copies[f["id"]]:
            if not fill_copies[f["id"]]:
                fill_sum[f["client_order_id"]] += Decimal(str(f["qty"]))
            fill_copies[f["id"]].add(content)
    lost = sorted(signal_ids - per_signal.keys())
    unknown = sorted(per_signal.keys() - signal_ids)
    doubled = sorted(s for s, coids in per_signal.items() if len(coids) > 1)
    conflicting_fills = sorted(i for i, c in fill_copies.items() if len(c) > 1)
    fill_mismatch = sorted(
        coid for coid in set(filled) | set(fill_sum) if filled[coid] != fill_sum[coid]
    )
    overfilled = sorted(c for c, q in qty.items() if fill_sum[c] > q)
    return {
        "signals": len(signal_ids),
        "orders": len(last_status),
        "order_status": dict(statuses),
        "fills": len(fill_copies),
        "signals_without_order": len(lost),
        "orders_without_signal": len(unknown),
        "signals_with_two_orders": len(doubled),
        "order_event_wire_repeats": sum(n - 1 for n in event_ids.values()),
        "fill_wire_repeats": sum(n - 1 for n in fill_records.values()),
        "conflicting_fills": len(conflicting_fills),
        "fills_not_matching_order": len(fill_mismatch),
        "overfilled": len(overfilled),
        "examples": {
            "signals_without_order": lost[:EXAMPLES],
            "signals_with_two_orders": doubled[:EXAMPLES],
            "fills_not_matching_order": fill_mismatch[:EXAMPLES],
        },
        "ok": not (lost or unknown or doubled or conflicting_fills or fill_mismatch or overfilled),
    }


def compare_dead_letters(
    load: dict[str, Any], letters: list[dict[str, Any]], source_topic: str
) -> dict[str, Any]:
    """Exactly one dead letter, with a reason, per malformed record sent, counted by source record:
    dead letters with the same source partition and offset are one (the job's dead-letter sink is
    at-least-once: after a broker restart its producer may write one twice; those repeats are
    reported as ``repeated_offsets``, not counted). Dead letters without an offset count one each.
    Matched by the SHA-1 of the payload where the dead letter carries the original bytes as text
    (valid UTF-8)."""
    sent = Counter(sha for _name, sha in load["malformed"])
    ours = [d for d in letters if d.get("source_topic") == source_topic]
    unique: list[dict[str, Any]] = []
    seen: set[tuple[Any, Any]] = set()
    for d in ours:
        if d.get("offset") is not None:
            position = (d.get("partition"), d.get("offset"))
            if position in seen:
                continue
            seen.add(position)
        unique.append(d)
    got = Counter(
        hashlib.sha1(str(d.get("payload", "")).encode()).hexdigest()  # noqa: S324
        for d in unique
    )
    matched = sum((sent & got).values())
    no_reason = sum(1 for d in ours if not str(d.get("reason", "")).strip())
    reasons = Counter(str(d.get("reason", ""))[:40] for d in unique)
    expected = len(load["malformed"])
    return {
        "expected": expected,
        "received": len(ours),
        "distinct_source_records": len(unique),
        "other_sources": len(letters) - len(ours),
        "without_reason": no_reason,
        "matched_by_payload": matched,
        "repeated_payloads": sum(max(0, got[sha] - n) for sha, n in sent.items()),
        "repeated_offsets": len(ours) - len(unique),
        "with_offset": len(ours) - sum(1 for d in ours if d.get("offset") is None),
        "unmatched_variants": _unmatched(load, got),
        "top_reasons": dict(reasons.most_common(8)),
        "ok": len(unique) == expected and no_reason == 0 and len(letters) == len(ours),
    }


def _unmatched(load: dict[str, Any], got: Counter[str]) -> dict[str, int]:
    """Variant names whose records have no dead letter with the same payload bytes (expected for
    bytes that are not UTF-8: the dead letter holds them with replacement characters)."""
    out: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for name, sha in load["malformed"]:
        seen[sha] += 1
        if seen[sha] > got[sha]:
            out[name] += 1
    return dict(out)


_EVIDENCE: dict[str, tuple[str, tuple[str, ...]]] = {
    "bars_equal_reference": (
        "bars",
        ("required", "missing", "mismatched", "unknown", "conflicting"),
    ),
    "signals_equal_reference": ("signals", ("reference", "received", "missing", "extra")),
    "dead_letters_exact": (
        "dead_letters",
        ("expected", "distinct_source_records", "without_reason", "other_sources"),
    ),
    "orders_one_per_signal_fills_once": (
        "orders",
        (
            "signals_without_order",
            "orders_without_signal",
            "signals_with_two_orders",
            "conflicting_fills",
            "fills_not_matching_order",
        ),
    ),
    "nothing_unsent": ("load", ("send_failures",)),
    "job_running": ("job", ("state",)),
    "job_never_failed_over": ("job", ("restarts",)),
    "rss_growth_under_10pct": ("job", ("rss_mb_at_mark", "rss_mb_end_of_load", "rss_growth_pct")),
    "caught_up_within_10s": ("", ("catch_up_bars_s", "catch_up_dead_letters_s")),
    "executor_same_pid": ("services", ("executor",)),
    "executor_restarted_and_alive": ("services", ("executor",)),
    "notifier_same_pid": ("services", ("notify",)),
}


def failed_criteria(result: dict[str, Any]) -> list[str]:
    """One line per criterion that failed, with the figures it was judged on (for the log and
    the JSON line's ``failed``); empty when every criterion was met. A soak that ended on an
    error has no criteria: its one line is the error."""
    if "criteria" not in result:
        return [f"error: {result.get('error', 'no verdict')}"]
    lines = []
    for name, ok in result.get("criteria", {}).items():
        if ok:
            continue
        section, keys = _EVIDENCE.get(name, ("", ()))
        if name == "no_repeats_by_id":
            orders = result.get("orders", {})
            figures = {
                "bar_repeats": result.get("bars", {}).get("wire_repeats"),
                "signal_repeats": result.get("signals", {}).get("wire_repeats"),
                "order_event_repeats": orders.get("order_event_wire_repeats"),
                "fill_repeats": orders.get("fill_wire_repeats"),
            }
        else:
            source = result.get(section, {}) if section else result
            figures = {key: source.get(key) for key in keys}
        detail = ", ".join(f"{key} {value}" for key, value in figures.items())
        lines.append(f"{name}: {detail}" if detail else name)
    return lines


# -- processes ------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc; empty if it is gone)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                text = (task / "children").read_text()
                out.extend(int(c) for c in text.split())
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` and its descendants (0 if it is gone)."""
    total = 0
    for p in tree(pid):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def listening_ports(pid: int) -> list[int]:
    """Loopback TCP ports that ``pid`` listens on (its sockets matched against /proc/net/tcp*)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = str(fd.readlink())
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports: list[int] = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                    ports.append(int(parts[1].rsplit(":", 1)[1], 16))
    return sorted(set(ports))


REST_ERRORS = (OSError, ValueError, KeyError, http.client.HTTPException)
"""What asking the REST endpoint may raise (unreachable, not JSON, not the expected JSON)."""


def _is_java(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "java"
    except OSError:
        return False


def http_json(url: str, timeout_s: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (loopback)
        return json.loads(response.read())


class FlinkRest:
    """The REST endpoint of the MiniCluster inside a ``flinktrade job run`` process tree, found
    by asking each port its JVM listens on for ``/jobs/overview``."""

    def __init__(self, job_pid: int) -> None:
        self.job_pid = job_pid
        self.base: str | None = None

    def find(self) -> str | None:
        if self.base is not None:
            return self.base
        for pid in tree(self.job_pid):
            if not _is_java(pid):  # the Python side's py4j ports do not speak HTTP
                continue
            for port in listening_ports(pid):
                url = f"http://127.0.0.1:{port}"
                try:
                    body = http_json(url + "/jobs/overview", timeout_s=1.0)
                except REST_ERRORS:
                    continue
                if isinstance(body, dict) and "jobs" in body:
                    self.base = url
                    return url
        return None

    def jobs(self) -> list[dict[str, Any]]:
        base = self.find()
        if base is None:
            return []
        body = http_json(base + "/jobs/overview")
        return list(body.get("jobs", []))

    def restarts(self, job_id: str) -> int:
        """Fail-overs of a job: the ``numRestarts`` metric, or the exception history's length."""
        base = self.find()
        if base is None:
            return -1
        count = 0
        with contextlib.suppress(*REST_ERRORS):
            metric = http_json(f"{base}/jobs/{job_id}/metrics?get=numRestarts")
            if metric:
                count = int(float(metric[0]["value"]))
        with contextlib.suppress(*REST_ERRORS):
            history = http_json(f"{base}/jobs/{job_id}/exceptions")
            count = max(count, len(history["exceptionHistory"]["entries"]))
        return count
