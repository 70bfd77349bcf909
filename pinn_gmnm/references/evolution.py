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


def _on_axis(op: sp.spmatrix, axis: int, d: int) -> sp.csr_matrix:
    """``op``, an operator on the nodes of one axis, acting along ``axis`` of a grid of as
    many nodes on each of its ``d`` axes (the identity on the others)."""
    import scipy.sparse as sp

    term = sp.identity(1)
    for b in range(d):
        term = sp.kron(term, op if b == axis else sp.identity(op.shape[0]))
    return term.tocsr()


def _integrate(rhs: Callable[[float, np.ndarray], np.ndarray], jac: object, y0: np.ndarray,
               times: np.ndarray, rtol: float, n: int, d: int) -> np.ndarray:
    """y' = rhs(t, y) from the interior nodal values ``y0`` of a grid of ``n`` cells on
    each of ``d`` axes, by BDF with tolerance ``rtol`` and Jacobian ``jac``: the nodal
    values at ``times`` with u = 0 on the boundary nodes, shape (n + 1,)*d + (nt,)."""
    from scipy.integrate import solve_ivp

    # SciPy's BDF sometimes updates its difference table with inf − inf on a step it then
    # rejects (NumPy's "invalid value encountered in subtract"): not a failure — success
    # is checked and the results are tested against a Fourier series — so the warning is
    # not passed on to users who compute a reference.
    with np.errstate(invalid="ignore"):
        sol = solve_ivp(rhs, (float(times[0]), float(times[-1])), y0, method="BDF", jac=jac,
                        t_eval=times, rtol=rtol, atol=rtol * max(1e-300, np.abs(y0).max()))
    if not sol.success:
        raise GMNMError(f"method of lines failed: {sol.message}")
    full = np.zeros((n + 1,) * d + (len(times),))
    full[(slice(1, -1),) * d] = sol.y.reshape((n - 1,) * d + (len(times),))
    return full


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
    d = len(lo)
    if not 1 <= d <= 3:
        raise GMNMError(f"heat_box handles 1 to 3 space dimensions, got {d}")
    axes = [np.linspace(l, h, n + 1) for l, h in zip(lo, hi)]
    inner = [a[1:-1] for a in axes]
    # Kronecker sum: Δ = Σ_a I ⊗ … ⊗ D_a ⊗ … ⊗ I
    A = (alpha * sum(_on_axis(_laplacian_1d(n, (h - l) / n), a, d)
                     for a, (l, h) in enumerate(zip(lo, hi)))).tocsc()
    mesh = np.meshgrid(*inner, indexing="ij")
    y0 = np.asarray(u0(np.stack([m.ravel() for m in mesh], axis=1)), dtype=np.float64)
    times = np.linspace(0.0, t_end, nt)
    full = _integrate(lambda t, y: A @ y, A, y0, times, rtol, n, d)
    return Reference.on_grid(axes + [times], full,
                             source=f"method of lines, {n} cells per axis, BDF rtol {rtol:g}")


