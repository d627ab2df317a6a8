"""Serving: model loading and batch prediction for the API and CLI."""
