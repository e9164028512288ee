"""From a model to an InferenceData: nutpie sampling, pooled fits, the posterior, least squares."""
