"""Functions of a posterior: forecasts, P(A beats B), labels needed, rankings, LOO."""
