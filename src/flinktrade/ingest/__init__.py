"""Sources that turn a feed into events on the market topics, and their commands (``ingest ...``,
``simulate``)."""
