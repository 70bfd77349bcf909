"""Published centreline velocities of the lid-driven cavity at Re = 100: Ghia, Ghia & Shin,
"High-Re solutions for incompressible flow using the Navier–Stokes equations and a
multigrid method", J. Comput. Phys. 48 (1982) 387–411, Tables I and II (the Re = 100
columns). Their solution is second-order finite differences (vorticity–stream function)
on a uniform 129 × 129 grid, for the classic lid (u = 1 up to the corners); spectral
solutions differ from it by up to about 1e-2 (the minimum of v on y = ½ is −0.2538
there, −0.2453 in the table).
"""

from __future__ import annotations

SOURCE = "Ghia et al. 1982"

U_ALONG_X_HALF: tuple[tuple[float, float], ...] = (
    (0.0000, 0.00000), (0.0547, -0.03717), (0.0625, -0.04192), (0.0703, -0.04775),
    (0.1016, -0.06434), (0.1719, -0.10150), (0.2813, -0.15662), (0.4531, -0.21090),
    (0.5000, -0.20581), (0.6172, -0.13641), (0.7344, 0.00332), (0.8516, 0.23151),
    (0.9531, 0.68717), (0.9609, 0.73722), (0.9688, 0.78871), (0.9766, 0.84123),
    (1.0000, 1.00000),
)
"""(y, u) on the vertical centreline x = ½ at Re = 100 (Table I)."""

V_ALONG_Y_HALF: tuple[tuple[float, float], ...] = (
    (0.0000, 0.00000), (0.0625, 0.09233), (0.0703, 0.10091), (0.0781, 0.10890),
    (0.0938, 0.12317), (0.1563, 0.16077), (0.2266, 0.17507), (0.2344, 0.17527),
    (0.5000, 0.05454), (0.8047, -0.24533), (0.8594, -0.22445), (0.9063, -0.16914),
    (0.9453, -0.10313), (0.9531, -0.08864), (0.9609, -0.07391), (0.9688, -0.05906),
    (1.0000, 0.00000),
)
"""(x, v) on the horizontal centreline y = ½ at Re = 100 (Table II)."""
