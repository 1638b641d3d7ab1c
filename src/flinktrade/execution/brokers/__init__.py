"""Brokers behind one small interface: ``base.Broker``; one file per venue."""
