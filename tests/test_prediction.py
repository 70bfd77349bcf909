"""Using a result: ``load_solution`` and ``gmnm-pde predict`` give back exactly what the
trained model computes, for every model and for 2-D, space-time and system problems; bad
files get one-line errors."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pinn_gmnm import GMNMError, load_reference, load_solution
from pinn_gmnm.artifacts import load_checkpoint, save_checkpoint
from pinn_gmnm.cli.main import app
from pinn_gmnm.config import RunConfig
from pinn_gmnm.run import run

runner = CliRunner()

SYSTEM = textwrap.dedent('''
    import math
    import torch
    from pinn_gmnm import Dirichlet, Interval, Problem

    def pair() -> Problem:
        """u' = v, -v' = pi^2 sin(pi x) on [0, 1], u = 0 at the ends."""
        def exact(x):
            return torch.stack([torch.sin(math.pi * x[:, 0]),
                                math.pi * torch.cos(math.pi * x[:, 0])], dim=1)
        return Problem(Interval(0, 1),
                       lambda u, x: [u.d("x") - u["v"](),
                                     -u["v"].d("x") - math.pi**2 * torch.sin(math.pi * x[:, 0])],
                       [Dirichlet(0.0, output="u")], outputs=("u", "v"), exact=exact,
                       linear=True)
''')


def train(runs: Path, problem: str, **settings) -> tuple:
    """A quick CPU run; returns its trained model's function and its run directory."""
    config = RunConfig(problem=problem, interior=128, boundary=32, device="cpu", **settings)
    result = run(config, out=runs)
    return result.solution, result.directory


def some_points(problem, n: int = 50) -> torch.Tensor:
    """Points inside the bounding box, float64 (outside the domain too on non-boxes)."""
    lo, hi = (torch.tensor(b, dtype=torch.float64) for b in problem.geometry.bbox)
    g = torch.Generator().manual_seed(3)
    return lo + (hi - lo) * torch.rand(n, problem.dim, generator=g, dtype=torch.float64)


def predict(*args: str):
    return runner.invoke(app, ["predict", *map(str, args)])


@pytest.mark.parametrize("problem, settings, columns", [
    ("poisson", {"model_options": {"components": 60}, "method": "lstsq"}, ["x", "y", "u"]),
    ("heat-1d", {"model_options": {"components": 60}, "method": "lstsq"}, ["x", "t", "u"]),
    ("system.py:pair", {"model_options": {"components": 20}, "method": "lstsq"},
     ["x", "u", "v"]),
])
def test_round_trip_through_files(runs: Path, tmp_path: Path, problem, settings, columns):
    if problem.startswith("system.py"):
        Path("system.py").write_text(SYSTEM)
    trained, directory = train(runs, problem, **settings)
    loaded = load_solution(directory)
    x = some_points(loaded.problem)
    expected = trained(x)
    assert expected.shape == (len(x), len(columns) - loaded.problem.dim)
    assert torch.equal(loaded(x), expected)
    assert loaded.variables + loaded.outputs == tuple(columns)
    assert loaded.metrics["rel_l2"] == pytest.approx(trained.metrics["rel_l2"])

    # Text with comments in, CSV out: every digit survives.
    text = tmp_path / "points.txt"
    text.write_text("% exported points\n# x y\n" + "\n".join(" ".join(f"{c:.17g}" for c in row)
                                                          for row in x.tolist()) + "\n")
    r = predict(directory, "--points", text, "--out", tmp_path / "out.csv")
    assert r.exit_code == 0, r.output
    header, *rows = (tmp_path / "out.csv").read_text().splitlines()
    assert header.split(",") == columns
    table = np.array([[float(c) for c in row.split(",")] for row in rows])
    np.testing.assert_array_equal(table[:, :loaded.problem.dim], x.numpy())
    np.testing.assert_array_equal(table[:, loaded.problem.dim:], expected.numpy())

    # CSV with a header in, .npz out, and the .npz reads back as a reference of the problem.
    csv_points = tmp_path / "points.csv"
    np.savetxt(csv_points, x.numpy(), fmt="%.17g", delimiter=",",
               header=",".join(loaded.variables), comments="")
    r = predict(directory, "--points", csv_points, "--out", tmp_path / "out.npz")
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "out.npz") as z:
        np.testing.assert_array_equal(z["values"], expected.numpy())
        assert list(z["columns"]) == columns
    ref = load_reference(tmp_path / "out.npz", loaded.problem.dim, len(loaded.outputs))
    # (1D points are read as a grid, sorted: compare the reference where it was given)
    np.testing.assert_allclose(ref(x).numpy(), expected.numpy(), rtol=1e-13, atol=1e-13)

    # Without --out: CSV on standard output.
    r = predict(directory, "--points", tmp_path / "out.npz")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == ",".join(columns) and len(r.stdout.splitlines()) == 51


@pytest.mark.parametrize("model, options", [
    ("gmnm", {"model_options": {"components": 10}}),
    ("mlp", {"model_options": {"width": 8, "depth": 2}}),
    ("pinn", {"model_options": {"width": 8, "depth": 1}}),
    ("kan", {"model_options": {"width": 3, "depth": 1}}),
    ("gmnm", {"model_options": {"components": 10}, "hard": True}),
    ("mlp", {"model_options": {"width": 8, "depth": 1}, "dtype": "float32"}),
])
def test_every_model_loads_with_its_trained_weights(runs: Path, model, options):
    trained, directory = train(runs, "poisson-1d", model=model, method="adam-lbfgs",
                               adam_steps=12, lbfgs_steps=3, **options)
    loaded = load_solution(directory)
    x = some_points(loaded.problem)
    assert loaded.dtype == next(trained.model.parameters()).dtype
    assert torch.equal(loaded(x), trained(x))
    assert not loaded.model.training
    # numpy in, numpy out (float64); a 1-D problem also takes a flat array of coordinates
    np.testing.assert_array_equal(loaded(x[:, 0].numpy()), trained(x).double().numpy())


