"""The PyFlink job: SQL for the per-trade hot path, Python strategies on bars."""
