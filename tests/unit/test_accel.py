"""The mypyc-compiled indicators: used only while current, same values and pickles as the source."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flinktrade import accel

SOURCE = Path(accel.__file__).with_name("indicators.py")


def _pure_indicators() -> object:
    """The Python source of ``flinktrade.indicators``, imported under another name."""
    spec = importlib.util.spec_from_file_location("pure_indicators_under_test", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fields_name_every_slot() -> None:
    """``_fields`` (what is pickled) must list every slot, or a restored state would lack one."""
    pure = _pure_indicators()
    classes = [
        v
        for v in vars(pure).values()
        if isinstance(v, type) and "_fields" in dir(v) and not issubclass(v, tuple)
    ]
    assert len(classes) >= 10
    for cls in classes:
        slots = {s for klass in cls.__mro__ for s in getattr(klass, "__slots__", ())}
        assert set(cls._fields) == slots, cls.__name__


def _fake_build(tmp_path: Path, sources: dict[str, str]) -> Path:
    build = tmp_path / "_mypyc"
    (build / "flinktrade").mkdir(parents=True)
    so = "flinktrade/indicators" + str(__import__("sysconfig").get_config_var("EXT_SUFFIX"))
    (build / so).write_bytes(b"not really an extension")
    doc = {**accel._runtime(), "sources": sources, "files": {"flinktrade.indicators": so}}
    (build / accel.MANIFEST).write_text(json.dumps(doc))
    return build


def test_a_stale_build_is_never_used_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(accel.PURE_ENV, raising=False)
    sources = accel._hashes()
    sources["flinktrade.indicators"] = "0" * 64  # as if indicators.py changed after the build
    finder = accel.CompiledFinder(_fake_build(tmp_path, sources))
    with caplog.at_level(logging.WARNING, logger="flinktrade.accel"):
        assert finder.find_spec("flinktrade.indicators") is None
        assert finder.find_spec("flinktrade.indicators") is None
    assert "stale: flinktrade.indicators changed" in finder.reason
    assert len([r for r in caplog.records if "not used" in r.getMessage()]) == 1


def test_a_current_build_is_found_and_the_switch_turns_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(accel.PURE_ENV, raising=False)
    build = _fake_build(tmp_path, accel._hashes())
    spec = accel.CompiledFinder(build).find_spec("flinktrade.indicators")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).parent == build / "flinktrade"
    assert accel.CompiledFinder(build).find_spec("flinktrade.events") is None  # not compiled
    monkeypatch.setenv(accel.PURE_ENV, "1")
    switched_off = accel.CompiledFinder(build)
    assert switched_off.find_spec("flinktrade.indicators") is None
    assert accel.PURE_ENV in switched_off.reason


def test_no_build_means_the_source_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(accel.PURE_ENV, raising=False)
    finder = accel.CompiledFinder(tmp_path / "nothing")
    with caplog.at_level(logging.WARNING, logger="flinktrade.accel"):
        assert finder.find_spec("flinktrade.indicators") is None
    assert finder.reason == "not built" and not caplog.records


# A process advances 3 symbols x 600 bars, pickling the states half way: the second half runs
# on the states unpickled, in this process or in the other form's.
_SCRIPT = r"""
import json, math, pickle, random, sys
from flinktrade import accel
from flinktrade.indicators import DEFAULT_INDICATORS, IndicatorEngine
engine = IndicatorEngine(list(DEFAULT_INDICATORS) + ["vwap_1", "atr_1", "bb_upper_7_2_5"])
rng = random.Random(7)
bars = []
price = 100.0
for i in range(600):
    price *= math.exp(rng.gauss(0, 0.01))
    flat = 200 <= i < 230  # a flat stretch: sds exactly 0
    close = 100.0 if flat else round(price, 2)
    high, low = close + (0 if flat else rng.random()), close - (0 if flat else rng.random() / 2)
    vwap = None if rng.random() < 0.2 else round((high + low) / 2, 4)
    bars.append((high, low, close, float(100 if flat else rng.randint(0, 5000)), vwap))
