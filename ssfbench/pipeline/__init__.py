"""The pipeline: one run from its spec (pretrain, embed, probe, write results) and ``mock-run``,
which takes a method through the same stages in miniature."""
