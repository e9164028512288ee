"""Grids of runs: the grid file, the Ray session and the sweep that runs and merges them."""
