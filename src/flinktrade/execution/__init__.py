"""Order execution: signals in, orders at a broker, order states and fills out.

``executor.run_executor`` is the entry point; ``intake`` validates a signal before anything is
decided; ``market`` keeps the executor's own last market prices; ``risk`` the pre-trade checks;
``flatten`` plans the orders that close every position; ``store`` keeps what must survive a crash;
``brokers/`` one file per venue behind ``brokers.base.Broker``.
"""
