"""The files a backtest writes: CSVs, ``equity.png`` and a self-contained ``report.html``.

CSV cells: times as ISO 8601 UTC (``2004-08-19T00:00:00Z``), prices as the exact decimals of the
input, computed money as floats rounded to 8 decimals, indicators in ``features.csv`` at full
precision (the shortest text that reads back as the same float), an empty cell where a value is
undefined.
Everything is written in a fixed order, so the same backtest gives byte-identical files.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.figure import Figure

from flinktrade import events
from flinktrade.backtest.metrics import (
    Attribution,
    DrawdownPeriod,
    attribution,
    drawdown,
    drawdown_periods,
    monthly_returns,
)
from flinktrade.backtest.portfolio import Order, SimulationResult, Trade, buy_and_hold

FEATURE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("sma_20", "sma_20"),
    ("sma_50", "sma_50"),
    ("ema_12", "ema_12"),
    ("ema_26", "ema_26"),
    ("rsi_14", "rsi_14"),
    ("macd", "macd_12_26_9"),
    ("macd_signal", "macd_signal_12_26_9"),
    ("macd_hist", "macd_hist_12_26_9"),
    ("bb_upper_20_2", "bb_upper_20_2"),
    ("bb_middle_20_2", "bb_middle_20_2"),
    ("bb_lower_20_2", "bb_lower_20_2"),
    ("atr_14", "atr_14"),
)
"""(column in features.csv, indicator name in ``AnalyticsBar.indicators``)."""

TRADE_COLUMNS = (
    "symbol", "side", "qty", "entry_ts", "entry_price", "exit_ts", "exit_price",
    "pnl", "return_pct", "commission", "exit_reason",
)  # fmt: skip
SIGNAL_COLUMNS = (
    "time", "bar_time", "symbol", "strategy", "side", "price", "strength", "reason", "id",
)  # fmt: skip
ORDER_COLUMNS = (
    "id", "signal_id", "strategy", "symbol", "side", "intent", "signal_time", "status", "qty",
    "fill_time", "fill_price", "commission", "reason", "type", "time_in_force", "order_class",
    "leg", "parent_id", "limit_price", "stop_price", "trail",
)  # fmt: skip
ATTRIBUTION_COLUMNS = (
    "by", "name", "pnl", "pnl_closed", "pnl_open", "trades", "open_trades", "commissions",
)  # fmt: skip
MAX_PRICE_CHARTS = 4
MAX_HTML_TRADES = 500


def iso(ms: int | None) -> str:
    if ms is None:
        return ""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


def cell(value: Any, *, exact: bool = False) -> str:
    """One CSV cell: '' for None/NaN, floats rounded to 8 decimals (``exact``: the float's
    shortest round-tripping text), the rest as text."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ""
        return repr(value) if exact else repr(round(value, 8))
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def _write(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], *, exact: bool = False
) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([cell(v, exact=exact) for v in row])


_BAR_KEYS = ("open", "high", "low", "close", "volume")


def write_features(path: Path, bars: Mapping[str, Sequence[events.Bar]]) -> None:
    """One row per bar: ``ts, open, high, low, close, volume`` and the indicators at full
    precision; with several symbols a ``symbol`` column follows ``ts``. The cells are those of
    ``cell(value, exact=True)``, made in one pass per row (a run writes one row per bar, the
    indicators' floats most of its cells; the bar times repeat across symbols)."""
    many = len(bars) > 1
    header = ["ts", *(["symbol"] if many else []), *_BAR_KEYS]
    header += [column for column, _name in FEATURE_COLUMNS]
    names = [name for _column, name in FEATURE_COLUMNS]
    times: dict[int, str] = {}
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for symbol, series in bars.items():
            lead = [symbol] if many else []
            for bar in series:
                fields = bar.__dict__
                ts = fields["ts"]
                when = times.get(ts)
                if when is None:
                    when = times[ts] = iso(ts)
                indicators = fields.get("indicators") or {}
                writer.writerow([
                    when, *lead, *[cell(fields[key], exact=True) for key in _BAR_KEYS],
                    *[cell(indicators.get(name), exact=True) for name in names],
                ])  # fmt: skip


def trade_row(t: Trade) -> list[Any]:
    return [
        t.symbol,
        t.direction,
        t.size,
        iso(t.entry_ts),
        t.entry_price,
        iso(t.exit_ts),
        t.exit_price,
        t.pnl,
        t.return_pct,
        t.commission,
        t.exit_reason,
    ]


