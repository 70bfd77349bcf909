"""Time-dependent references: the heat equation by its Fourier series (product initial
data) or by the method of lines, and a Fourier spectral method with fourth-order
exponential time differencing for Allen–Cahn."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..errors import GMNMError
from .base import Reference

if TYPE_CHECKING:
    import scipy.sparse as sp


def _laplacian_1d(n: int, h: float) -> sp.csr_matrix:
    """Second differences on the n − 1 interior nodes of n cells (Dirichlet ends)."""
    import scipy.sparse as sp  # scipy is imported where a reference is computed

    m = n - 1
    return sp.diags([np.ones(m - 1), -2 * np.ones(m), np.ones(m - 1)], [-1, 0, 1]) / (h * h)


def heat_parabolic_bump(alpha: float, t_end: float, *, n: int = 64, nt: int = 21,
                        modes: int = 100_000) -> Reference:
    """u_t = α Δu on [0, 1]^2, u = 0 on the edges, u(x, y, 0) = 16 x(1 − x) y(1 − y), by its
    Fourier series at the nodes of an (n + 1)² × ``nt`` grid over [0, 1]² × [0, t_end]:
    u = S(x, t) S(y, t) with

        S(s, t) = Σ_{k odd} 32/(kπ)³ sin(kπs) exp(−α k²π² t)      (= 4s(1 − s) at t = 0),

    summed over the odd k below ``modes``: the neglected terms are below
    32/(π³ · 2 modes²) ≈ 5e-11 at t = 0, and decay with t."""
    s = np.linspace(0.0, 1.0, n + 1)
    times = np.linspace(0.0, t_end, nt)
    S = np.zeros((n + 1, nt))
    for k0 in range(1, modes, 2 * 8192):  # odd k in blocks, to bound the memory
        k = np.arange(k0, min(modes, k0 + 2 * 8192), 2, dtype=np.float64)
        amp = 32 / (k * np.pi) ** 3
        decay = np.exp(-alpha * (k[:, None] * np.pi) ** 2 * times[None, :])
        S += np.sin(np.pi * s[:, None] * k[None, :]) @ (amp[:, None] * decay)
    u = S[:, None, :] * S[None, :, :]
    return Reference.on_grid([s, s, times], u,
                             source=f"Fourier series ({modes // 2} odd modes per axis)")


def heat_box(lo: tuple[float, ...], hi: tuple[float, ...], alpha: float,
             u0: Callable[[np.ndarray], np.ndarray], t_end: float, *, n: int = 64,
             nt: int = 21, rtol: float = 1e-10) -> Reference:
    """u_t = α Δu on the box [lo, hi] (1-3 dimensions) with u = 0 on its boundary, by the
    method of lines: second-order central differences on a grid of ``n`` cells per axis,
    integrated in time by an implicit (BDF) solver with tolerance ``rtol``. Values at
    ``nt`` equally spaced times including 0 and ``t_end``; ``u0`` maps points (N, d) to
    values (N,)."""
    import scipy.sparse as sp
    from scipy.integrate import solve_ivp

    d = len(lo)
    if not 1 <= d <= 3:
        raise GMNMError(f"heat_box handles 1 to 3 space dimensions, got {d}")
    axes = [np.linspace(l, h, n + 1) for l, h in zip(lo, hi)]
    inner = [a[1:-1] for a in axes]
    mats = [_laplacian_1d(n, (h - l) / n) for l, h in zip(lo, hi)]
    eye = [sp.identity(n - 1) for _ in range(d)]
    L = sp.csr_matrix(((n - 1) ** d, (n - 1) ** d))
    for a in range(d):  # Kronecker sum: Δ = Σ_a I ⊗ … ⊗ D_a ⊗ … ⊗ I
        term = sp.identity(1)
        for b in range(d):
            term = sp.kron(term, mats[b] if b == a else eye[b])
        L = L + term
    A = (alpha * L).tocsc()
    mesh = np.meshgrid(*inner, indexing="ij")
    y0 = np.asarray(u0(np.stack([m.ravel() for m in mesh], axis=1)), dtype=np.float64)
    times = np.linspace(0.0, t_end, nt)
    sol = solve_ivp(lambda t, y: A @ y, (0.0, t_end), y0, method="BDF", t_eval=times,
                    jac=A, rtol=rtol, atol=rtol * max(1e-300, np.abs(y0).max()))
    if not sol.success:
        raise GMNMError(f"method of lines failed: {sol.message}")
    full = np.zeros((n + 1,) * d + (nt,))
    full[(slice(1, -1),) * d] = sol.y.reshape((n - 1,) * d + (nt,))
    return Reference.on_grid(axes + [times], full,
                             source=f"method of lines, {n} cells per axis, BDF rtol {rtol:g}")


def allen_cahn_periodic(eps2: float, rate: float, u0: Callable[[np.ndarray], np.ndarray],
                        t_end: float, *, n: int = 2048, dt: float = 1e-3, nt: int = 201,
                        nx: int = 512, length: float = 2.0, x0: float = -1.0) -> Reference:
    """u_t = ε² u_xx + rate (u − u³), periodic on [x0, x0 + length), by a Fourier
    pseudo-spectral method with ``n`` modes and the ETDRK4 scheme of Cox & Matthews in
    the contour-integral form of Kassam & Trefethen (2005), time step ``dt``. Values on
    ``nx`` + 1 equally spaced points (the end point repeats the first; ``n`` a multiple
    of ``nx``) at ``nt`` times."""
    if n % nx:
        raise GMNMError(f"modes n = {n} must be a multiple of the output points nx = {nx}")
    x = x0 + length * np.arange(n) / n
    k = 2 * np.pi * np.fft.fftfreq(n, d=length / n)
    Lk = -eps2 * k**2
    E, E2 = np.exp(dt * Lk), np.exp(dt * Lk / 2)
    r = np.exp(1j * np.pi * (np.arange(1, 33) - 0.5) / 32)
    LR = dt * Lk[:, None] + r[None, :]
    Q = dt * np.real(np.mean((np.exp(LR / 2) - 1) / LR, axis=1))
    f1 = dt * np.real(np.mean((-4 - LR + np.exp(LR) * (4 - 3 * LR + LR**2)) / LR**3, axis=1))
    f2 = dt * np.real(np.mean((2 + LR + np.exp(LR) * (-2 + LR)) / LR**3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * LR - LR**2 + np.exp(LR) * (4 - LR)) / LR**3, axis=1))

    def N(vh):
        v = np.real(np.fft.ifft(vh))
        return np.fft.fft(rate * (v - v**3))

    steps = round(t_end / dt)
    if abs(steps * dt - t_end) > 1e-9 * t_end or steps % (nt - 1):
        raise GMNMError(f"t_end / dt = {t_end / dt:g} must be a whole multiple of nt − 1 = {nt - 1}")
    every = steps // (nt - 1)
    v = np.fft.fft(np.asarray(u0(x[:, None]), dtype=np.float64))
    out = [np.real(np.fft.ifft(v))]
    for s in range(1, steps + 1):
        Nv = N(v)
        a = E2 * v + Q * Nv
        Na = N(a)
        b = E2 * v + Q * Na
        Nb = N(b)
        c = E2 * a + Q * (2 * Nb - Nv)
        Nc = N(c)
        v = E * v + Nv * f1 + 2 * (Na + Nb) * f2 + Nc * f3
        if s % every == 0:
            out.append(np.real(np.fft.ifft(v)))
    U = np.array(out).T[::n // nx]           # (nx, nt)
    U = np.vstack([U, U[:1]])                # periodic end point
    xs = np.append(x[::n // nx], x0 + length)
    return Reference.on_grid([xs, np.linspace(0.0, t_end, nt)], U,
                             source=f"Fourier spectral ({n} modes), ETDRK4 dt={dt:g}")
