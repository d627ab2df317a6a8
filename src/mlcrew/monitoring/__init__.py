"""Monitoring: drift and performance of the champion on new data."""
