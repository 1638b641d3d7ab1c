"""``python -m flinktrade.cli``: the same as the ``flinktrade`` command."""

from flinktrade.cli.app import main

main()
