"""Local infrastructure: the embedded Kafka broker(s) and Flink session cluster, the JVM
dependencies they and the job need, the process helpers they share, and the ``infra`` commands."""
