"""Evaluation: the embedding cache, embedding, the linear probe, metrics and bootstrap intervals."""
