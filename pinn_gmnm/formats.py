"""File formats named on the command line, kept free of heavy imports so that the CLI
can list them in its help without loading torch."""

PREDICTION_FORMATS = (".csv", ".txt", ".npz")
"""What ``gmnm-pde predict --out`` may end with: comma-separated text (``.csv``, ``.txt``)
or numpy arrays (``.npz``)."""
