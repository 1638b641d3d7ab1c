"""flinktrade: real-time algorithmic trading on Kafka and Apache Flink."""

__version__ = "0.1.0"

from flinktrade import accel as _accel

_accel.install()  # the mypyc-compiled indicators when built and current (see accel.py)
