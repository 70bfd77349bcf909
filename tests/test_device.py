"""Devices: clear errors for devices that are not there; on a CUDA machine, every path
runs on the GPU and agrees with the CPU."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from pinn_gmnm import GMNM, MLP, Collocation, LeastSquares, get_problem, solve
from pinn_gmnm.cli.main import app
from pinn_gmnm.run import resolve_device

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_picks_what_is_there():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("name,message", [
    ("mps", "unsupported device 'mps'"),
    ("banana", "unknown device 'banana'"),
    ("cuda:99", "cuda:99"),
])
def test_bad_devices_are_clear(name, message):
    r = CliRunner().invoke(app, ["solve", "poisson", "--device", name, "--points", "64", "-q"])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_asking_for_cuda_without_a_gpu_is_clear():
    r = CliRunner().invoke(app, ["solve", "poisson", "--device", "cuda", "-q"])
    assert r.exit_code == 2 and "sees no CUDA GPU" in r.output


@cuda
@pytest.mark.parametrize("make", [lambda: GMNM(2, 2, 16), lambda: MLP(2, 2, 8, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_derivative_engines_on_gpu_match_cpu(make, dtype):
    model = make().to(dtype)
    x = torch.rand(64, 2, dtype=dtype) * 2 - 1
    axes_list = [(), (0,), (1,), (0, 1), (1, 1)]

    def everything(m, pts):  # engines may compute lazily: evaluate before moving the model
        eng = m.derivative_engine(pts)
        return [eng.partial(None, a).cpu() for a in axes_list] + [eng.laplacian(0, (0, 1)).cpu()]

    cpu = everything(model, x)
    gpu = everything(model.to("cuda"), x.cuda())
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for a, b in zip(gpu, cpu):
        torch.testing.assert_close(a, b, **tol)


@cuda
@pytest.mark.parametrize("solver", ["dense", "streamed", "sparse"])
def test_least_squares_solve_on_gpu_matches_cpu(solver):
    """Every least-squares solver runs on CUDA tensors (sparse builds and solves its rows
    on the CPU and hands the head back on the GPU) and agrees with the CPU."""
    p = get_problem("poisson")
    results = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        s = solve(p, GMNM(2, components=100, bounds=p.geometry.bbox, width_factor=1.0),
                  stages=[LeastSquares(solver=solver)], device=device,
                  collocation=Collocation(800, 200))
        assert next(s.model.parameters()).device.type == device
        results.append(s.metrics["rel_l2"])
    assert abs(results[0] - results[1]) <= 1e-3 * results[0]


@cuda
def test_gauss_newton_step_on_gpu_matches_cpu():
    from pinn_gmnm.distributed import SERIAL
    from pinn_gmnm.training import Loss, sample_batch
    from pinn_gmnm.training.gauss_newton import DampedSolver
    from pinn_gmnm.training.jacobian import residual_jacobian

    p = get_problem("poisson")
    steps = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = GMNM(2, components=20, bounds=p.geometry.bbox).double().to(device)
        loss = Loss(p, sample_batch(p, Collocation(300, 80), seed=0).to(torch.float64, device))
        params = [q for q in model.parameters() if q.requires_grad]
        r, J = residual_jacobian(loss, model, params)
        steps.append(DampedSolver.reduced(J, r, SERIAL).step(1e-3)[0].cpu())
    torch.testing.assert_close(steps[1], steps[0], rtol=1e-7, atol=1e-9)


@cuda
def test_cli_solve_on_gpu(tmp_path):
    r = CliRunner().invoke(app, ["solve", "poisson", "--device", "cuda", "--out", str(tmp_path), "-q"])
    assert r.exit_code == 0, r.output
    assert "cuda" in r.output


@cuda
@pytest.mark.parametrize("problem", ["front", "poisson-lshape", "poisson-holes", "heat-1d",
                                     "burgers", "kovasznay", "strip"])
def test_default_runs_on_gpu(problem, tmp_path):
    """The default path of each kind of problem (growth with local points, the corners'
    grading, the layout round a non-box domain or a long box, marching, compact slabs,
    Gauss-Newton) runs on the GPU: every stage keeps its tensors on the model's device.
    Growth once built new Gaussians on the CPU and every GPU run that grew failed."""
    from pathlib import Path

    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.run import run

    if problem == "strip":  # a long box: the round layout in the problem's own units
        problem = f"{Path(__file__).parents[1] / 'benchmarks' / 'untuned_problems.py'}:strip_bump"
    config = RunConfig(problem=problem, budget=4.0, device="cuda", seed=0)
    result = run(config, out=tmp_path, name="gpu")
    model = result.solution.model
    assert next(model.parameters()).device.type == "cuda"
    assert result.solution.status in ("completed", "out-of-budget")
    x = torch.rand(50, result.solution.problem.dim, dtype=torch.float64)
    assert torch.isfinite(result.solution(x)).all() and result.solution(x).device.type == "cpu"
