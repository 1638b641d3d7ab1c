"""The live API and dashboard: REST routes and a WebSocket stream over the output topics.

Kept import-light: ``flinktrade.config`` imports ``flinktrade.api.settings``.
"""
