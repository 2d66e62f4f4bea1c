"""Training: environments, networks, agents and checkpoints, evaluation, run bookkeeping, the algorithm loops."""
