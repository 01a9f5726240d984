"""Building blocks of methods: encoders (timm trunks + projection), losses, window sampling and
state-dict mapping. Imports only :mod:`ssfbench.errors`."""
