"""What importing the package costs: the public names resolve on first use, and the light
modules, the CLI's help and the catalogue do not import the heavy libraries (torch takes
about 2 s to import, scipy.stats and matplotlib about 0.5 s each)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import pinn_gmnm


def _fresh(code: str) -> None:
    """Run ``code`` in a fresh interpreter (nothing imported yet); fail with its stderr."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_public_name_imports_from_the_top_level_in_a_fresh_process():
    names = ", ".join(pinn_gmnm.__all__)
    _fresh(f"from pinn_gmnm import {names}\n"
           "import pinn_gmnm\n"
           "assert all(n in dir(pinn_gmnm) for n in pinn_gmnm.__all__)")


@pytest.mark.parametrize("name", pinn_gmnm.__all__)
def test_a_public_name_is_the_object_its_module_defines(name: str):
    module = importlib.import_module(pinn_gmnm._WHERE[name], "pinn_gmnm")
    assert getattr(pinn_gmnm, name) is getattr(module, name)


def test_the_public_names_are_the_same_as_before_they_became_lazy():
    """(Profile came later, with the problems that declare profiles.)"""
    assert pinn_gmnm.__all__ == [
        "Adam", "Ball", "Box", "Coefficients", "Collocation", "Condition", "Data", "Difference",
        "Dirichlet", "Disk", "Divergence", "Evaluator", "Field", "GMNM", "GMNMError", "GMNMLayer",
        "GaussNewton", "Geometry", "Grid", "Grow", "Halton", "HardConstraint", "Initial", "Intersection",
        "Interval", "KAN", "LBFGS", "LatinHypercube", "LeastSquares", "LoadedSolution", "MLP",
        "Neumann", "PINN",
        "PROBLEMS", "Periodic", "Polygon", "Problem", "Profile", "Rectangle", "Reference", "Robin",
        "Sampler", "Sobol", "Solution", "SpaceTime", "Sphere", "Stage", "StopOnSignal",
        "Uniform", "Union", "Unknown", "VarPro", "build_model", "count_parameters",
        "fit_problem", "get_problem", "hard_constraint", "load_reference", "load_solution",
        "near", "register",
        "register_target", "solve",
    ]


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'Sovle'"):
        pinn_gmnm.Sovle  # noqa: B018
    with pytest.raises(ImportError):
        exec("from pinn_gmnm import Sovle")


def test_config_errors_and_registry_import_no_torch():
    _fresh("import sys\n"
           "import pinn_gmnm.config, pinn_gmnm.errors, pinn_gmnm.registry\n"
           "heavy = {'torch', 'scipy', 'matplotlib'} & set(sys.modules)\n"
           "assert not heavy, heavy")


def test_help_of_every_command_imports_no_torch():
    """``gmnm-pde --help`` and ``gmnm-pde COMMAND --help`` answer in well under a second."""
    _fresh("import sys\n"
           "from typer.main import get_command\n"
           "from typer.testing import CliRunner\n"
           "from pinn_gmnm.cli.main import app\n"
           "commands = sorted(get_command(app).commands)\n"
           "assert {'list', 'solve', 'compare'} <= set(commands), commands\n"
           "for args in [['--help']] + [[c, '--help'] for c in commands]:\n"
           "    result = CliRunner().invoke(app, args)\n"
           "    assert result.exit_code == 0 and 'Usage' in result.output, (args, result.output)\n"
           "heavy = {'torch', 'scipy', 'matplotlib'} & set(sys.modules)\n"
           "assert not heavy, heavy")


def test_the_catalogue_and_the_run_module_import_neither_scipy_nor_matplotlib():
    """scipy is imported when points are sampled or a reference is computed, matplotlib
    when a figure is drawn: ``gmnm-pde list`` needs neither."""
    _fresh("import sys\n"
           "import pinn_gmnm.problems, pinn_gmnm.run, pinn_gmnm.compare\n"
           "from pinn_gmnm import get_problem\n"
           "get_problem('poisson')\n"
           "heavy = {'scipy', 'matplotlib'} & set(sys.modules)\n"
           "assert not heavy, heavy")


def test_importing_the_package_asks_torch_for_huge_pages_unless_told_otherwise():
    """THP_MEM_ALLOC_ENABLE is set before torch is imported (see ``pinn_gmnm/__init__.py``),
    and a value the user set is kept."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    for given, expected in ((None, "1"), ("0", "0")):
        code = ("import os, sys, pinn_gmnm\n"
                "assert 'torch' not in sys.modules\n"
                f"assert os.environ.get('THP_MEM_ALLOC_ENABLE') == {expected!r}\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env if given is None else {**env, "THP_MEM_ALLOC_ENABLE": given})
        assert proc.returncode == 0, proc.stderr[-2000:]