def test_a_run_trained_on_a_gpu_loads_on_the_cpu(runs: Path):
    """The checkpoint is read onto the CPU, and the device a run asked for plays no part."""
    trained, directory = train(runs, "poisson-1d", model_options={"components": 10},
                               method="lstsq")
    payload = load_checkpoint(directory / "model.pt")
    payload["config"]["device"] = "cuda:3"
    extra = {k: v for k, v in payload.items() if k not in ("format", "state_dict")}
    model = trained.model
    save_checkpoint(directory / "model.pt", model, extra)
    loaded = load_solution(directory)
    assert next(loaded.model.parameters()).device.type == "cpu"
    x = some_points(loaded.problem)
    assert torch.equal(loaded(x), trained(x))


def test_loading_leaves_the_random_state_alone(runs: Path):
    _, directory = train(runs, "poisson-1d", model_options={"components": 10}, method="lstsq")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    load_solution(directory)
    assert torch.equal(torch.rand(3), expected)


def test_a_run_whose_reference_file_moved_still_loads(runs: Path, tmp_path: Path):
    ref = tmp_path / "ref.txt"
    xs = np.linspace(-1, 1, 41)
    ref.write_text("\n".join(f"{a} {np.sin(np.pi * a)}" for a in xs))
    _, directory = train(runs, "poisson-1d", model_options={"components": 10}, method="lstsq",
                         reference=str(ref))
    ref.unlink()
    loaded = load_solution(directory)
    assert loaded(np.array([[0.5]])).shape == (1, 1)


@pytest.fixture(scope="module")
def poisson_run(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    return train(runs, "poisson", model_options={"components": 20}, method="lstsq")[1]


@pytest.mark.parametrize("content, message", [
    ("1 2 3\n4 5 6\n", "rows of 3 columns, but problem 'poisson' is 2-D"),
    ("0.5\n0.1\n", "rows of 1 columns, but problem 'poisson' is 2-D"),
    ("% only a comment\n", "no data rows"),
    ("a b\nc d\n", "not a table of numbers"),
    ("0 0\n1\n", "points.txt: "),  # ragged rows: the shared reader words this one
    ("0 nan\n", "must be finite"),
])
def test_bad_points_files_are_one_line_errors(poisson_run: Path, tmp_path: Path, content, message):
    points = tmp_path / "points.txt"
    points.write_text(content)
    r = predict(poisson_run, "--points", points)
    assert r.exit_code == 2, r.output
    assert message in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_bad_npz_and_paths_are_one_line_errors(poisson_run: Path, tmp_path: Path):
    np.savez(tmp_path / "other.npz", coords=np.zeros((3, 2)))
    (tmp_path / "fake.npz").write_text("0 0\n")
    np.save(tmp_path / "single.npy", np.zeros((3, 2)))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    np.savez(tmp_path / "three.npz", points=np.zeros((3, 3)))
    empty = tmp_path / "empty"
    empty.mkdir()
    good = tmp_path / "good.txt"
    good.write_text("0 0\n")
    cases = [
        ((poisson_run, "--points", tmp_path / "other.npz"), "needs an array 'points'"),
        ((poisson_run, "--points", tmp_path / "fake.npz"), "not a readable .npz"),
        ((poisson_run, "--points", tmp_path / "single.npz"), "not an .npz archive"),
        ((poisson_run, "--points", tmp_path / "three.npz"), "rows of 3 columns"),
        ((poisson_run, "--points", tmp_path / "missing.txt"), "points file not found"),
        ((tmp_path / "nowhere", "--points", good), "run directory not found"),
        ((empty, "--points", good), "holds no model.pt"),
        ((poisson_run, "--points", good, "--out", tmp_path / "u.json"), "unknown format '.json'"),
    ]
    for args, message in cases:
        r = predict(*args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "u.json").exists()


def test_points_outside_the_domain_are_predicted_with_a_note(poisson_run: Path, tmp_path: Path):
    points = tmp_path / "points.csv"
    points.write_text("x,y\n0,0\n3,0\n")
    r = predict(poisson_run, "--points", points)
    assert r.exit_code == 0, r.output
    assert "1 of 2 points lie outside the domain" in r.stderr
    assert len(r.stdout.splitlines()) == 3


def test_weights_that_do_not_fit_the_config_are_refused(poisson_run: Path, tmp_path: Path):
    config = json.loads((poisson_run / "config.json").read_text())
    config.pop("version")
    # not the number of Gaussians: growth saves more than the config builds, and they load
    config["model_options"]["projections"] = 1
    payload = load_checkpoint(poisson_run / "model.pt")
    extra = {k: v for k, v in payload.items() if k not in ("format", "state_dict")}
    extra["config"] = config
    edited = tmp_path / "edited"
    edited.mkdir()
    model = load_solution(poisson_run).model
    save_checkpoint(edited / "model.pt", model, extra)
    with pytest.raises(GMNMError, match="does not fit the model its config describes"):
        load_solution(edited)
