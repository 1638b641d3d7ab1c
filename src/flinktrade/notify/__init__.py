"""Notifications: alerts, signals, orders and fills from the topics to Slack (or the console).

``notices`` turns records into notices, ``routing`` decides which destinations get each one,
``throttle`` paces each channel and folds bursts into summaries, ``format`` renders Block Kit
messages, ``slack`` is the only module that talks to Slack, ``service`` runs the consumer loop with
at-least-once offsets, and ``cli`` is ``flinktrade notify``.

This module imports nothing on purpose: ``flinktrade.config`` imports ``notify.settings``.
"""
