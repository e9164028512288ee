"""Learning a curve prior from a library of curves, and adapting it."""
