"""The Gray–Scott and nonlinear Schrödinger problems (problems/systems.py): their spectral
references satisfy the problems' own residuals, are converged, and keep what the
equations conserve."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pinn_gmnm import GMNMError, Reference, get_problem
from pinn_gmnm.references.evolution import (etdrk4_periodic, gray_scott_periodic,
                                            schrodinger_split_step)


class Interpolant(nn.Module):
    """A reference on a periodic x × t grid as a differentiable function near the time
    node ``j``: trigonometric interpolation in x (the grid's modes up to ``modes``),
    Lagrange interpolation through the five time nodes j − 2 … j + 2 in t (so u_t is
    fourth-order accurate at the node itself)."""

    def __init__(self, values: np.ndarray, x: np.ndarray, t: np.ndarray, j: int,
                 modes: int | None = None) -> None:
        super().__init__()
        n = len(x) - 1                    # the last grid column repeats the first
        self.x0, self.length = float(x[0]), float(x[-1] - x[0])
        self.coef = torch.fft.fft(torch.from_numpy(values[:n, j - 2:j + 3]), dim=0) / n
        self.k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
        if modes is not None:
            self.coef[self.k.abs() > modes] = 0
        self.nodes = torch.from_numpy(t[j - 2:j + 3].copy())

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        X, T = p[:, :1], p[:, 1:]
        phase = torch.exp(2j * math.pi * self.k * (X - self.x0) / self.length)      # (n, K)
        at_nodes = torch.einsum("nk,kjc->njc", phase.to(torch.complex128),
                                self.coef.to(torch.complex128)).real              # (n, 5, c)
        weights = []
        for a in range(5):
            w = torch.ones_like(T)
            for b in range(5):
                if b != a:
                    w = w * (T - self.nodes[b]) / (self.nodes[a] - self.nodes[b])
            weights.append(w)
        return (at_nodes * torch.cat(weights, dim=1)[:, :, None]).sum(dim=1)


def fine_in_time(name: str) -> Reference:
    """The problem's reference solver at its resolution, with ten times more output
    times (and for Schrödinger all 512 points, so that no mode aliases)."""
    if name == "schrodinger":
        return schrodinger_split_step(lambda x: 2 / np.cosh(x[:, 0]), math.pi / 2,
                                      dt=math.pi / 20000, nt=2001, nx=512)

    def uv0(x):
        g = np.exp(-(x[:, 0] / 0.15) ** 2)
        return np.stack([1 - 0.5 * g, 0.25 * g], axis=1)

    return gray_scott_periodic(1e-3, 5e-4, 0.04, 0.06, uv0, 300.0, dt=0.1, nt=3001)


def test_the_fine_references_are_the_problems_references():
    for name in ("schrodinger", "gray-scott"):
        ref, fine = get_problem(name).reference_solution(), fine_in_time(name)
        every = (len(fine.axes[1]) - 1) // (len(ref.axes[1]) - 1)
        stride = (len(fine.axes[0]) - 1) // (len(ref.axes[0]) - 1)
        coarse = fine.values.reshape(len(fine.axes[0]), -1, 2)[::stride, ::every].reshape(-1, 2)
        np.testing.assert_allclose(coarse, ref.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["gray-scott", "schrodinger"])
def test_references_satisfy_the_problems_equations(name):
    """The problem's own residual, on the reference interpolated spectrally in x and by
    five time nodes in t, at early, middle and late times: small next to u_t (a wrong
    sign or factor in either would make it as large). For Schrödinger the modes above
    |k| = 64 of 256 are left out: the split-step's highest ones (amplitudes near 1e-6)
    turn at frequencies k²/2 up to 1e4 that no sampling in time resolves."""
    p = get_problem(name)
    ref = fine_in_time(name)
    x_axis, t_axis = ref.axes
    grid = ref.values.reshape(len(x_axis), len(t_axis), -1)
    modes = 64 if name == "schrodinger" else None
    for j in (2, len(t_axis) // 2, len(t_axis) - 3):
        model = Interpolant(grid, x_axis, t_axis, j, modes)
        pts = torch.stack([torch.from_numpy(x_axis[:-1]),
                           torch.full((len(x_axis) - 1,), float(t_axis[j]), dtype=torch.float64)],
                          dim=1)
        f = p.field(model, pts, closed_form=False)
        res = max(float(r.detach().abs().max()) for r in p.residuals(f, pts))
        scale = max(float(f[out].d("t").detach().abs().max()) for out in p.outputs)
        assert res < 1e-4 * scale, (j, res, scale)


def test_schrodinger_split_step_agrees_with_exponential_time_differencing():
    """Two independent methods: Strang splitting (the reference) and ETDRK4."""
    t_end, n = math.pi / 2, 512
    ref = schrodinger_split_step(lambda x: 2 / np.cosh(x[:, 0]), t_end, n=n,
                                 dt=t_end / 4000)
    x = -5 + 10 * np.arange(n) / n
    k = 2 * np.pi * np.fft.fftfreq(n, d=10 / n)
    fields = etdrk4_periodic((-0.5j * k**2)[None], lambda h: 1j * np.abs(h) ** 2 * h,
                             (2 / np.cosh(x))[None].astype(complex), t_end / 2000, 2000, 10)
    h = np.stack([f[0] for f in fields], axis=1)[::2]
    h = np.concatenate([h, h[:1]])
    other = np.stack([h.real, h.imag], axis=-1).reshape(-1, 2)
    assert np.linalg.norm(other - ref.values) < 2e-5 * np.linalg.norm(ref.values)


def test_schrodinger_conserves_mass_and_breathes_with_period_half_pi():
    ref = get_problem("schrodinger").reference_solution()
    grid = ref.values.reshape(257, 201, 2)
    mass = (grid[:-1] ** 2).sum(axis=(0, 2)) * 10 / 256   # ∫|h|² dx = 4 ∫sech² = 8
    assert np.abs(mass - 8).max() < 1e-3
    peak = np.hypot(grid[..., 0], grid[..., 1]).max(axis=0)
    assert peak[100] == pytest.approx(4.0, abs=2e-3)      # t = π/4: the peak doubles
    # t = π/2: |h|² back to 4 sech² x (on the line; the periodic box shifts it by 2e-3)
    np.testing.assert_allclose(grid[:, -1, 0] ** 2 + grid[:, -1, 1] ** 2, grid[:, 0, 0] ** 2,
                               atol=0.02)


def test_gray_scott_spot_splits_into_two():
    ref = get_problem("gray-scott").reference_solution()
    v = ref.values.reshape(257, 201, 2)[..., 1]
    x = ref.axes[0]
    peaks = lambda s: [x[i] for i in range(1, 256)  # noqa: E731
                       if s[i] > max(s[i - 1], s[i + 1], 0.01)]
    assert len(peaks(v[:, 0])) == 1 and len(peaks(v[:, -1])) == 2
    assert v.min() > -1e-6 and ref.values[:, 0].max() <= 1 + 1e-9


@pytest.mark.parametrize("name, params, message", [
    ("gray-scott", {"feed": 0.0}, "feed must be a positive number"),
    ("schrodinger", {"t_end": -1.0}, "t_end must be a positive number"),
])
def test_bad_parameters_are_refused(name, params, message):
    with pytest.raises(GMNMError, match=message):
        get_problem(name, **params)
