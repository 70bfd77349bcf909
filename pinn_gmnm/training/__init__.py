"""Training: collocation batches, the physics-informed loss, stages and ``solve``."""

from .adaptive import GradNormBalance, Refine, Resample
from .batch import Batch, Collocation, sample_batch
from .gauss_newton import GaussNewton
from .growth import Grow
from .inverse import Coefficients
from .linear import LeastSquares, VarPro
from .loss import Loss
from .registry import STAGES, stage_from_dict
from .solve import Solution, default_stages, solve
from .stages import LBFGS, Adam, Stage
from .state import Divergence
from .task import Callback, Clock, Task

__all__ = [
    "LBFGS", "STAGES", "Adam", "Batch", "Callback", "Clock", "Coefficients", "Collocation",
    "Divergence", "GaussNewton", "GradNormBalance", "Grow", "LeastSquares", "Loss", "Refine", "Resample", "Solution",
    "Stage", "Task", "VarPro", "default_stages", "sample_batch", "solve", "stage_from_dict",
]
