"""The PyFlink job: Java functions for the per-trade hot path, Python strategies on bars; its ``job``
commands (``cli.py``) and the entry module Flink's own launcher runs (``main.py``)."""
