// flinktrade dashboard: REST snapshots plus the live WebSocket stream, drawn with
// TradingView lightweight-charts (served by the API from web/node_modules, never a CDN).
"use strict";

(function () {
  const LC = window.LightweightCharts;
  const TOKEN_KEY = "flinktrade.token";
  const KEEP = 200; // rows per table
  const INDICATORS = [
    ["sma_20", "#f0b429", 2],
    ["sma_50", "#b57edc", 2],
    ["bb_upper_20_2", "#5b8def", 1],
    ["bb_lower_20_2", "#5b8def", 1],
  ];
  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    symbol: null,
    symbols: new Set(),
    barTimes: [], // seconds, ascending, of the shown symbol
    candles: 0,
    signals: new Map(), // id -> signal
    fills: new Map(), // id -> fill
    orders: new Map(), // client_order_id -> latest order event
    alerts: new Map(),
    news: new Map(),
    markers: [],
    halted: null,
    socket: null,
    retry: 500,
  };

  // ------------------------------------------------------------------ token

  function takeToken() {
    const url = new URL(window.location.href);
    const fromUrl = url.searchParams.get("token");
    if (fromUrl) {
      sessionStorage.setItem(TOKEN_KEY, fromUrl);
      url.searchParams.delete("token");
      history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function showLogin(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    if (state.socket) state.socket.close();
    $("dashboard").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    setConnection("disconnected", "bad");
  }

  async function api(path, options) {
    const response = await fetch(path, {
      ...(options || {}),
      headers: { Authorization: "Bearer " + state.token, ...((options || {}).headers || {}) },
    });
    if (response.status === 401) {
      showLogin("wrong token");
      throw new Error("unauthorized");
    }
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  // ------------------------------------------------------------------ chart

  const chart = LC.createChart($("chart"), {
    autoSize: true,
    layout: { background: { color: "#161c23" }, textColor: "#d8dee6" },
    grid: { vertLines: { color: "#1f262e" }, horzLines: { color: "#1f262e" } },
    timeScale: { timeVisible: true, secondsVisible: false },
    crosshair: { mode: LC.CrosshairMode.Normal },
  });
  const candles = chart.addSeries(LC.CandlestickSeries, {
    upColor: "#26a69a", downColor: "#ef5350", wickUpColor: "#26a69a", wickDownColor: "#ef5350",
    borderVisible: false,
  });
  const lines = {};
  for (const [key, color, width] of INDICATORS) {
    lines[key] = chart.addSeries(LC.LineSeries, {
      color, lineWidth: width, priceLineVisible: false, lastValueVisible: false,
      crosshairMarkerVisible: false,
    });
  }
  const markerLayer = LC.createSeriesMarkers(candles, []);

  const num = (value) => (value === null || value === undefined ? null : Number(value));
  const secs = (ms) => Math.floor(ms / 1000);

  function candle(bar) {
    return {
      time: secs(bar.ts), open: num(bar.open), high: num(bar.high), low: num(bar.low),
      close: num(bar.close),
    };
  }

  function showBars(bars) {
    candles.setData(bars.map(candle));
    state.barTimes = bars.map((b) => secs(b.ts));
    state.candles = bars.length;
    for (const [key] of INDICATORS) {
      lines[key].setData(
        bars.filter((b) => b.indicators && b.indicators[key] != null)
          .map((b) => ({ time: secs(b.ts), value: b.indicators[key] })),
      );
    }
    if (bars.length) showLast(bars[bars.length - 1]);
    chart.timeScale().fitContent();
    drawMarkers();
  }

  function addBar(bar) {
    const time = secs(bar.ts);
    const last = state.barTimes[state.barTimes.length - 1];
    if (last !== undefined && time < last) return; // late repeat: the chart only moves forward
    candles.update(candle(bar));
    if (time !== last) {
      state.barTimes.push(time);
      state.candles += 1;
    }
    for (const [key] of INDICATORS) {
      const value = bar.indicators ? bar.indicators[key] : null;
      if (value != null) lines[key].update({ time, value });
    }
    showLast(bar);
    drawMarkers();
  }

  function showLast(bar) {
    $("last").textContent = `${bar.symbol} ${num(bar.close).toFixed(2)} · ${fmtTime(bar.ts)}`;
  }

  // The bar a time falls in (markers must sit on a bar of the series).
  function barTime(seconds) {
    const times = state.barTimes;
    if (!times.length) return null;
    let lo = 0, hi = times.length - 1;
    if (seconds <= times[0]) return times[0];
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (times[mid] <= seconds) lo = mid; else hi = mid - 1;
    }
    return times[lo];
  }

  function drawMarkers() {
    const markers = [];
    for (const s of state.signals.values()) {
      if (s.symbol !== state.symbol) continue;
      const time = barTime(secs(s.bar_ts));
      if (time === null) continue;
      const buy = s.side === "buy";
      markers.push({
        id: "signal:" + s.id, time, position: buy ? "belowBar" : "aboveBar",
        shape: buy ? "arrowUp" : "arrowDown", color: buy ? "#26a69a" : "#ef5350",
        text: s.strategy,
      });
    }
    for (const f of state.fills.values()) {
      if (f.symbol !== state.symbol) continue;
      const order = state.orders.get(f.client_order_id);
      const signal = order && order.signal_id ? state.signals.get(order.signal_id) : null;
      const time = barTime(signal ? secs(signal.bar_ts) : secs(f.ts));
      if (time === null) continue;
      markers.push({
        id: "fill:" + f.id, time, position: f.side === "buy" ? "belowBar" : "aboveBar",
        shape: "circle", color: "#e0e0e0", text: `${f.side} ${f.qty}@${num(f.price).toFixed(2)}`,
      });
    }
    markers.sort((a, b) => a.time - b.time);
    state.markers = markers;
    markerLayer.setMarkers(markers);
  }

  // ------------------------------------------------------------------ tables

  function fmtTime(ms) {
    return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) td.className = cls;
    return td;
  }

  function render(tableId, items, row) {
    const body = $(tableId).querySelector("tbody");
    const rows = items.slice(-KEEP).reverse().map((item) => {
      const tr = row(item);
      tr.dataset.id = item.id || item.client_order_id || item.symbol;
      return tr;
    });
    body.replaceChildren(...rows);
  }

  function tr(cells, cls) {
    const row = document.createElement("tr");
    if (cls) row.className = cls;
    row.append(...cells);
    return row;
  }

  function sorted(map) {
    return [...map.values()].sort((a, b) => a.ts - b.ts);
  }

  function renderSignals() {
    render("signals", sorted(state.signals), (s) => tr([
      cell(fmtTime(s.ts)), cell(s.symbol), cell(s.side, s.side), cell(s.strategy),
      cell(num(s.price).toFixed(2)), cell(s.reason, "text"),
    ]));
  }

  function renderAlerts() {
    render("alerts", sorted(state.alerts), (a) => tr([
      cell(fmtTime(a.ts)), cell(a.severity), cell(a.kind), cell(a.symbol), cell(a.message, "text"),
    ], "severity-" + a.severity));
  }

  function renderOrders() {
    render("orders", sorted(state.orders), (o) => tr([
      cell(fmtTime(o.ts)), cell(o.symbol), cell(o.side, o.side), cell(o.qty ?? o.notional),
      cell(o.status), cell(o.filled_qty),
      cell(o.filled_avg_price == null ? "" : num(o.filled_avg_price).toFixed(2)),
      cell(o.reason, "text"),
    ]));
  }

  function renderNews() {
    render("news", sorted(state.news), (n) => {
      const s = n.sentiment;
      return tr([
        cell(fmtTime(n.ts)), cell((n.symbols || []).join(" ")),
        cell(s == null ? "" : s.toFixed(2), s > 0 ? "pos" : s < 0 ? "neg" : ""),
        cell(n.headline, "text"), cell(n.source),
      ]);
    });
  }

  function renderPositions(rows) {
    const pnl = (v) => (Number(v) > 0 ? "pos" : Number(v) < 0 ? "neg" : "");
    render("positions", [...rows].reverse(), (p) => tr([
      cell(p.symbol), cell(p.qty), cell(num(p.avg_price).toFixed(2)),
      cell(p.last_price == null ? "" : num(p.last_price).toFixed(2)), cell(p.market_value),
      cell(p.unrealized_pnl, pnl(p.unrealized_pnl)), cell(p.realized_pnl, pnl(p.realized_pnl)),
    ]));
  }

  // One colour per strategy, in the table's order (by name).
  const PALETTE = ["#5b8def", "#f0b429", "#26a69a", "#ef5350", "#b57edc", "#4dd0e1", "#ff8a65", "#aed581"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const EQUITY_W = 600, EQUITY_H = 180, EQUITY_PAD = 6; // the SVG's viewBox

  function renderStrategies(items) {
    const pnl = (v) => (Number(v) > 0 ? "pos" : Number(v) < 0 ? "neg" : "");
    const rate = (r) => (r == null ? "" : Math.round(r * 100) + "%");
    const rows = items.map((s, i) => {
      const name = cell(s.strategy);
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = PALETTE[i % PALETTE.length];
      name.prepend(swatch);
      const row = tr([
        name, cell(s.pnl, pnl(s.pnl)), cell(s.realized_pnl, pnl(s.realized_pnl)),
        cell(s.unrealized_pnl, pnl(s.unrealized_pnl)), cell(s.commissions), cell(s.trades),
        cell(rate(s.win_rate)), cell(s.gross_exposure),
      ]);
      row.dataset.id = s.strategy;
      return row;
    });
    $("strategies").querySelector("tbody").replaceChildren(...rows);
    drawEquity(items);
  }

  // Each strategy's equity as a step line (it holds its value until the next point), on one
  // scale with zero always in view.
  function drawEquity(items) {
    const svg = $("equity");
    const series = items.map((s, i) => ({
      name: s.strategy, color: PALETTE[i % PALETTE.length],
      points: s.equity.map((p) => [p.ts, Number(p.equity)]),
    })).filter((s) => s.points.length);
    const all = series.flatMap((s) => s.points);
    svg.replaceChildren();
    if (!all.length) return;
    let t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
    let v0 = Math.min(0, ...all.map((p) => p[1])), v1 = Math.max(0, ...all.map((p) => p[1]));
    if (t1 === t0) t1 = t0 + 1;
    if (v1 === v0) v1 = v0 + 1;
    const x = (t) => EQUITY_PAD + ((t - t0) / (t1 - t0)) * (EQUITY_W - 2 * EQUITY_PAD);
    const y = (v) => EQUITY_H - EQUITY_PAD - ((v - v0) / (v1 - v0)) * (EQUITY_H - 2 * EQUITY_PAD);
    const zero = document.createElementNS(SVG_NS, "line");
    zero.setAttribute("class", "zero");
    zero.setAttribute("x1", 0); zero.setAttribute("x2", EQUITY_W);
    zero.setAttribute("y1", y(0)); zero.setAttribute("y2", y(0));
    svg.append(zero);
    for (const s of series) {
      const coords = [];
      s.points.forEach(([t, v], k) => {
        if (k) coords.push([x(t), y(s.points[k - 1][1])]);
        coords.push([x(t), y(v)]);
      });
      coords.push([EQUITY_W - EQUITY_PAD, y(s.points[s.points.length - 1][1])]);
      const line = document.createElementNS(SVG_NS, "polyline");
      line.setAttribute("points", coords.map(([a, b]) => a.toFixed(1) + "," + b.toFixed(1)).join(" "));
      line.setAttribute("stroke", s.color);
      line.dataset.strategy = s.name;
      const title = document.createElementNS(SVG_NS, "title");
      title.textContent = s.name;
      line.append(title);
      svg.append(line);
    }
    $("equity-range").textContent =
      `equity per strategy, ${v0.toFixed(2)} to ${v1.toFixed(2)}, ${fmtTime(t0)} to ${fmtTime(t1)}`;
  }

  function remember(map, key, item) {
    map.set(key, item);
    if (map.size > KEEP * 2) map.delete(map.keys().next().value);
  }

  // ------------------------------------------------------------------ status, kill switch

  function setConnection(text, cls) {
    const el = $("connection");
    el.textContent = text;
    el.className = "pill " + cls;
  }

  function showExecutor(executor) {
    state.halted = executor.state === "halted";
    const el = $("executor");
    el.textContent = "executor " + executor.state;
    el.title = executor.reason || "";
    el.className = "pill " + (state.halted ? "bad" : "ok");
    const button = $("halt");
    button.textContent = state.halted ? "Resume trading" : "Halt trading";
    button.classList.toggle("halted", state.halted);
    button.disabled = false;
  }

  async function pollHealth() {
    if (!state.token) return; // without the token /health says only ok or degraded
    try {
      const response = await fetch("/health", {
        headers: { Authorization: "Bearer " + state.token },
      });
      const health = await response.json();
      if (!health.executor) return; // a wrong token: the next API call shows the login
      showExecutor(health.executor);
      const job = $("job");
      job.textContent = "job " + health.job.state;
      job.className = "pill " + (health.job.state === "running" ? "ok" : "warn");
    } catch (err) {
      $("job").className = "pill bad";
    }
  }

  async function toggleHalt() {
    const button = $("halt");
    button.disabled = true;
    try {
      const path = state.halted ? "/api/resume" : "/api/halt";
      const options = { method: "POST" };
      if (!state.halted) {
        options.headers = { "Content-Type": "application/json" };
        options.body = JSON.stringify({ reason: "halted from the dashboard" });
      }
      showExecutor(await api(path, options));
    } finally {
      button.disabled = false;
    }
  }

  async function refreshPositions() {
    const [positions, strategies] = await Promise.all([api("/api/positions"), api("/api/strategies")]);
    renderPositions(positions);
    renderStrategies(strategies);
  }

  // ------------------------------------------------------------------ data

  function addSymbol(symbol) {
    if (state.symbols.has(symbol)) return;
    state.symbols.add(symbol);
    const select = $("symbol");
    const option = document.createElement("option");
    option.value = option.textContent = symbol;
    const after = [...select.options].find((o) => o.value > symbol);
    select.insertBefore(option, after || null);
    if (!state.symbol) selectSymbol(symbol);
  }

  async function selectSymbol(symbol) {
    state.symbol = symbol;
    $("symbol").value = symbol;
    showBars(await api("/api/bars?limit=1000&symbol=" + encodeURIComponent(symbol)));
  }

  function onEvent(topic, data) {
    switch (topic) {
      case "bars":
        addSymbol(data.symbol);
        if (data.symbol === state.symbol) addBar(data);
        break;
      case "signals":
        remember(state.signals, data.id, data);
        renderSignals();
        if (data.symbol === state.symbol) drawMarkers();
        break;
      case "fills":
        remember(state.fills, data.id, data);
        if (data.symbol === state.symbol) drawMarkers();
        refreshPositions().catch(() => {});
        break;
      case "orders":
        remember(state.orders, data.client_order_id, data);
        renderOrders();
        break;
      case "alerts":
        remember(state.alerts, data.id, data);
        renderAlerts();
        break;
      case "news":
        remember(state.news, data.id, data);
        renderNews();
        break;
    }
  }

  async function loadSnapshots() {
    const [symbols, signals, alerts, orders, fills, news] = await Promise.all([
      api("/api/symbols"), api(`/api/signals?limit=${KEEP}`), api(`/api/alerts?limit=${KEEP}`),
      api(`/api/orders?limit=${KEEP}`), api(`/api/fills?limit=${KEEP}`), api(`/api/news?limit=${KEEP}`),
    ]);
    for (const s of signals) state.signals.set(s.id, s);
    for (const a of alerts) state.alerts.set(a.id, a);
    for (const o of orders) state.orders.set(o.client_order_id, o);
    for (const f of fills) state.fills.set(f.id, f);
    for (const n of news) state.news.set(n.id, n);
    renderSignals(); renderAlerts(); renderOrders(); renderNews();
    for (const s of symbols) addSymbol(s.symbol);
    if (state.symbol) await selectSymbol(state.symbol);
    await refreshPositions();
  }

  // Stream first, snapshots once it is ready: nothing falls between the two (repeats are merged).
  function connect() {
    if (!state.token) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/api/stream?topics=bars,signals,alerts,orders,fills,news`);
    state.socket = socket;
    setConnection("connecting", "warn");
    socket.onopen = () => socket.send(JSON.stringify({ token: state.token }));
    socket.onmessage = async (message) => {
      const msg = JSON.parse(message.data);
      if (msg.type === "ready") {
        state.retry = 500;
        try {
          await loadSnapshots();
          setConnection("live", "ok");
          window.ftDashboard.ready = true;
        } catch (err) {
          setConnection("error: " + err.message, "bad");
        }
      } else if (msg.type === "event") {
        onEvent(msg.topic, msg.data);
      }
    };
    socket.onclose = (event) => {
      if (state.socket !== socket) return;
      window.ftDashboard.ready = false;
      if (event.code === 1008) {
        showLogin("wrong token");
        return;
      }
      setConnection("disconnected, retrying", "bad");
      setTimeout(connect, state.retry);
      state.retry = Math.min(state.retry * 2, 10000);
    };
  }

  function start(token) {
    state.token = token;
    $("login").hidden = true;
    $("dashboard").hidden = false;
    connect();
    pollHealth();
  }

  // What the browser test (and a curious user in the console) can ask.
  window.ftDashboard = {
    ready: false,
    candleCount: () => state.candles,
    seriesLength: () => candles.data().length,
    markers: () => markerLayer.markers().map((m) => ({ id: m.id, time: m.time, shape: m.shape })),
    symbol: () => state.symbol,
    halted: () => state.halted,
    equityLines: () => [...document.querySelectorAll("#equity polyline")].map((l) => l.dataset.strategy),
  };

  $("symbol").addEventListener("change", (e) => selectSymbol(e.target.value));
  $("halt").addEventListener("click", () => toggleHalt().catch((err) => setConnection(err.message, "bad")));
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    start($("token").value.trim());
  });
  pollHealth();
  setInterval(pollHealth, 3000);
  setInterval(() => { if (state.token) refreshPositions().catch(() => {}); }, 5000);

  const token = takeToken();
  if (token) start(token); else showLogin("");
})();
