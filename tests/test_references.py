"""Reference solutions: their own accuracy, the disk cache, and reading users' files."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from pinn_gmnm import GMNMError, Reference, get_problem, load_reference
from pinn_gmnm.references import cache_dir, cached
from pinn_gmnm.references.burgers import cole_hopf


def test_cole_hopf_reproduces_the_published_burgers_slope():
    """Basdevant et al. (1986): max |u_x(0, t)| = 152.00516 at t = 1.6037/π, ν = 0.01/π."""
    nu, t, h = 0.01 / math.pi, 1.6037 / math.pi, 1e-5
    slope = (cole_hopf(h, t, nu) - cole_hopf(-h, t, nu)) / (2 * h)
    assert abs(-slope - 152.00516) / 152.00516 < 2e-6
    # quadrature converged: halving the step changes nothing visible
    x, tt = np.linspace(-1, 1, 41)[:, None], np.linspace(0, 1, 11)[None, :]
    assert np.abs(cole_hopf(x, tt, nu) - cole_hopf(x, tt, nu, dz=0.025)).max() < 1e-12


def test_cole_hopf_satisfies_burgers_away_from_the_front():
    """Central differences of the quadrature solution satisfy the PDE."""
    nu, h = 0.05, 1e-3
    x, t = np.linspace(-0.9, 0.9, 19), 0.3
    u = lambda dx, dt: cole_hopf(x + dx, t + dt, nu)  # noqa: E731
    ut = (u(0, h) - u(0, -h)) / (2 * h)
    ux = (u(h, 0) - u(-h, 0)) / (2 * h)
    uxx = (u(h, 0) - 2 * u(0, 0) + u(-h, 0)) / h**2
    assert np.abs(ut + u(0, 0) * ux - nu * uxx).max() < 1e-4


def test_burgers_solution_is_evaluated_at_the_points_themselves():
    """Metrics use the quadrature at the evaluation points; a 257 × 101 grid interpolated
    linearly (what the catalogue used before) is off by 1e-4 and more next to the front."""
    from pinn_gmnm.evaluation import Evaluator

    p = get_problem("burgers")
    nu = p.params["nu"]
    ev = Evaluator.for_problem(p)
    assert ev.against == "exact solution" and len(ev.points) > 10_000
    x = ev.points
    torch.testing.assert_close(ev.exact[:, 0], torch.from_numpy(cole_hopf(x[:, 0].numpy(),
                                                                          x[:, 1].numpy(), nu)))
    gx, gt = np.linspace(-1, 1, 257), np.linspace(0, 1, 101)
    grid = Reference.on_grid([gx, gt], cole_hopf(gx[:, None], gt[None, :], nu))
    assert float((grid(x)[:, 0] - ev.exact[:, 0]).abs().max()) > 1e-4


def test_references_are_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("GMNM_PDE_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return Reference.on_grid([np.linspace(0, 1, 5)], np.arange(5.0), source="test")

    a = cached("demo", {"k": 1, "n": 5}, compute)
    b = cached("demo", {"k": 1, "n": 5}, compute)
    c = cached("demo", {"k": 2, "n": 5}, compute)
    assert len(calls) == 2 and cache_dir() == tmp_path
    assert len(list(tmp_path.glob("demo-*.npz"))) == 2
    np.testing.assert_array_equal(a.values, b.values)
    assert b.axes is not None and b.source == "test" and c.n_outputs == 1


def test_a_problem_asks_its_reference_function_once():
    from dataclasses import replace

    calls = []

    def compute():
        calls.append(1)
        return Reference.on_grid([np.linspace(-1, 1, 9)], np.zeros(9), source="test")

    p = replace(get_problem("poisson-1d"), exact=None, reference=compute)
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)[:, None]
    first, second = p.solution_values(x), p.solution_values(x)
    assert len(calls) == 1 and p.reference_solution() is p.reference_solution()
    torch.testing.assert_close(first, second)


def test_reference_files_in_every_format(tmp_path):
    x = np.linspace(0, 1, 6)
    X, Y = np.meshgrid(x, x, indexing="ij")
    pts = np.stack([X.ravel(), Y.ravel()], 1)
    vals = np.sin(pts[:, 0]) * pts[:, 1]
    table = np.column_stack([pts, vals])
    txt = tmp_path / "fem.txt"
    txt.write_text("% Model: demo.mph\n% Description: u\n% x  y  u\n"
                   + "\n".join(" ".join(f"{v:.17g}" for v in row) for row in table) + "\n")
    csv = tmp_path / "ref.csv"
    csv.write_text("x,y,u\n" + "\n".join(",".join(f"{v:.17g}" for v in row) for row in table))
    npz = tmp_path / "ref.npz"
    np.savez(npz, points=pts, values=vals)
    q = torch.tensor([[0.3, 0.7]], dtype=torch.float64)
    bilinear = 0.7 * (math.sin(0.2) + math.sin(0.4)) / 2  # the cell's corners: x 0.2, 0.4
    for f in (txt, csv, npz):  # the grid is recognised in every format
        ref = load_reference(f, dim=2)
        assert ref.dim == 2 and ref.n_outputs == 1 and len(ref.points) == 36
        assert ref.axes is not None, f
        assert float(ref(q)[0, 0]) == pytest.approx(bilinear, rel=1e-12), f
    scattered = tmp_path / "scattered.txt"
    rng = np.random.default_rng(0)
    p = rng.random((200, 2))
    scattered.write_text("\n".join(f"{a} {b} {a + b}" for a, b in p))
    ref = load_reference(scattered, dim=2)
    assert ref.axes is None and abs(float(ref(q)[0, 0]) - 1.0) < 1e-9  # linear data: exact


@pytest.mark.parametrize("text,message", [
    ("1 2\n3 4\n", "rows have 2 columns, expected 3"),
    ("% only comments\n", "no data rows"),
    ("1 2 a\n", "not a table of numbers"),
])
def test_bad_reference_files_are_explained(tmp_path, text, message):
    f = tmp_path / "bad.txt"
    f.write_text(text)
    with pytest.raises(GMNMError, match=message):
        load_reference(f, dim=2)
    with pytest.raises(GMNMError, match="reference file not found"):
        load_reference(tmp_path / "missing.txt", dim=2)


def _max_error(ref, exact) -> float:
    x, v = ref.known()
    return float((v[:, 0] - exact(x)).abs().max())


@pytest.mark.parametrize("which", ["holes", "lshape"])
def test_finite_differences_converge_at_second_order(which):
    """A harmonic function as manufactured solution on the catalogue's own domains: the
    error falls about 4× per halving of h (Shortley–Weller keeps curved rims second order)."""
    from pinn_gmnm import Polygon
    from pinn_gmnm.problems.elliptic import L_SHAPE, plate_with_holes
    from pinn_gmnm.references.elliptic import solve_dirichlet

    geometry = plate_with_holes()[0] if which == "holes" else Polygon(L_SHAPE)
    exact = lambda x: torch.exp(x[:, 0]) * torch.sin(x[:, 1]) + x[:, 0] * x[:, 1]  # noqa: E731
    e1, e2 = (_max_error(solve_dirichlet(geometry, 0.0, exact, n=n), exact) for n in (32, 64))
    assert e2 < 1e-4 and e1 / e2 > 3.0, (e1, e2)


def test_helmholtz_finite_differences_match_the_exact_solution():
    from pinn_gmnm.references.elliptic import solve_dirichlet

    p = get_problem("helmholtz", k=3.0, a2=2.0)
    f = lambda x: ((1 + 4) * math.pi**2 - 9.0) * p.exact_values(x)[:, 0]  # noqa: E731
    ref = solve_dirichlet(p.geometry, f, 0.0, n=128, k2=9.0)
    assert _max_error(ref, lambda x: p.exact_values(x)[:, 0]) < 2e-3


@pytest.mark.parametrize("name", ["poisson-lshape", "poisson-holes"])
def test_catalogue_fd_references_are_converged(name):
    """Coarser grids approach the catalogue's reference (relative L2 over the common
    nodes) at about second order; the L-shape's corner singularity lowers the rate."""
    from pinn_gmnm.references.elliptic import solve_dirichlet

    p = get_problem(name)
    ref = p.reference_solution()
    fine = ref.values.reshape(len(ref.axes[0]), len(ref.axes[1]))
    n_ref = len(ref.axes[0]) - 1
    g = None
    if name == "poisson-holes":
        holes = [c for c in p.conditions if c.label == "holes"][0]
        g = lambda x: torch.where(holes.on(x), 1.0, 0.0).double()  # noqa: E731
    errors = []
    for n in (32, 64):
        coarse = solve_dirichlet(p.geometry, 1.0 if name == "poisson-lshape" else 0.0,
                                 g if g is not None else 0.0, n=n)
        c = coarse.values.reshape(n + 1, n + 1)
        f = fine[::n_ref // n, ::n_ref // n]
        ok = np.isfinite(c) & np.isfinite(f)
        errors.append(np.linalg.norm((c - f)[ok]) / np.linalg.norm(f[ok]))
    assert errors[1] < 5e-3 and errors[0] / errors[1] > 2.5, errors


def test_heat_references_match_the_fourier_series():
    """The catalogue's series and the method of lines (64 cells) against the series summed
    independently (99 odd modes is plenty for t ≥ 0.05)."""
    from pinn_gmnm.references.evolution import heat_box

    p = get_problem("heat-2d")
    alpha = p.params["alpha"]
    k = np.arange(1, 200, 2)[:, None]

    def series(s, t):  # 4s(1 − s) = Σ_k odd 32/(kπ)³ sin(kπs)
        return (32 / (k * np.pi) ** 3 * np.sin(k * np.pi * s)
                * np.exp(-alpha * (k * np.pi) ** 2 * t)).sum(axis=0)

    u0 = lambda x: 16 * x[:, 0] * (1 - x[:, 0]) * x[:, 1] * (1 - x[:, 1])  # noqa: E731
    for ref, tol in ((p.reference_solution(), 1e-12), (heat_box((0, 0), (1, 1), alpha, u0, 1.0), 2e-4)):
        x, v = ref.points, ref.values[:, 0]
        later = x[:, 2] >= 0.05
        exact = series(x[later, 0], x[later, 2]) * series(x[later, 1], x[later, 2])
        assert np.abs(v[later] - exact).max() < tol
    x, v = p.reference_solution().points, p.reference_solution().values[:, 0]
    start = x[:, 2] == 0
    assert np.abs(v[start] - u0(x[start])).max() < 1e-10


def stated(ref) -> float:
    """The relative L2 error a reference states (``… below 3e-03``)."""
    return float(re.search(r"below ([0-9.e+-]+)", ref.source).group(1))


def test_square_evolution_is_extrapolated_and_states_an_honest_bound():
    """Without a source term it solves heat-2d: extrapolated from 32² and 64² cells it
    matches the Fourier series to 3e-7 (relative L2, measured), far below the 9e-5 it
    states (the 64² grid's own error, about). With Fisher–KPP's reaction, the catalogue's
    (64² and 128²) and a coarser one (32² and 64²) agree to 1.4e-5 (measured), where the
    coarser one states 9e-4: the extrapolation is of fourth order, the bound conservative."""
    from pinn_gmnm.references.evolution import heat_parabolic_bump, square_evolution

    alpha = get_problem("heat-2d").params["alpha"]
    none = lambda u, ux, uy: (0 * u, 0 * u, 0 * u, 0 * u)  # noqa: E731
    u0 = lambda x: 16 * x[:, 0] * (1 - x[:, 0]) * x[:, 1] * (1 - x[:, 1])  # noqa: E731
    ref = square_evolution(alpha, none, u0, 1.0, n=32)
    series = heat_parabolic_bump(alpha, 1.0, n=32, nt=11).values
    gap = np.linalg.norm(ref.values - series) / np.linalg.norm(series)
    assert "Richardson" in ref.source and gap < stated(ref) / 30, (gap, ref.source)

    p = get_problem("fisher-2d")
    fine = p.reference_solution()
    source = lambda u, ux, uy: (u * (1 - u), 1 - 2 * u, 0 * u, 0 * u)  # noqa: E731
    coarse = square_evolution(p.params["d"], source, lambda x: np.exp(
        -((x[:, 0] - 0.5) ** 2 + (x[:, 1] - 0.5) ** 2) / 0.01), 2.0, n=32)
    on_coarse = fine.values.reshape(65, 65, 11)[::2, ::2].reshape(-1, 1)
    gap = np.linalg.norm(coarse.values - on_coarse) / np.linalg.norm(on_coarse)
    assert gap < stated(coarse) / 30 and stated(fine) < stated(coarse), (gap, coarse.source)


def test_allen_cahn_spectral_reference_is_converged():
    from pinn_gmnm.references.evolution import allen_cahn_periodic

    p = get_problem("allen-cahn")
    fine = p.reference_solution()
    u0 = lambda x: x[:, 0] ** 2 * np.cos(np.pi * x[:, 0])  # noqa: E731
    coarse = allen_cahn_periodic(1e-4, 5.0, u0, 1.0, n=1024)
    gap = np.abs(coarse.values - fine.values).max()
    assert gap < 1e-3, gap
    assert np.abs(fine.values).max() < 1.01  # the phases stay within [−1, 1]


def test_richardson_extrapolation_beats_the_finer_grid():
    """On the plate with holes, extrapolating from 65² and 129² grids lands much closer to
    a manufactured harmonic solution than the 129² grid alone (relative L2: measured 8e-8
    against 5e-7; 7e-9 from 129² and 257²)."""
    from pinn_gmnm.problems.elliptic import plate_with_holes
    from pinn_gmnm.references.elliptic import solve_dirichlet, solve_dirichlet_extrapolated

    geometry = plate_with_holes()[0]
    exact = lambda x: torch.exp(x[:, 0]) * torch.sin(x[:, 1]) + x[:, 0] * x[:, 1]  # noqa: E731

    def rel_l2(ref):
        x, v = ref.known()
        return float((v[:, 0] - exact(x)).norm() / exact(x).norm())

    extrapolated = solve_dirichlet_extrapolated(geometry, 0.0, exact, n=64)
    assert len(extrapolated.axes[0]) == 65 and "Richardson" in extrapolated.source
    plain = rel_l2(solve_dirichlet(geometry, 0.0, exact, n=128))
    assert rel_l2(extrapolated) < plain / 5, (rel_l2(extrapolated), plain)


def test_thinning_a_large_reference_keeps_every_time_level():
    """A stride of 3 over an (x, y, t) grid with 9 time levels kept only 3 of them."""
    from pinn_gmnm.evaluation import thinned

    t = torch.cartesian_prod(torch.arange(30.0), torch.arange(30.0), torch.arange(9.0))[:, 2]
    keep = thinned(len(t), 2700)
    assert len(keep) == 2700 and len(set(keep.tolist())) == 2700
    counts = torch.bincount(t[keep].long(), minlength=9)
    assert counts.min() > 0.7 * 300 and counts.max() < 1.3 * 300
    assert torch.equal(thinned(10, 20), torch.arange(10))
    assert torch.equal(thinned(len(t), 2700), keep)  # the same points every time
