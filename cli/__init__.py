"""The ``gmnm-pde`` command line (installed as ``pinn_gmnm.cli``)."""
