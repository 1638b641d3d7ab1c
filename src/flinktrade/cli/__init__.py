"""``flinktrade``: the command-line package (as freqtrade's ``commands/``).

- ``app``: the root command, logging set-up, ``show-config``, the exit codes and the one-line error
  report (exit codes are decided there and only there), and the list of stages whose commands it
  registers (each stage's ``cli`` module has a ``register(app)``).
- ``options``: option definitions several commands share, and small argument helpers.
- ``signals``: ``stop_on_signals()``, the SIGINT/SIGTERM handling of every long-running command.
- ``demo``: ``flinktrade demo``, which runs every stage at once and so belongs to no stage.

This module imports nothing on purpose: a stage's ``cli`` module may import ``cli.options`` and
``cli.signals`` while the root app imports that stage.
"""

from __future__ import annotations


def main() -> None:
    """Console-script entry point (``flinktrade``): see ``flinktrade.cli.app.main``."""
    from flinktrade.cli.app import main as run

    run()
