"""The PALM equation, its likelihood, the single-curve PyMC model and simulators."""
