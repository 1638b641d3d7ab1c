"""Order execution: signals in, orders at a broker, order states and fills out.

``loop.run_executor`` is the entry point (``loop.Executor``: the thin Kafka adapter, the offset
protocol) around ``core.ExecutorCore``, which wires the pure-of-Kafka parts: ``decide`` (one signal
-> dead letter, repeat, denial or intent), ``intake`` (what a signal record must be), ``risk`` (the
pre-trade checks), ``lifecycle`` (place / resolve / apply / fill), ``reconcile`` (broker vs store
as typed differences), ``guard`` (account checks, halting), ``killswitch`` (the ``TradingState``
and the one ``KillSwitch`` the CLI and the API share), ``alerts``, ``outbox``. ``source`` names
what the core is given instead of Kafka; ``market`` keeps the executor's own last market prices;
``flatten`` plans the orders that close every position and ``flattener`` sends and follows them;
``store`` keeps what must survive a crash; ``crash`` is the crash tests' hook; ``brokers/`` one
file per venue behind ``brokers.base.Broker`` (``brokers.make_broker``).
"""
