"""Reference solutions: their own accuracy, the disk cache, and reading users' files."""

from __future__ import annotations

import math

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


def test_burgers_reference_meets_its_conditions():
    p = get_problem("burgers")
    ref = p.reference_solution()
    x, v = ref.known()
    assert ref.dim == 2 and len(x) == 257 * 101
    ends = (x[:, 0].abs() - 1).abs() < 1e-12
    assert v[ends].abs().max() < 1e-12
    start = x[:, 1] == 0
    torch.testing.assert_close(v[start, 0], -torch.sin(math.pi * x[start, 0]))
    # interpolation between nodes, NaN outside
    q = torch.tensor([[0.5, 0.25], [3.0, 0.5]], dtype=torch.float64)
    got = ref(q)
    assert abs(float(got[0, 0]) - float(cole_hopf(0.5, 0.25, p.params["nu"]))) < 1e-3
    assert math.isnan(float(got[1, 0]))


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
    for f in (txt, csv, npz):
        ref = load_reference(f, dim=2)
        assert ref.dim == 2 and ref.n_outputs == 1 and len(ref.points) == 36
        assert abs(float(ref(q)[0, 0]) - math.sin(0.3) * 0.7) < 2e-2, f
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
