"""Local infrastructure: the embedded Kafka broker and the JVM dependencies it and the job need."""
