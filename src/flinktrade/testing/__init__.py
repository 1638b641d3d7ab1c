"""Fakes of external services, references and fixtures for tests."""
