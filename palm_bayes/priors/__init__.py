"""Curve priors: the extrapolation discrepancy, seed offsets and the shipped LCDB prior."""
