"""Connectors from Bot4's flows to the outside world (exchanges, stores)."""
