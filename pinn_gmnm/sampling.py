"""Point samplers on the unit cube: uniform random, Sobol, Halton, Latin hypercube, grid.

A sampler only knows the unit cube [0, 1)^d; geometries map its points onto their
interior or boundary. Quasi-random sequences come from :mod:`scipy.stats.qmc`.
Every sampler is deterministic given its ``seed``.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from .errors import require_positive
from .registry import Registry, first_line


class Sampler(ABC):
    """Draws n points in the unit cube [0, 1)^d."""

    name: str = ""

    @abstractmethod
    def unit(self, n: int, d: int, seed: int) -> np.ndarray:
        """``n`` points of shape (n, d) in [0, 1)^d, the same for the same ``seed``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass(frozen=True, repr=False)
class Uniform(Sampler):
    """Independent uniform random points (plain Monte Carlo)."""

    name = "uniform"

    def unit(self, n: int, d: int, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).random((n, d))


@dataclass(frozen=True, repr=False)
class Sobol(Sampler):
    """Scrambled Sobol' sequence: low discrepancy, best with n a power of two."""

    name = "sobol"

    def unit(self, n: int, d: int, seed: int) -> np.ndarray:
        from scipy.stats import qmc  # imported here: scipy.stats takes ~0.5 s to import

        engine = qmc.Sobol(d, scramble=True, seed=seed)
        with warnings.catch_warnings():  # balance warning for n not a power of two
            warnings.simplefilter("ignore", UserWarning)
            return engine.random(n)


@dataclass(frozen=True, repr=False)
class Halton(Sampler):
    """Scrambled Halton sequence: low discrepancy for any n."""

    name = "halton"

    def unit(self, n: int, d: int, seed: int) -> np.ndarray:
        from scipy.stats import qmc

        return qmc.Halton(d, scramble=True, seed=seed).random(n)


@dataclass(frozen=True, repr=False)
class LatinHypercube(Sampler):
    """Latin hypercube: each axis split into n strata holding one point each."""

    name = "lhs"

    def unit(self, n: int, d: int, seed: int) -> np.ndarray:
        from scipy.stats import qmc

        return qmc.LatinHypercube(d, seed=seed).random(n)


@dataclass(frozen=True, repr=False)
class Grid(Sampler):
    """A regular cell-centred grid of k^d points, k = round(n^(1/d)) (so about n points).

    The grid ignores ``seed``: it is the same every time, which makes resampling a no-op.
    """

    name = "grid"

    def unit(self, n: int, d: int, seed: int) -> np.ndarray:
        k = max(1, round(n ** (1.0 / d)))
        axis = (np.arange(k) + 0.5) / k
        mesh = np.meshgrid(*([axis] * d), indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)


SAMPLERS: Registry[type[Sampler]] = Registry("sampler")
for _cls in (Uniform, Sobol, Halton, LatinHypercube, Grid):
    SAMPLERS.add(_cls.name, _cls, first_line(_cls.__doc__))


def get_sampler(name: str) -> Sampler:
    """The sampler called ``name`` (``uniform``, ``sobol``, ``halton``, ``lhs``, ``grid``)."""
    return SAMPLERS.get(name)()


def grid_points_per_axis(n: int, d: int) -> int:
    """How many points per axis a grid of about ``n`` points in ``d`` dimensions has."""
    require_positive("number of points", n, integer=True)
    return max(2, math.ceil(n ** (1.0 / d)))