def signal_row(s: events.Signal) -> list[Any]:
    return [
        iso(s.ts),
        iso(s.bar_ts),
        s.symbol,
        s.strategy,
        s.side.value,
        s.price,
        s.strength,
        s.reason,
        s.id,
    ]


def order_row(o: Order) -> list[Any]:
    return [
        o.id,
        o.signal_id,
        o.strategy,
        o.symbol,
        o.side.value,
        o.intent,
        iso(o.signal_ts),
        o.status,
        o.qty,
        iso(o.fill_ts),
        o.fill_price,
        o.commission,
        o.reason,
        o.type,
        o.time_in_force,
        o.order_class,
        o.leg,
        o.parent_id,
        o.limit_price,
        o.stop_price,
        o.trail,
    ]


def attribution_row(a: Attribution) -> list[Any]:
    return [a.by, a.name, a.pnl, a.pnl_closed, a.pnl_open, a.trades, a.open_trades, a.commissions]


def write_attribution(path: Path, rows: Sequence[Attribution]) -> None:
    _write(path, ATTRIBUTION_COLUMNS, (attribution_row(a) for a in rows))


def write_trades(path: Path, trades: Sequence[Trade]) -> None:
    _write(path, TRADE_COLUMNS, (trade_row(t) for t in trades))


def write_signals(path: Path, signals: Sequence[events.Signal]) -> None:
    _write(path, SIGNAL_COLUMNS, (signal_row(s) for s in signals))


def write_orders(path: Path, orders: Sequence[Order]) -> None:
    _write(path, ORDER_COLUMNS, (order_row(o) for o in orders))


# -- charts --------------------------------------------------------------------------------------


def _times(ms: Sequence[int]) -> np.ndarray[Any, Any]:
    return np.array(ms, dtype="datetime64[ms]")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def equity_chart(result: SimulationResult, title: str) -> bytes:
    """Equity (with buy & hold of the same symbols and cash as a benchmark) above its drawdown."""
    ts = [p.ts for p in result.equity]
    equity = [p.equity for p in result.equity]
    figure = Figure(figsize=(10, 5.5))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    times = _times(ts)
    top.plot(times, equity, color="#1f77b4", linewidth=1.2, label="strategy")
    hold = buy_and_hold(result, equity[0]) if equity else []
    if hold:
        label = "buy & hold" if len(result.symbols) == 1 else "buy & hold (equal weights)"
        top.plot(times, hold, color="#999999", linewidth=0.9, label=label)
    top.set_title(title)
    top.set_ylabel("equity")
    top.grid(alpha=0.3)
    top.legend(loc="upper left")
    dd = [d * 100 for d in drawdown(equity)]
    bottom.fill_between(times, dd, 0, color="#d62728", alpha=0.4, linewidth=0)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    figure.autofmt_xdate()
    return _png(figure)


class _Close(NamedTuple):
    """A bar as the simulation kept it: its start and close (a price chart without indicators)."""

    ts: int
    close: float


def _closes(result: SimulationResult, symbol: str) -> list[_Close]:
    times, closes = result.times.get(symbol, []), result.closes.get(symbol, [])
    return [_Close(ts, close) for ts, close in zip(times, closes, strict=True)]


def price_chart(
    symbol: str, bars: Sequence[events.Bar] | Sequence[_Close], trades: Sequence[Trade]
) -> bytes:
    """Close with SMA 20/50 and the trades: entries as triangles, exits as crosses."""
    figure = Figure(figsize=(10, 4))
    axes = figure.subplots()
    times = _times([b.ts for b in bars])
    axes.plot(times, [float(b.close) for b in bars], color="#333333", linewidth=0.9, label="close")
    for name, color in (("sma_20", "#ff7f0e"), ("sma_50", "#2ca02c")):
        values = [getattr(b, "indicators", {}).get(name) for b in bars]
        series = [np.nan if v is None else v for v in values]
        if any(v is not None for v in values):
            axes.plot(times, series, color=color, linewidth=0.8, label=name)
    for direction, marker, color in (("long", "^", "#2ca02c"), ("short", "v", "#d62728")):
        chosen = [t for t in trades if t.symbol == symbol and t.direction == direction]
        if chosen:
            axes.scatter(
                _times([t.entry_ts for t in chosen]),
                [t.entry_price for t in chosen],
                marker=marker,
                color=color,
                s=40,
                zorder=3,
                label=f"{direction} entry",
            )
    exits = [t for t in trades if t.symbol == symbol and t.exit_ts is not None]
    if exits:
        axes.scatter(
            _times([t.exit_ts for t in exits if t.exit_ts is not None]),
            [t.exit_price or 0.0 for t in exits],
            marker="x",
            color="#444444",
            s=30,
            zorder=3,
            label="exit",
        )
    axes.set_title(f"{symbol}: price and trades")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    return _png(figure)


