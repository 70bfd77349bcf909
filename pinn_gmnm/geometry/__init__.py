"""Shapes, their boundaries and normals, set operations on them, and space × time."""

from .ball import Ball, Disk, Sphere
from .base import Corner, Difference, Geometry, Intersection, Union, near
from .box import Box, Interval, Rectangle
from .polygon import Polygon
from .spacetime import SpaceTime

__all__ = [
    "Ball", "Box", "Corner", "Difference", "Disk", "Geometry", "Intersection", "Interval", "Polygon",
    "Rectangle", "SpaceTime", "Sphere", "Union", "near",
]
