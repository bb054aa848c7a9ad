"""Matplotlib figures (Agg backend, saved atomically): training curves, forecasts,
confusion matrices and gate heat maps."""
