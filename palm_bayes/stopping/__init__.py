"""Stopping a live AL run: the PALM stop rule that al_runner loads as a plugin."""
