"""The backtester: the production Flink job over a bounded input, with a simulated portfolio.

``engine.run_backtest`` puts the input (bars from a file, Alpaca history, or the market topics)
onto topics of the run's own, runs ``flinktrade.pipeline.job`` bounded over them, and simulates
the execution of its signals (``portfolio``); ``metrics`` and ``report`` turn that into numbers
and files; ``cli`` is ``flinktrade backtest``. See ``docs/backtest.md``.
"""

from flinktrade.backtest.engine import BacktestRequest, BacktestResult, MarketTopics, run_backtest
from flinktrade.backtest.portfolio import ExecutionModel, FillAt, Mode, simulate

__all__ = [
    "BacktestRequest",
    "BacktestResult",
    "ExecutionModel",
    "FillAt",
    "MarketTopics",
    "Mode",
    "run_backtest",
    "simulate",
]
