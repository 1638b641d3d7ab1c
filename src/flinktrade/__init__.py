"""flinktrade: real-time algorithmic trading on Kafka and Apache Flink."""

__version__ = "0.1.0"
