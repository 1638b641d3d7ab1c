"""The job as Flink's own launcher runs it: ``flink run -pym flinktrade.pipeline.main`` on a
session cluster, or ``PythonDriver -pym flinktrade.pipeline.main`` in application mode (the
Kubernetes operator's FlinkDeployment in deploy/kubernetes).

Configuration comes from the environment (``FLINKTRADE_*``, the same settings as the CLI, read
by ``load_settings``: a broker off loopback is refused without
``kafka.allow_unauthenticated_remote``, and bad settings are one ``error:`` line and exit 2); the
cluster's own configuration supplies checkpoint storage, so no local checkpoint directory is set.
Flink's launcher (not this module) picks the target cluster and restores a savepoint
(``flink run -s PATH``). ``flinktrade job submit`` is the equivalent from a machine with this
package installed.
"""

from __future__ import annotations

import argparse
import sys

from flinktrade.config import load_settings
from flinktrade.errors import FlinktradeError
from flinktrade.pipeline.job import JobIO, JobOptions, run


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="flinktrade.pipeline.main",
        description="Run the flinktrade job under Flink's launcher.",
    )
    parser.add_argument(
        "--bounded", action="store_true", help="stop at the topics' current end offsets"
    )
    parser.add_argument(
        "--from-earliest", action="store_true", help="ignore committed offsets; read from the start"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings()
        io = JobIO.from_settings(settings, bounded=args.bounded, from_earliest=args.from_earliest)
        run(io, JobOptions.from_settings(settings, checkpoint_dir=None), wait=True)
    except FlinktradeError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
