"""Type aliases that give tensor shapes a name."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

Points = Tensor
"""Coordinates of n points in d dimensions, shape (n, d)."""

Values = Tensor
"""One value per point, shape (n,); or several outputs per point, shape (n, k)."""

Mask = Tensor
"""A boolean per point, shape (n,)."""

Predicate = Callable[[Points], Mask]
"""Selects points, e.g. ``lambda x: near(x[:, 0], -1.0)`` for the left edge."""
