"""Decisions from a fit: the advisor (cheapest rule and ALDA's rule) and strategy schedules."""