# -- html ----------------------------------------------------------------------------------------


def format_metric(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key in ("start", "end"):
        return iso(int(value))
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


_STYLE = """body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; text-align: left; }
img { max-width: 100%; display: block; margin-bottom: 1em; }
"""


def _page_head(title: str, style: str = "") -> str:
    """A report page up to its heading: ``title``, the reports' shared style plus ``style``."""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>\n'
        f"<style>\n{_STYLE}{style}</style></head><body>\n<h1>{title}</h1>\n"
    )


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_html(
    path: Path,
    metrics: Mapping[str, Any],
    settings: Mapping[str, Any],
    equity_png: bytes,
    price_pngs: Sequence[tuple[str, bytes]],
    trades: Sequence[Trade],
    monthly: Mapping[tuple[int, int], float] | None = None,
    periods: Sequence[DrawdownPeriod] = (),
    pnl: Sequence[Attribution] = (),
) -> None:
    """A single HTML file with everything embedded (no external assets)."""
    metric_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(format_metric(k, v))}</td></tr>"
        for k, v in metrics.items()
    )
    setting_rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in settings.items()
    )
    shown = trades[:MAX_HTML_TRADES]
    trade_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in trade_row(t)) + "</tr>"
        for t in shown
    )
    more = (
        f"<p>First {MAX_HTML_TRADES} of {len(trades)} trades; all are in trades.csv.</p>"
        if len(trades) > MAX_HTML_TRADES
        else ""
    )
    prices = "".join(_img(png, f"{symbol} price") for symbol, png in price_pngs)
    head = "".join(f"<th>{c}</th>" for c in TRADE_COLUMNS)
    page = _page_head(
        "flinktrade backtest", ".cols { display: flex; gap: 2em; flex-wrap: wrap; }\n"
    )
    page += f"""<div class="cols">
<div><h2>Metrics</h2><table>{metric_rows}</table></div>
<div><h2>Run</h2><table>{setting_rows}</table></div>
</div>
<h2>Equity and drawdown</h2>{_img(equity_png, "equity curve")}
{_monthly_table(monthly or {})}{_periods_table(periods)}{_attribution_table(pnl)}
<h2>Price and trades</h2>{prices}
<h2>Trades</h2>{more}<table><tr>{head}</tr>{trade_rows}</table>
</body></html>
"""
    path.write_text(page, encoding="utf-8")


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _monthly_table(monthly: Mapping[tuple[int, int], float]) -> str:
    """Years down, months across, and the year's compounded return, in percent."""
    if not monthly:
        return ""
    years = sorted({year for year, _month in monthly})
    rows = []
    for year in years:
        cells, growth = [], 1.0
        for month in range(1, 13):
            value = monthly.get((year, month))
            cells.append("" if value is None else f"{value:+.2f}")
            growth *= 1 + (value or 0.0) / 100
        cells.append(f"{(growth - 1) * 100:+.2f}")
        rows.append(f"<tr><th>{year}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{m}</th>" for m in (*MONTHS, "year"))
    return f"<h2>Monthly returns (%)</h2><table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _attribution_table(rows: Sequence[Attribution]) -> str:
    """P&L by symbol, then by strategy (the first ``MAX_HTML_TRADES`` rows)."""
    if not rows:
        return ""
    head = "".join(f"<th>{c}</th>" for c in ATTRIBUTION_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_money(v))}</td>" for v in attribution_row(a)) + "</tr>"
        for a in rows[:MAX_HTML_TRADES]
    )
    more = (
        f"<p>First {MAX_HTML_TRADES} of {len(rows)} rows; all are in attribution.csv.</p>"
        if len(rows) > MAX_HTML_TRADES
        else ""
    )
    return f"<h2>P&amp;L attribution</h2>{more}<table><tr>{head}</tr>{body}</table>"