Flux = Callable[[np.ndarray, np.ndarray, np.ndarray],
               tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def _mol_square(nu: float, source: Flux, u0: Callable[[np.ndarray], np.ndarray],
                times: np.ndarray, n: int, rtol: float) -> np.ndarray:
    """u_t = ν Δu + F(u, u_x, u_y) on [0, 1]² with u = 0 on the edges by the method of
    lines (second-order central differences, ``n`` cells per axis; BDF with the exact
    sparse Jacobian): the (n + 1)² nodal values at ``times``, shape (n + 1, n + 1, nt)."""
    import scipy.sparse as sp

    h, m = 1.0 / n, n - 1
    first = sp.diags([-np.ones(m - 1), np.ones(m - 1)], [-1, 1]) / (2 * h)
    L = _on_axis(_laplacian_1d(n, h), 0, 2) + _on_axis(_laplacian_1d(n, h), 1, 2)
    Dx, Dy = _on_axis(first, 0, 2), _on_axis(first, 1, 2)
    inner = np.linspace(0.0, 1.0, n + 1)[1:-1]
    X, Y = np.meshgrid(inner, inner, indexing="ij")
    y0 = np.asarray(u0(np.stack([X.ravel(), Y.ravel()], axis=1)), dtype=np.float64)

    def rhs(_t: float, u: np.ndarray) -> np.ndarray:
        return nu * (L @ u) + source(u, Dx @ u, Dy @ u)[0]

    def jac(_t: float, u: np.ndarray) -> sp.csc_matrix:
        _, fu, fx, fy = source(u, Dx @ u, Dy @ u)
        return (nu * L + sp.diags(fu) + sp.diags(fx) @ Dx + sp.diags(fy) @ Dy).tocsc()

    return _integrate(rhs, jac, y0, times, rtol, n, 2)


def square_evolution(nu: float, source: Flux, u0: Callable[[np.ndarray], np.ndarray],
                     t_end: float, *, n: int = 64, nt: int = 11, rtol: float = 1e-10
                     ) -> Reference:
    """u_t = ν Δu + F(u, u_x, u_y) on [0, 1]², u = 0 on the edges, from u(x, y, 0) = u0
    (points (N, 2) → values (N,)), at the nodes of an (n + 1)² × ``nt`` grid over
    [0, 1]² × [0, t_end]. ``source(u, u_x, u_y)`` returns F and its partial derivatives
    ∂F/∂u, ∂F/∂u_x, ∂F/∂u_y (arrays over the nodes).

    The method of lines on ``n`` and 2``n`` cells per axis (:func:`_mol_square`),
    Richardson-extrapolated to fourth order at the coarse nodes, (4 U_2n − U_n)/3. The
    accuracy stated with it is the size of that correction relative to the solution, an
    estimate of the finer grid's error; the extrapolated values are more accurate."""
    times = np.linspace(0.0, t_end, nt)
    coarse = _mol_square(nu, source, u0, times, n, rtol)
    fine = _mol_square(nu, source, u0, times, 2 * n, rtol)[::2, ::2]
    u = (4 * fine - coarse) / 3
    change = float(np.linalg.norm(u - fine) / np.linalg.norm(u))
    s = np.linspace(0.0, 1.0, n + 1)
    return Reference.on_grid([s, s, times], u,
                             source=f"method of lines, {n} and {2 * n} cells per axis, "
                             f"Richardson-extrapolated, BDF rtol {rtol:g}").stating(
                                 f"relative L2 error below {change:.0e}")


def etdrk4_periodic(symbol: np.ndarray, nonlinear: Callable[[np.ndarray], np.ndarray],
                    v0: np.ndarray, dt: float, steps: int, every: int) -> list[np.ndarray]:
    """v_t = L v + N(v) for fields v of shape (k, n) (k coupled species on n periodic
    points), L diagonal in Fourier space with ``symbol`` (k, n) (real or complex), by
    the ETDRK4 scheme of Cox & Matthews with the coefficients computed by the contour
    integrals of Kassam & Trefethen (2005). ``nonlinear`` maps fields to fields in
    physical space. Returns the fields at step 0 and every ``every`` steps after it
    (complex arrays; take the real part of real fields)."""
    L = np.asarray(symbol)
    E, E2 = np.exp(dt * L), np.exp(dt * L / 2)
    # Means over circles of radius 1 around each dt·L: for real L the upper half circle
    # and the real part suffice (the integrands are real on the real axis).
    real = np.isrealobj(L)
    r = np.exp(1j * np.pi * (np.arange(1, 33) - 0.5) / 32) if real else \
        np.exp(2j * np.pi * (np.arange(1, 65) - 0.5) / 64)
    LR = dt * L[..., None] + r

    def contour(f: np.ndarray) -> np.ndarray:
        mean = dt * np.mean(f, axis=-1)
        return mean.real if real else mean

    Q = contour((np.exp(LR / 2) - 1) / LR)
    f1 = contour((-4 - LR + np.exp(LR) * (4 - 3 * LR + LR**2)) / LR**3)
    f2 = contour((2 + LR + np.exp(LR) * (-2 + LR)) / LR**3)
    f3 = contour((-4 - 3 * LR - LR**2 + np.exp(LR) * (4 - LR)) / LR**3)

    def N(vh):
        return np.fft.fft(nonlinear(np.fft.ifft(vh, axis=-1)), axis=-1)

    v = np.fft.fft(np.asarray(v0), axis=-1)
    out = [np.fft.ifft(v, axis=-1)]
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
            out.append(np.fft.ifft(v, axis=-1))
    return out


def _discretise(n: int, nx: int, length: float, x0: float, t_end: float, dt: float,
                nt: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The ``n`` periodic points from ``x0`` over ``length`` and their wave numbers, the
    steps of ``dt`` to ``t_end`` and how many lie between the ``nt`` output times
    (checking that ``nx`` output points and ``nt`` times fall on them)."""
    if n % nx:
        raise GMNMError(f"modes n = {n} must be a multiple of the output points nx = {nx}")
    x = x0 + length * np.arange(n) / n
    k = 2 * np.pi * np.fft.fftfreq(n, d=length / n)
    steps = round(t_end / dt)
    if abs(steps * dt - t_end) > 1e-9 * t_end or steps % (nt - 1):
        raise GMNMError(f"t_end / dt = {t_end / dt:g} must be a whole multiple of nt − 1 = {nt - 1}")
    return x, k, steps, steps // (nt - 1)


def allen_cahn_periodic(eps2: float, rate: float, u0: Callable[[np.ndarray], np.ndarray],
                        t_end: float, *, n: int = 2048, dt: float = 1e-3, nt: int = 201,
                        nx: int = 512, length: float = 2.0, x0: float = -1.0) -> Reference:
    """u_t = ε² u_xx + rate (u − u³), periodic on [x0, x0 + length), by a Fourier
    pseudo-spectral method with ``n`` modes and the ETDRK4 scheme
    (:func:`etdrk4_periodic`), time step ``dt``. Values on ``nx`` + 1 equally spaced
    points (the end point repeats the first; ``n`` a multiple of ``nx``) at ``nt``
    times."""
    x, k, steps, every = _discretise(n, nx, length, x0, t_end, dt, nt)
    u = np.asarray(u0(x[:, None]), dtype=np.float64)[None]
    fields = etdrk4_periodic(-eps2 * k[None] ** 2, lambda v: rate * (v.real - v.real**3), u,
                             dt, steps, every)
    return _periodic_grid([f.real[0] for f in fields], x, n // nx, x0 + length, t_end,
                          f"Fourier spectral ({n} modes), ETDRK4 dt={dt:g}")


def _periodic_grid(snapshots: list[np.ndarray], x: np.ndarray, stride: int, x_end: float,
                   t_end: float, source: str) -> Reference:
    """Snapshots (each (n,) or (n, k)) on every ``stride``-th of the periodic points
    ``x``, with the end point x_end repeating the first, as a grid reference over x and
    t."""
    U = np.stack(snapshots, axis=1)[::stride]          # (nx, nt) or (nx, nt, k)
    U = np.concatenate([U, U[:1]])
    xs = np.append(x[::stride], x_end)
    return Reference.on_grid([xs, np.linspace(0.0, t_end, len(snapshots))], U, source=source)


def schrodinger_split_step(h0: Callable[[np.ndarray], np.ndarray], t_end: float, *,
                           n: int = 512, dt: float = 1e-4 * np.pi / 2, nt: int = 201,
                           nx: int = 256, length: float = 10.0, x0: float = -5.0) -> Reference:
    """i h_t + ½ h_xx + |h|² h = 0, periodic on [x0, x0 + length), by the split-step
    Fourier method (Strang splitting, second order in ``dt``): half a step of the
    nonlinear flow h ← exp(i|h|² dt/2) h (exact: it keeps |h|), a full step of the linear
    flow ĥ ← exp(−i k² dt/2) ĥ in Fourier space (exact), another half nonlinear step.
    ``n`` modes; values (Re h, Im h) on ``nx`` + 1 equally spaced points (the end point
    repeats the first) at ``nt`` times."""
    x, k, steps, every = _discretise(n, nx, length, x0, t_end, dt, nt)
    linear = np.exp(-0.5j * k**2 * dt)
    h = np.asarray(h0(x[:, None]), dtype=np.complex128)
    out = [h]
    for s in range(1, steps + 1):
        h = h * np.exp(0.5j * dt * np.abs(h) ** 2)
        h = np.fft.ifft(linear * np.fft.fft(h))
        h = h * np.exp(0.5j * dt * np.abs(h) ** 2)
        if s % every == 0:
            out.append(h)
    return _periodic_grid([np.stack([f.real, f.imag], axis=1) for f in out], x, n // nx,
                          x0 + length, t_end, f"split-step Fourier ({n} modes), Strang dt={dt:.3g}")


def gray_scott_periodic(du: float, dv: float, feed: float, kill: float,
                        uv0: Callable[[np.ndarray], np.ndarray], t_end: float, *,
                        n: int = 512, dt: float = 0.1, nt: int = 201, nx: int = 256,
                        length: float = 2.0, x0: float = -1.0) -> Reference:
    """The Gray–Scott system u_t = du u_xx − u v² + feed (1 − u),
    v_t = dv v_xx + u v² − (feed + kill) v, periodic on [x0, x0 + length), by a Fourier
    pseudo-spectral method with ``n`` modes and ETDRK4 (:func:`etdrk4_periodic`), time step
    ``dt``; ``uv0`` maps points (n, 1) to the initial (u, v), shape (n, 2). Values (u, v)
    on ``nx`` + 1 equally spaced points (the end point repeats the first) at ``nt``
    times."""
    x, k, steps, every = _discretise(n, nx, length, x0, t_end, dt, nt)

    def reaction(w: np.ndarray) -> np.ndarray:
        u, v = w.real
        r = u * v * v
        return np.stack([feed * (1 - u) - r, r - (feed + kill) * v])

    w0 = np.asarray(uv0(x[:, None]), dtype=np.float64).T
    fields = etdrk4_periodic(np.stack([-du * k**2, -dv * k**2]), reaction, w0, dt, steps, every)
    return _periodic_grid([f.real.T for f in fields], x, n // nx, x0 + length, t_end,
                          f"Fourier spectral ({n} modes), ETDRK4 dt={dt:g}")
