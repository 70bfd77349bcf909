"""Two steady nonlinear problems written while Newton's refinement was changed (so not
"untuned", unlike ``untuned_problems.py``); each has an exact solution:

    gmnm-pde solve benchmarks/refinement_checks.py:spot --budget 60
    gmnm-pde solve benchmarks/refinement_checks.py:corner --budget 60

``spot``: a narrow bump that the default mixture's broad Gaussians do not resolve (local
rounds before the all-parameter phase: 3.5 → 1.4e-2 to 1.6e-2; the PINN 0.25).
``corner``: the L-shape's r^(2/3) singularity under a cubic term (Newton does not refine
at re-entrant corners: 6.4e-2 → 6.5e-3; the PINN 2.2e-2). 60 s budgets, 2-core CPU,
2026-12-01. With a compact mixture tried first (``pinn_gmnm/training/compact.py``,
2026-12-02, the same conditions): ``spot`` 1.4e-6, ``corner`` 3.0e-3. See
``pinn_gmnm/training/newton_refine.py``.
"""

from __future__ import annotations

import math

import torch

from pinn_gmnm import Dirichlet, Disk, Polygon, Problem

L_SHAPE = [(-1, -1), (0, -1), (0, 0), (1, 0), (1, 1), (-1, 1)]


def spot() -> Problem:
    """−∇·((1 + u²)∇u) = f on the unit disk, u = exp(−|x − c|²/0.01), c = (0.3, 0.2)."""
    a = 0.01
    c = torch.tensor([0.3, 0.2], dtype=torch.float64)

    def exact(x):
        return torch.exp(-((x - c.to(x)) ** 2).sum(1) / a)

    def f(x):  # −(1 + u²)Δu − 2u|∇u|²
        u, q = exact(x), ((x - c.to(x)) ** 2).sum(1)
        return -(1 + u**2) * u * (4 * q / a**2 - 4 / a) - 2 * u * (4 * q / a**2 * u**2)

    return Problem(Disk((0, 0), 1),
                   lambda u, x: -(1 + u() ** 2) * u.laplacian()
                   - 2 * u() * (u.d("x") ** 2 + u.d("y") ** 2) - f(x),
                   [Dirichlet(exact)], exact=exact, linear=False)


def corner() -> Problem:
    """−Δu + u³ = f on the L-shape, u = r^(2/3) sin(2θ/3) (harmonic, singular at 0)."""

    def exact(x):
        r = x.norm(dim=1)
        theta = torch.remainder(torch.atan2(x[:, 1], x[:, 0]), 2 * math.pi)
        return r ** (2 / 3) * torch.sin(2 * theta / 3)

    return Problem(Polygon(L_SHAPE), lambda u, x: -u.laplacian() + u() ** 3 - exact(x) ** 3,
                   [Dirichlet(exact)], exact=exact, linear=False)
