"""gmnm-pde: physics-informed PDE solving with Gaussian Mixture-Inspired Nonlinear Modules.

The public API: shapes and samplers, problems and conditions, models, training stages
and :func:`solve`. Everything else is internal.
"""

from .conditions import Condition, Data, Dirichlet, Initial, Neumann, Periodic, Robin
from .derivatives import Field
from .errors import GMNMError
from .evaluation import Evaluator
from .fitting import fit_problem, register_target
from .geometry import (Ball, Box, Difference, Disk, Geometry, Intersection, Interval, Polygon,
                       Rectangle, SpaceTime, Sphere, Union, near)
from .interrupt import StopOnSignal
from .models import GMNM, KAN, MLP, PINN, GMNMLayer, build_model, count_parameters
from .models.hard import HardConstraint, hard_constraint
from .prediction import LoadedSolution, load_solution
from .problem import PROBLEMS, Problem, get_problem, register
from .references import Reference, load_reference
from .sampling import Grid, Halton, LatinHypercube, Sampler, Sobol, Uniform
from .training import (LBFGS, Adam, Coefficients, Collocation, Divergence, GaussNewton,
                       LeastSquares, Solution, Stage, VarPro, solve)
from .unknowns import Unknown

__version__ = "0.1.0"

__all__ = [
    "Adam", "Ball", "Box", "Coefficients", "Collocation", "Condition", "Data", "Difference",
    "Dirichlet", "Disk", "Divergence", "Evaluator", "Field", "GMNM", "GMNMError", "GMNMLayer",
    "GaussNewton", "Geometry", "Grid", "Halton", "HardConstraint", "Initial", "Intersection",
    "Interval", "KAN", "LBFGS", "LatinHypercube", "LeastSquares", "LoadedSolution", "MLP",
    "Neumann", "PINN", "PROBLEMS", "Periodic", "Polygon", "Problem", "Rectangle", "Reference",
    "Robin", "Sampler", "Sobol", "Solution", "SpaceTime", "Sphere", "Stage", "StopOnSignal",
    "Uniform", "Union", "Unknown", "VarPro", "build_model", "count_parameters", "fit_problem",
    "get_problem", "hard_constraint", "load_reference", "load_solution", "near", "register",
    "register_target", "solve",
]
