"""The backtester: the job's per-bar logic over history, with a simulated portfolio.

Two engines give the same files: ``inprocess.run_inprocess`` drives the job's per-bar core
(``pipeline.analytics.SymbolModel``) in this process in the Flink operator's event-time order;
``engine.run_backtest`` puts the input onto topics of the run's own and runs the production job
(``flinktrade.pipeline.job``) bounded over them. Both simulate the execution of the signals
(``portfolio``); ``metrics`` and ``report`` turn that into numbers and files. ``optimize`` sweeps
a strategy's parameters (grid, random, walk-forward) over the in-process engine, with ``expr``
for its constraints; ``loading`` reads files and Alpaca history, ``simulated`` builds a simulated
market (``--simulate``); ``cli`` is ``flinktrade backtest`` and ``flinktrade optimize``. See
``docs/backtest.md``.
"""

from flinktrade.backtest.engine import BacktestRequest, BacktestResult, MarketTopics, run_backtest
from flinktrade.backtest.inprocess import run_inprocess
from flinktrade.backtest.portfolio import CashMode, ExecutionModel, FillAt, Mode, simulate

__all__ = [
    "BacktestRequest",
    "BacktestResult",
    "CashMode",
    "ExecutionModel",
    "FillAt",
    "MarketTopics",
    "Mode",
    "run_backtest",
    "run_inprocess",
    "simulate",
]
