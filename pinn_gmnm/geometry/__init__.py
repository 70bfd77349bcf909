"""Shapes, their boundaries and normals, and set operations on them."""

from .ball import Ball, Disk
from .base import Difference, Geometry, Intersection, Union, near
from .box import Box, Interval, Rectangle

__all__ = [
    "Ball", "Box", "Difference", "Disk", "Geometry", "Intersection", "Interval",
    "Rectangle", "Union", "near",
]