def _money(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def _periods_table(periods: Sequence[DrawdownPeriod]) -> str:
    if not periods:
        return ""
    rows = "".join(
        f"<tr><td>{p.depth_pct:.2f}</td><td>{iso(p.start)}</td><td>{iso(p.trough)}</td>"
        f"<td>{iso(p.end) if p.end is not None else 'not recovered'}</td></tr>"
        for p in periods
    )
    head = "<tr><th>depth %</th><th>peak</th><th>trough</th><th>recovered</th></tr>"
    return f"<h2>Deepest drawdowns</h2><table>{head}{rows}</table>"


def write_all(
    out: Path,
    result: SimulationResult,
    bars: Mapping[str, Sequence[events.Bar]],
    signals: Sequence[events.Signal],
    metrics: Mapping[str, Any],
    settings: Mapping[str, Any],
    *,
    features: bool = True,
) -> dict[str, Path]:
    """Write every report file into ``out`` (created if needed); returns them by name. Without
    ``features`` there is no ``features.csv`` (an old one in ``out`` is removed) and the price
    charts draw the closes the simulation kept (``result``), without the SMA lines."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        name: out / name
        for name in (
            "report.html",
            "equity.png",
            "trades.csv",
            "signals.csv",
            "orders.csv",
            "features.csv",
            "attribution.csv",
        )
    }
    write_trades(files["trades.csv"], result.trades)
    write_signals(files["signals.csv"], signals)
    write_orders(files["orders.csv"], result.orders)
    if features:
        write_features(files["features.csv"], bars)
    else:
        files.pop("features.csv").unlink(missing_ok=True)
    pnl = attribution(result)
    write_attribution(files["attribution.csv"], pnl)
    title = f"{settings.get('strategy', '')} on {', '.join(result.symbols[:5])}"
    equity_png = equity_chart(result, title)
    files["equity.png"].write_bytes(equity_png)
    prices = [
        (symbol, price_chart(symbol, bars.get(symbol) or _closes(result, symbol), result.trades))
        for symbol in result.symbols[:MAX_PRICE_CHARTS]
    ]
    points = [(p.ts, p.equity) for p in result.equity]
    cash = float(metrics.get("equity_start") or (points[0][1] if points else 0.0))
    write_html(
        files["report.html"],
        metrics,
        settings,
        equity_png,
        prices,
        result.trades,
        monthly_returns(points, cash),
        drawdown_periods(points),
        pnl,
    )
    return files


# -- optimize ------------------------------------------------------------------------------------

RESULT_METRICS = (
    "return_pct", "sharpe", "sortino", "calmar", "profit_factor", "max_drawdown_pct", "trades",
    "equity_final",
)  # fmt: skip
MAX_HTML_RUNS = 50


def heatmap_chart(
    runs: Sequence[Any], metric: str, x: str, y: str, values: Mapping[str, Sequence[Any]]
) -> bytes:
    """``metric`` over parameters ``x`` and ``y`` (the best over any other parameter); blank
    where no set was evaluated or the metric is undefined."""
    from flinktrade.backtest.optimize import metric_of

    xs, ys = list(values[x]), list(values[y])
    grid = np.full((len(ys), len(xs)), np.nan)
    for run in runs:
        value = metric_of(run, metric)
        if value is None:
            continue
        i, j = ys.index(run.params[y]), xs.index(run.params[x])
        if np.isnan(grid[i, j]) or value > grid[i, j]:
            grid[i, j] = value
    figure = Figure(figsize=(min(12, 1.5 + 0.7 * len(xs)), min(10, 1.2 + 0.5 * len(ys))))
    axes = figure.subplots()
    image = axes.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    axes.set_xticks(range(len(xs)), [str(v) for v in xs])
    axes.set_yticks(range(len(ys)), [str(v) for v in ys])
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.set_title(f"{metric} by {x} and {y}")
    if len(xs) * len(ys) <= 400:
        finite = grid[~np.isnan(grid)]
        middle = float(np.median(finite)) if finite.size else 0.0
        for i in range(len(ys)):
            for j in range(len(xs)):
                if not np.isnan(grid[i, j]):
                    color = "black" if grid[i, j] > middle else "white"
                    text = f"{grid[i, j]:.3g}"
                    axes.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    figure.colorbar(image, ax=axes, label=metric)
    return _png(figure)


def walk_forward_chart(points: Sequence[Any], cash: float, title: str) -> bytes:
    """The chained out-of-sample equity of a walk-forward, over its drawdown."""
    figure = Figure(figsize=(10, 4.5))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    times = _times([p.ts for p in points])
    equity = [p.equity for p in points]
    top.plot(times, equity, color="#1f77b4", linewidth=1.1, label="out-of-sample equity")
    top.axhline(cash, color="#999999", linewidth=0.8)
    top.set_title(title)
    top.grid(alpha=0.3)
    top.legend(loc="upper left")
    bottom.fill_between(times, [d * 100 for d in drawdown(equity)], 0, color="#d62728", alpha=0.4)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    figure.autofmt_xdate()
    return _png(figure)


def write_results(path: Path, runs: Sequence[Any], names: Sequence[str]) -> None:
    """``results.csv``: one row per parameter set, best first (``runs`` already ranked)."""
    header = ["rank", *names, *RESULT_METRICS, "error"]
    rows = (
        [
            rank,
            *(run.params[n] for n in names),
            *((run.metrics or {}).get(k) for k in RESULT_METRICS),
            run.error,
        ]
        for rank, run in enumerate(runs, start=1)
    )
    _write(path, header, rows)


WALK_FORWARD_COLUMNS = (
    "step", "in_start", "in_end", "out_start", "out_end", "params", "in_metric",
    "out_metric", "out_return_pct", "out_trades", "out_equity_final",
)  # fmt: skip


def walk_forward_rows(walk: Any, metric: str) -> list[list[Any]]:
    from flinktrade.backtest.optimize import metric_of

    rows = []
    for step in walk.steps:
        out = step.out.metrics if step.out is not None and step.out.metrics else {}
        rows.append(
            [
                step.number,
                iso(step.in_start),
                iso(step.in_end),
                iso(step.out_start),
                iso(step.out_end),
                "" if step.params is None else _params_text(step.params),
                step.in_metric,
                None if step.out is None else metric_of(step.out, metric),
                out.get("return_pct"),
                out.get("trades"),
                out.get("equity_final"),
            ]
        )
    return rows


def _params_text(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def write_optimize(
    out: Path,
    runs: Sequence[Any],
    metric: str,
    grid: Mapping[str, Sequence[Any]],
    heatmap: tuple[str, str] | None,
    settings: Mapping[str, Any],
    walk: Any | None = None,
) -> dict[str, Path]:
    """``results.csv``, ``optimize.html`` (heatmap, ranked table, walk-forward) and, after a
    walk-forward, ``walk_forward.csv``; ``runs`` ranked best first. Returns them by name."""
    out.mkdir(parents=True, exist_ok=True)
    names = list(grid)
    files = {"results.csv": out / "results.csv", "optimize.html": out / "optimize.html"}
    write_results(files["results.csv"], runs, names)
    sections = []
    if heatmap is not None:
        png = heatmap_chart(runs, metric, heatmap[0], heatmap[1], grid)
        sections.append(f"<h2>Heatmap</h2>{_img(png, f'{metric} heatmap')}")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["rank", *names, *RESULT_METRICS])
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(cell(v))}</td>"
            for v in [
                rank,
                *(run.params[n] for n in names),
                *((run.metrics or {}).get(k) for k in RESULT_METRICS),
            ]
        )
        + "</tr>"
        for rank, run in enumerate(runs[:MAX_HTML_RUNS], start=1)
    )
    more = (
        f"<p>Best {MAX_HTML_RUNS} of {len(runs)} parameter sets; all are in results.csv.</p>"
        if len(runs) > MAX_HTML_RUNS
        else ""
    )
    sections.append(f"<h2>Ranked by {html.escape(metric)}</h2>{more}<table>")
    sections.append(f"<tr>{head}</tr>{body}</table>")
    if walk is not None:
        files["walk_forward.csv"] = out / "walk_forward.csv"
        rows = walk_forward_rows(walk, metric)
        _write(files["walk_forward.csv"], WALK_FORWARD_COLUMNS, rows)
        whead = "".join(f"<th>{c}</th>" for c in WALK_FORWARD_COLUMNS)
        wbody = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>"
            for row in rows
        )
        summary = (
            f"<p>Out-of-sample, chained: return {format_metric('r', walk.return_pct)} %, "
            f"maximum drawdown {format_metric('d', walk.max_drawdown_pct)} %.</p>"
        )
        sections.append(f"<h2>Walk-forward</h2>{summary}<table><tr>{whead}</tr>{wbody}</table>")
        if walk.equity:
            chart = walk_forward_chart(walk.equity, walk.cash, "walk-forward, out-of-sample")
            sections.append(_img(chart, "walk-forward equity"))
    setting_rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in settings.items()
    )
    page = (
        _page_head("flinktrade optimize")
        + f"""<h2>Run</h2><table>{setting_rows}</table>
{"".join(sections)}
</body></html>
"""
    )
    files["optimize.html"].write_text(page, encoding="utf-8")
    return files
