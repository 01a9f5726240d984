"""``python -m ssfbench`` (also what ``torchrun -m ssfbench`` runs)."""

from ssfbench.cli import main

main()
