"""Reference solutions where no closed form exists: computed numerically (finite
differences, quadrature, method of lines) and cached on disk, or read from a file."""

from .base import Reference, load_reference
from .cache import cache_dir, cached

__all__ = ["Reference", "cache_dir", "cached", "load_reference"]
