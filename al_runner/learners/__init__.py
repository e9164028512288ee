"""Classifiers trained each round: the Learner interface, architectures, training, MC dropout."""