mode, path = sys.argv[1], sys.argv[2]
values = []
if mode == "first":
    states = [engine.start() for _ in range(3)]
    for bar in bars[:300]:
        for s in states:
            values.append(engine.advance(s, *bar))
    open(path + ".pkl", "wb").write(pickle.dumps(states))
else:
    states = pickle.loads(open(path + ".pkl", "rb").read())
    for bar in bars[300:]:
        for s in states:
            values.append(engine.advance(s, *bar))
out = {"status": accel.status(), "values": [[v[k] for k in sorted(v)] for v in values]}
open(path + "." + mode + ".json", "w").write(json.dumps(out))
"""


def _run(tmp_path: Path, mode: str, pure: bool, name: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != accel.PURE_ENV}
    if pure:
        env[accel.PURE_ENV] = "1"
    subprocess.run([sys.executable, "-c", _SCRIPT, mode, str(tmp_path / name)], env=env, check=True)
    result: dict[str, object] = json.loads((tmp_path / f"{name}.{mode}.json").read_text())
    return result


@pytest.mark.skipif(os.environ.get(accel.PURE_ENV, "") not in ("", "0"), reason="pure requested")
def test_compiled_and_source_give_identical_values_and_share_pickled_state(
    tmp_path: Path,
) -> None:
    """Bit-identical floats (not 1e-9): both run the same operations in the same order."""
    pure_first = _run(tmp_path, "first", True, "a")
    compiled_first = _run(tmp_path, "first", False, "b")
    assert pure_first["status"]["loaded"] == []  # type: ignore[index]
    assert compiled_first["status"]["loaded"] == ["flinktrade.indicators"]  # type: ignore[index]
    assert compiled_first["values"] == pure_first["values"]
    # the state the source pickled, continued compiled, and the other way round
    compiled_second = _run(tmp_path, "second", False, "a")
    pure_second = _run(tmp_path, "second", True, "b")
    assert compiled_second["status"]["loaded"] == ["flinktrade.indicators"]  # type: ignore[index]
    assert compiled_second["values"] == pure_second["values"]
    assert any(v is not None for row in pure_second["values"] for v in row)  # type: ignore[attr-defined]


# The whole model (``pipeline.analytics``, compiled in the build): 3 symbols x 400 bars with news,
# gaps, jumps and volume spikes, the four built-ins and the bar alerts, its snapshots pickled half
# way; the second half runs on them unpickled, in this process or in the other form's.
_MODEL_SCRIPT = r"""
import json, math, pickle, random, sys
from decimal import Decimal
from flinktrade import accel, events
from flinktrade.config import AnalyticsSettings
from flinktrade.pipeline.analytics import ClosedBar, ScoredNews, StrategySpec, SymbolModel
names = ("sma_cross", "rsi_reversion", "bollinger_breakout", "sentiment_momentum")
model = SymbolModel([StrategySpec(n, {}) for n in names], AnalyticsSettings())
rng = random.Random(11)
items = []
for s in ("AAA", "BBB", "CCC"):
    price = 50 + 100 * rng.random()
    for i in range(400):
        ts = 1_704_205_800_000 + i * 60_000
        if rng.random() < 0.05:
            items.append(ScoredNews(f"{s}{i}", s, ts + 1, rng.uniform(-1, 1), "story"))
        jump = 12 if rng.random() < 0.02 else 1
        open_ = price * math.exp(rng.gauss(0, 0.001 * jump))
        price *= math.exp(rng.gauss(0, 0.003 * jump))
        o, c = Decimal(f"{open_:.2f}"), Decimal(f"{price:.2f}")
        h, low = max(o, c) + Decimal("0.03"), min(o, c) - Decimal("0.02")
        volume = rng.randint(100, 5000) * (20 if rng.random() < 0.03 else 1)
        vwap = None if rng.random() < 0.1 else float((h + low) / 2)
        items.append(ClosedBar(s, ts, o, h, low, c, volume, vwap, rng.randint(1, 40)))
items.sort(key=lambda x: (x.ts, x.symbol))
mode, path = sys.argv[1], sys.argv[2]
half = len(items) // 2
if mode == "first":
    states, part = {}, items[:half]
else:
    snaps = pickle.loads(open(path + ".pkl", "rb").read())
    states, part = {k: model.restore(v) for k, v in snaps.items()}, items[half:]
