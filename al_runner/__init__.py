"""al_runner: active-learning loops that generate PALM learning curves.

The AL loop, query strategies and embeddings arrive with their own issue; this package
will write curves in the contract that :func:`palm_bayes.load_curves` reads.
"""
