"""Metrics → Plotly figures: pure functions, tested without a browser."""