out = []
for item in part:
    state = states.setdefault(item.symbol, model.initial_state())
    made = model.on_bar(state, item) if isinstance(item, ClosedBar) else model.on_news(state, item)
    for event in made:
        doc = json.loads(events.encode(event))
        doc.pop("ingest_ts")
        out.append([type(event).__name__, doc])
hostile = []  # bars the job's SQL could never write, each applied as the operator does
from flinktrade.pipeline.due import DueItems
due = DueItems(model, {"trades": "market.trades"})
good = ("100.500000", "101.000000", "100.000000", "100.750000")
prices = [("not-a-price",) + good[1:], ("NaN",) + good[1:], ("1E+400",) + good[1:],
          ("0.0000001",) + good[1:], good]
for symbol, (o, h, low, c) in [("ZZZ", p) for p in prices] + [("X" * 17, good), ("", good)]:
    items = [("bar", (1_704_205_800_000, o, h, low, c, 500, None, 3, 60_000)),
             ("bar", (1_704_205_860_000, *good, 700, 100.5, 4, 60_000))]
    _state, made = due.apply(model.initial_state(), symbol, items, lambda: None)
    for event in made:
        doc = json.loads(events.encode(event))
        doc.pop("ingest_ts", None)
        hostile.append([type(event).__name__, doc])
out.append(["hostile", hostile])
if mode == "first":
    open(path + ".pkl", "wb").write(pickle.dumps({k: model.snapshot(v) for k, v in states.items()}))
snaps = {k: model.snapshot(v) for k, v in states.items()}
doc = {"status": accel.status(), "out": out, "snaps": pickle.dumps(snaps).hex()}
open(path + "." + mode + ".json", "w").write(json.dumps(doc))
"""


def _run_model(tmp_path: Path, mode: str, pure: bool, name: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != accel.PURE_ENV}
    if pure:
        env[accel.PURE_ENV] = "1"
    run = [sys.executable, "-c", _MODEL_SCRIPT, mode, str(tmp_path / name)]
    subprocess.run(run, env=env, check=True)
    result: dict[str, Any] = json.loads((tmp_path / f"{name}.{mode}.json").read_text())
    return result


@pytest.mark.skipif(os.environ.get(accel.PURE_ENV, "") not in ("", "0"), reason="pure requested")
def test_the_compiled_model_gives_the_events_and_snapshots_of_the_source(tmp_path: Path) -> None:
    """Every output event (but its wall-clock ``ingest_ts``) and every snapshot's pickle, byte
    for byte, and a state pickled by one form continued by the other; hostile bars (a price that
    is no number, NaN, 1E+400, 0.0000001, a symbol too long or empty) are the same dead letters
    in both forms, and the bars after them go on."""
    pure_first = _run_model(tmp_path, "first", True, "a")
    compiled_first = _run_model(tmp_path, "first", False, "b")
    assert pure_first["status"]["loaded"] == []
    assert compiled_first["status"]["loaded"] == list(accel.COMPILED)
    assert compiled_first["out"] == pure_first["out"]
    assert compiled_first["snaps"] == pure_first["snaps"]
    *made, (tag, hostile) = pure_first["out"]
    assert tag == "hostile"
    kinds = {kind for kind, _doc in made}
    assert kinds == {"AnalyticsBar", "Alert", "Signal"}  # every path of the model ran
    letters = [doc["reason"] for kind, doc in hostile if kind == "DeadLetter"]
    assert len(letters) == 4 + 2 * 2, letters  # each hostile price; both bars of a bad symbol
    assert sum(kind == "AnalyticsBar" for kind, _doc in hostile) == 4 + 2  # the others go on
    alerts = {doc["kind"] for kind, doc in made if kind == "Alert"}
    assert {"price_gap", "price_jump", "volume_spike", "news_shock"} <= alerts
    compiled_second = _run_model(tmp_path, "second", False, "a")  # the source's snapshots
    pure_second = _run_model(tmp_path, "second", True, "b")  # the compiled build's
    assert compiled_second["out"] == pure_second["out"] and compiled_second["out"]
    assert compiled_second["snaps"] == pure_second["snaps"]
