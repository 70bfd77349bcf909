"""gmnm-pde: physics-informed PDE solving with Gaussian Mixture-Inspired Nonlinear Modules.

The public API: shapes and samplers, problems and conditions, models, training stages
and :func:`solve`. Everything else is internal.
"""

from .conditions import Condition, Dirichlet
from .derivatives import Field
from .errors import GMNMError
from .evaluation import Evaluator
from .fitting import fit_problem, register_target
from .geometry import Ball, Box, Difference, Disk, Geometry, Intersection, Interval, Rectangle, Union, near
from .models import GMNM, KAN, MLP, PINN, GMNMLayer, build_model, count_parameters
from .problem import PROBLEMS, Problem, get_problem, register
from .sampling import Grid, Halton, LatinHypercube, Sampler, Sobol, Uniform
from .training import LBFGS, Adam, Collocation, LeastSquares, Solution, Stage, VarPro, solve

__version__ = "0.1.0"

__all__ = [
    "Adam", "Ball", "Box", "Collocation", "Condition", "Difference", "Dirichlet", "Disk",
    "Evaluator", "Field", "GMNM", "GMNMError", "GMNMLayer", "Geometry", "Grid", "Halton",
    "Intersection", "Interval", "KAN", "LBFGS", "LatinHypercube", "LeastSquares", "MLP", "PINN",
    "PROBLEMS", "Problem",
    "Rectangle", "Sampler", "Sobol", "Solution", "Stage", "Uniform", "Union", "VarPro", "build_model",
    "count_parameters", "fit_problem", "get_problem", "near", "register", "register_target", "solve",
]
