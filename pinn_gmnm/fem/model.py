"""The finite-element solution as a model: the classical baseline in every table.

``FEM`` is a :class:`~pinn_gmnm.models.contract.Surrogate` whose "training" is one
assembly and sparse solve (its fixed method, ``fem``, runs the
:class:`~.stage.FEMSolve` stage), and whose forward pass is the finite-element
interpolant: at a point x in triangle e,

    u(x) = Σ_j N_j(ξ) u_{e_j},    ξ = F_e⁻¹(x)

with N_j the Lagrange shape functions of order 1 or 2 on the reference triangle and
F_e the triangle's map (affine, or quadratic for the curved P2 triangles along curved
boundaries, inverted by Newton's method). Points are located among the triangles whose
centroids are nearest; a point outside the mesh (between a curved boundary and the
straight edge of a P1 triangle) takes the polynomial of the nearest triangle. ξ depends
on x differentiably (exactly for straight triangles), so the metrics' residual, and any
derivative a residual asks for, is the elementwise derivative of the interpolant.

On a space-time domain (x, y, t) the solution is kept at every time step and is linear
in t between steps (Crank–Nicolson's values, see :func:`~.elliptic.solve_parabolic`).

A flow (u, v, p) keeps each output's values in turn: the velocity's at the P2 nodes and
the pressure's at the vertices, interpolated by the P1 shape functions on the same
triangles (Taylor–Hood, :func:`~.navier_stokes.solve_flow`).

Its parameters are the nodal values (of every time step): the degrees of freedom are the
parameter count.
The mesh (nodes and triangles) is kept as buffers, so a saved run loads without meshing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import GMNMError, require_positive
from ..models.contract import Surrogate

if TYPE_CHECKING:
    from ..methods import Method

CANDIDATES = 12
"""Triangles (nearest centroids first) searched for the one holding a point."""


class FEM(Surrogate):
    """Lagrange finite elements of order ``fem_order`` (1 or 2) on a gmsh mesh with
    triangle sides of at most ``fem_size``; 2-D linear elliptic problems, parabolic ones
    on 2-D × time (``in_features`` 3), and steady flows (u, v, p) by Taylor–Hood
    elements (``fem_order`` 2: P2 velocity, P1 pressure)."""

    least_squares_by_default: ClassVar[bool] = False

    def __init__(self, in_features: int, out_features: int = 1, *, bounds: Any = None,
                 fem_order: int = 2, fem_size: float = 0.05) -> None:
        super().__init__()
        if fem_order not in (1, 2):
            raise GMNMError(f"--fem-order must be 1 or 2, got {fem_order!r}")
        require_positive("--fem-size", fem_size)
        self.in_features, self.out_features = in_features, out_features
        self.order, self.size = int(fem_order), float(fem_size)
        self.register_buffer("nodes", torch.zeros(0, 2, dtype=torch.float64))
        self.register_buffer("cells", torch.zeros(0, 3 * self.order, dtype=torch.long))
        self.register_buffer("times", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("orders", torch.full((out_features,), self.order, dtype=torch.long))
        self.coefficients = nn.Parameter(torch.zeros(0, dtype=torch.float64))
        self._locator: _Locator | None = None

    def fixed_method(self) -> Method:
        from ..methods import METHODS

        return METHODS.get("fem")

    @property
    def solved(self) -> bool:
        return self.coefficients.numel() > 0

    def set_solution(self, nodes: np.ndarray, cells: np.ndarray, values: np.ndarray,
                     times: np.ndarray | None = None, orders: Sequence[int] | None = None) -> None:
        """Take a finite-element solution: node locations (N, 2), triangles (E, 3 or 6)
        and nodal values (N,), or (T, N) at ``times`` (T,); for several outputs, each
        output's values in turn, output k of element order ``orders[k]`` (one value per
        node at the mesh's order, per vertex at order 1: Taylor–Hood's pressure)."""
        dtype, device = self.coefficients.dtype, self.coefficients.device
        self.nodes = torch.as_tensor(nodes, dtype=dtype, device=device)
        self.cells = torch.as_tensor(cells, dtype=torch.long, device=device)
        self.times = torch.as_tensor(np.zeros(0) if times is None else times, dtype=dtype,
                                     device=device)
        self.orders = torch.as_tensor([self.order] * self.out_features if orders is None
                                      else list(orders), dtype=torch.long, device=device)
        flat = torch.as_tensor(values, dtype=dtype, device=device).reshape(-1)
        self.coefficients = nn.Parameter(flat)
        self._locator = None

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        """A saved solution has its own mesh: take its sizes before loading it (a run
        saved before systems had ``orders`` is of the mesh's order throughout)."""
        if all(prefix + k in state_dict for k in ("nodes", "cells", "times", "coefficients")):
            def zeros(key: str, dtype: type = np.float64) -> np.ndarray:
                return np.zeros(tuple(state_dict[prefix + key].shape), dtype=dtype)

            self.set_solution(zeros("nodes"), zeros("cells", np.int64), zeros("coefficients"),
                              zeros("times"))
            state_dict.setdefault(prefix + "orders", self.orders.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _blocks(self) -> list[tuple[int, slice]]:
        """Each output's element order and the slice of one time level's values it holds."""
        vertices = int(self.cells[:, :3].max()) + 1
        blocks, start = [], 0
        for order in self.orders.tolist():
            count = len(self.nodes) if order == self.order else vertices
            blocks.append((order, slice(start, start + count)))
            start += count
        return blocks

    def forward(self, x: Tensor) -> Tensor:
        if not self.solved:  # before the solve: zero everywhere
            return x.new_zeros(len(x), self.out_features)
        if self._locator is None:
            self._locator = _Locator(self.nodes.detach().cpu().double().numpy(),
                                     self.cells.cpu().numpy(), self.order)
        space = x[:, :2]
        cell, xi, jinv = self._locator(space.detach().cpu().double().numpy())
        cell_t = torch.from_numpy(cell).to(x.device)
        xi = torch.from_numpy(xi).to(x) + torch.einsum(
            "nij,nj->ni", torch.from_numpy(jinv).to(x), space - space.detach())
        levels = self.coefficients.to(x).reshape(max(1, len(self.times)), -1)  # (T, values)
        if len(self.times) > 0:
            times = self.times.to(x)
            k = (torch.searchsorted(times, x[:, 2].detach().contiguous()) - 1).clamp(
                0, len(times) - 2)
            w = ((x[:, 2] - times[k]) / (times[k + 1] - times[k]))[:, None]
        columns = []
        for order, block in self._blocks():
            shape = shape_functions(xi, order)                           # (n, 3 or 6)
            dofs = self.cells[cell_t, :3 * order]                        # (n, 3 or 6)
            values = levels[:, block]
            if len(self.times) == 0:
                columns.append((shape * values[0][dofs]).sum(dim=1))
                continue
            before = (shape * values[k[:, None], dofs]).sum(dim=1)
            after = (shape * values[k[:, None] + 1, dofs]).sum(dim=1)
            columns.append((1 - w[:, 0]) * before + w[:, 0] * after)
        return torch.stack(columns, dim=1)

    def extra_repr(self) -> str:
        elements = "/".join(f"P{o}" for o in dict.fromkeys(self.orders.tolist()))
        return f"{elements}, h <= {self.size:g}, {self.coefficients.numel()} degrees of freedom"


def shape_functions(xi: Tensor | np.ndarray, order: int) -> Any:
    """The Lagrange shape functions on the reference triangle at ``xi`` (n, 2): P1 the
    barycentric coordinates λ₀ = 1 − ξ − η, λ₁ = ξ, λ₂ = η; P2 λ_i(2λ_i − 1) at the
    vertices, then 4λ₀λ₁, 4λ₁λ₂, 4λ₀λ₂ at the midpoints of edges 01, 12, 02."""
    lib = torch if isinstance(xi, Tensor) else np
    l1, l2 = xi[:, 0], xi[:, 1]
    l0 = 1 - l1 - l2
    if order == 1:
        return lib.stack([l0, l1, l2], 1)
    return lib.stack([l0 * (2 * l0 - 1), l1 * (2 * l1 - 1), l2 * (2 * l2 - 1),
                      4 * l0 * l1, 4 * l1 * l2, 4 * l0 * l2], 1)


def _shape_gradients(xi: np.ndarray, order: int) -> np.ndarray:
    """∂N_j/∂ξ at ``xi`` (n, 2): shape (n, 3 or 6, 2)."""
    l1, l2 = xi[:, 0], xi[:, 1]
    l0 = 1 - l1 - l2
    one, zero = np.ones_like(l1), np.zeros_like(l1)
    if order == 1:
        return np.stack([np.stack([-one, -one], 1), np.stack([one, zero], 1),
                         np.stack([zero, one], 1)], 1)
    d0 = -(4 * l0 - 1)
    return np.stack([np.stack([d0, d0], 1), np.stack([4 * l1 - 1, zero], 1),
                     np.stack([zero, 4 * l2 - 1], 1), np.stack([4 * (l0 - l1), -4 * l1], 1),
                     np.stack([4 * l2, 4 * l1], 1), np.stack([-4 * l2, 4 * (l0 - l2)], 1)], 1)


class _Locator:
    """Finds, for points (n, 2), their triangle, reference coordinates ξ and the inverse
    Jacobian of the triangle's map there."""

    def __init__(self, nodes: np.ndarray, cells: np.ndarray, order: int) -> None:
        from scipy.spatial import cKDTree

        self.order = order
        self.geometry = nodes[cells]                                    # (E, 3 or 6, 2)
        v = self.geometry[:, :3]
        self.origin = v[:, 0]
        self.affine_inv = np.linalg.inv(np.stack([v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]], 2))
        self.tree = cKDTree(v.mean(axis=1))

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = min(CANDIDATES, len(self.origin))
        _, near = self.tree.query(x, k=k)
        near = near.reshape(len(x), k)
        xi = np.einsum("nkij,nkj->nki", self.affine_inv[near], x[:, None] - self.origin[near])
        inside = np.minimum(np.minimum(xi[..., 0], xi[..., 1]), 1 - xi[..., 0] - xi[..., 1])
        best = inside.argmax(axis=1)
        rows = np.arange(len(x))
        cell, xi = near[rows, best], xi[rows, best]
        jinv = self.affine_inv[cell]
        if self.order == 2:  # curved triangles: Newton on the quadratic map from the affine guess
            nodes = self.geometry[cell]                                 # (n, 6, 2)
            for _ in range(6):
                f = np.einsum("nj,njd->nd", shape_functions(xi, 2), nodes) - x
                jac = np.einsum("njd,nje->nde", nodes, _shape_gradients(xi, 2))
                jinv = np.linalg.inv(jac)
                xi = xi - np.einsum("nij,nj->ni", jinv, f)
            jac = np.einsum("njd,nje->nde", nodes, _shape_gradients(xi, 2))
            jinv = np.linalg.inv(jac)
        return cell, xi, jinv
