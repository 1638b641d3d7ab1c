"""The one order-matching model: when and at what price an order of the order model fills.

Used by the backtester (``backtest.portfolio``) and the simulated broker, so a strategy's orders
fill the same way in both. Pure: no I/O, no clock; every time is an argument (the bundled market
calendar, the default, is read once on first use).

A ``Book`` holds the working orders of one account, all symbols. Its API:

- ``Book(costs, sizer=None, session_end=None, *, calendar=None, follow_sessions=False)``:
  ``calendar`` is the market calendar (``sessions.Calendar``, None: the bundled one) that ends
  ``day`` orders and times ``opg``/``cls``; ``session_end`` (``ts -> end``, e.g.
  ``eastern_session_end``) replaces it for ``day`` orders; ``follow_sessions`` keeps every order
  to the sessions it may trade in. ``Order.of(id, symbol, side, spec, qty)`` builds an order
  from an ``events.OrderSpec`` (``qty`` None: the ``sizer`` sizes it at its fill price);
- ``submit(order, ts, price=None) -> list[Change]``: accepts (``new``) or rejects it (the reason of
  ``orders.order_problem``); with ``price`` it is matched at once against that one price (a bar's
  close, when the backtest fills at the close);
- ``cancel(order_id, ts) -> list[Change]`` (an entry's exits and an OCO sibling go with it);
- ``on_bar(bar) -> list[Change]`` (``bar``: ``symbol, ts, open, high, low, close, volume``,
  ``ts`` the bar's start) and ``on_trade(symbol, ts, price, size) -> list[Change]``;
- ``expire(ts) -> list[Change]``: the ``day`` orders (every symbol) whose session ended by
  ``ts``, for a caller whose prices stop at the close.

A ``Change`` is an ``Update`` (an order's new status: ``new``, ``partially_filled``, ``filled``,
``canceled``, ``expired``, ``rejected``, with a reason) or an ``Execution`` (order id, leg, side,
qty, price, commission, ts, exit reason). Floats: prices and quantities are floats (the
backtester's speed; the exits' prices come from ``orders.exit_legs`` on the exact decimal of the
fill price, rounded to the tick there), so a caller with decimals converts at the edge.

The rules (also in ``docs/backtest.md``):

- An order matches only prices after it: a bar whose start is before the order's time is never
  used, so an order placed at a bar's close (the signal's time) first meets the next bar.
- ``market``: fills at the first price it meets (a bar's open). ``limit``: at the limit or better;
  a bar that opens through the limit fills at the open, one that only touches it at the limit.
  ``stop``: triggers when the price touches the stop and fills at the stop, or at the open when
  the bar gaps through it. ``stop_limit``: triggers like a stop, then is a limit (filled at the
  trigger price when that is within the limit, else it rests as a limit from the next bar).
  ``trailing_stop``: the stop follows the best price since the order was placed (its
  high-water mark for a sell, low-water mark for a buy) at ``trail_percent`` or ``trail_price``
  from it; a bar first moves the mark with its open, is tested against that stop, and only then
  moves the mark with its high (low): the stop a bar can trigger is the one known at its open.
- Pessimistic where a bar's order of events is unknown: when one bar touches both the
  take-profit and the stop-loss of a bracket (or OCO), the stop-loss fills; exits of an entry
  filled at a bar's open are tested against the rest of that bar; of an entry filled inside a
  bar, only the stop-loss and trailing stop are (at once, the adverse case), the take-profit
  from the next bar.
- Slippage (``slippage_bps``, against us) applies to market-like fills (market, stop, trailing
  stop, opg/cls market); never to a limit fill. Commission per execution: ``commission`` x value
  + ``per_share`` x qty, at least ``minimum`` per order over its executions.
- Time in force, on the calendar: ``day`` expires at the first price at or after the end of its
  session: the regular close (16:00 ET, 13:00 on an early close), with ``extended_hours`` the
  end of after-hours (20:00, 17:00 after an early close). Its session is the one it was placed
  in if it was placed where it may trade (regular; pre/post too when extended), else that of
  the first price it meets (an order placed after the close is the next trading day's). A daily
  bar (``interval_ms`` of a day or more, or one stamped at midnight when the market is closed)
  has no time of day and is its own trading day: a day order placed at one meets the next and
  expires at the one after. ``gtc`` stays; ``ioc`` / ``fok`` match the
  first price they meet and cancel what did not fill (``fok``: all or nothing). ``opg`` waits
  for the first regular open at or after it was placed and fills at the open of the first
  price of that day, else expires; ``cls`` fills at the last price before the regular close
  after it was placed (stamped at the close, once a later price shows the close has passed),
  else expires (limit versions only within their limit). A price outside the pre-market and
  regular sessions when an ``opg``/``cls`` order first meets it (or a daily bar) stands for a
  whole day: ``opg`` fills at its open, ``cls`` at its close.
- Sessions: with ``follow_sessions`` an order meets only prices in the regular session, and in
  pre-market and after-hours too when it has ``extended_hours``; without it (the default) every
  price.
- Exits: when an entry fills completely (or is cancelled / expires after a partial fill), the
  exits of its spec (``orders.exit_legs`` on its average price) become working ``gtc`` orders for
  the filled quantity, ids from ``orders.leg_client_order_id``; one exit filling cancels the
  others. An ``oco`` spec is itself the pair: a take-profit limit (the order's own id) and a
  stop-loss leg.
- Partial fills: with ``volume_share`` set, at most that fraction of a bar's volume (whole
  shares) fills per bar, shared by the bar's orders in the order they were placed; the rest
  waits for later bars (or is cancelled: ``ioc``). None (the default) fills everything.
- Deterministic: orders are matched in the order they were placed (stops before limits inside a
  bar, so a bracket's stop-loss wins); the same inputs give the same changes.
"""

from flinktrade.matching.book import (
    Book,
    Change,
    Costs,
    Execution,
    MatchBar,
    Order,
    SessionEnd,
    Sizer,
    Status,
    Update,
    eastern_session_end,
)

__all__ = [
    "Book",
    "Change",
    "Costs",
    "Execution",
    "MatchBar",
    "Order",
    "SessionEnd",
    "Sizer",
    "Status",
    "Update",
    "eastern_session_end",
]
