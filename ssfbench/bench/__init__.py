"""Speed benchmarks (``ssfbench bench``): training, embedding and decoding rates."""
