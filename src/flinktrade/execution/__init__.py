"""Order execution: signals in, orders at a broker, order states and fills out.

``executor.run_executor`` is the entry point; ``store`` keeps what must survive a crash; ``risk``
the pre-trade checks; ``brokers/`` one file per venue behind ``brokers.base.Broker``.
"""
