"""A solution known at points (from a numerical solver or a user's file), used where
there is no closed form: for metrics at its own points and, interpolated, for plots."""

from __future__ import annotations

import csv
import io
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .._types import Points
from ..errors import GMNMError, GMNMWarning
from ..formats import MESH_FORMATS


class Reference:
    """Values (N, k) of a solution at points (N, d), float64.

    A reference on a tensor grid (``axes``: one increasing coordinate vector per
    dimension; ``values`` of shape (len(axes[0]), …, k)) interpolates linearly between
    nodes; scattered points use linear interpolation over a Delaunay triangulation (1-3
    dimensions) or the nearest point (more). Nodes outside the domain may hold NaN:
    they are left out of the metrics, and interpolation near them uses the nearest
    known node instead. ``source`` says where the numbers come from.
    """

    def __init__(self, points: Tensor | np.ndarray, values: Tensor | np.ndarray, *,
                 source: str = "", axes: Sequence[np.ndarray] | None = None) -> None:
        x = np.asarray(points, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        v = v[:, None] if v.ndim == 1 else v
        if x.ndim != 2 or len(x) == 0:
            raise GMNMError(f"a reference needs points of shape (N, d), got {x.shape}")
        if v.ndim != 2 or len(v) != len(x):
            raise GMNMError(f"reference has {len(x)} points but values of shape {v.shape}")
        if not np.isfinite(x).all():
            raise GMNMError("reference points must be finite")
        what = f"reference ({source})" if source else "reference"
        if np.isinf(v).any():
            raise GMNMError(
                f"{what}: {int(np.isinf(v).sum())} of {v.size} values are infinite; give NaN "
                "where the solution is not known (those points are left out) or drop them"
            )
        if np.isnan(v).all():
            raise GMNMError(f"{what} has no finite values (all {len(v)} points are NaN)")
        self.points, self.values, self.source = x, v, source
        self.axes = None if axes is None else tuple(np.asarray(a, dtype=np.float64) for a in axes)
        self._interp = None

    @classmethod
    def on_grid(cls, axes: Sequence[np.ndarray], values: np.ndarray, *, source: str = "") -> Reference:
        """A reference on the tensor grid ``axes`` with ``values`` of shape
        (n_1, …, n_d) or (n_1, …, n_d, k)."""
        axes = [np.asarray(a, dtype=np.float64) for a in axes]
        shape = tuple(len(a) for a in axes)
        v = np.asarray(values, dtype=np.float64)
        v = v[..., None] if v.shape == shape else v
        if v.shape[:-1] != shape:
            raise GMNMError(f"grid values of shape {v.shape} do not match axes of lengths {shape}")
        mesh = np.meshgrid(*axes, indexing="ij")
        points = np.stack([m.ravel() for m in mesh], axis=1)
        return cls(points, v.reshape(len(points), -1), source=source, axes=axes)

    def stating(self, accuracy: str) -> Reference:
        """This reference with how accurate it is appended to its ``source`` (shown with
        it and stored with it in the cache), e.g. ``relative L2 error ≈ 2e-7``."""
        self.source = f"{self.source}; {accuracy}" if self.source else accuracy
        return self

    def __repr__(self) -> str:
        return f"Reference({len(self.points)} points, {self.dim}-D, {self.n_outputs} output(s); {self.source})"

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.values.shape[1]

    def known(self) -> tuple[Points, Tensor]:
        """The points with finite values and those values, as float64 tensors."""
        ok = np.isfinite(self.values).all(axis=1)
        return torch.from_numpy(self.points[ok]), torch.from_numpy(self.values[ok])

    def _interpolator(self):
        from scipy import interpolate

        if self._interp is None:
            if self.axes is not None:
                grid = self.values.reshape(tuple(len(a) for a in self.axes) + (-1,))
                missing = np.isnan(grid).any(axis=-1)
                if missing.any() and not missing.all():
                    # Nodes outside the domain take their nearest known value, so that
                    # cells along a curved boundary still interpolate.
                    from scipy.ndimage import distance_transform_edt

                    idx = distance_transform_edt(missing, return_distances=False,
                                                 return_indices=True)
                    grid = grid[tuple(idx)]
                self._interp = interpolate.RegularGridInterpolator(
                    self.axes, grid, bounds_error=False, fill_value=np.nan)
            else:
                x, v = self.points, self.values
                if self.dim == 1:
                    order = np.argsort(x[:, 0])
                    xs, vs = x[order, 0], v[order]
                    self._interp = lambda q: np.stack(
                        [np.interp(q[:, 0], xs, vs[:, j], left=np.nan, right=np.nan)
                         for j in range(vs.shape[1])], axis=1)
                elif self.dim <= 3:
                    self._interp = interpolate.LinearNDInterpolator(x, v)
                else:
                    self._interp = interpolate.NearestNDInterpolator(x, v)
        return self._interp

    def __call__(self, x: Points) -> Tensor:
        """Interpolated values at ``x`` (n, d) → (n, k); NaN outside the data."""
        q = x.detach().cpu().double().numpy()
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise GMNMError(f"reference is {self.dim}-D, got points of shape {tuple(q.shape)}")
        out = np.asarray(self._interpolator()(q), dtype=np.float64).reshape(len(q), -1)
        return torch.from_numpy(out).to(dtype=x.dtype, device=x.device)

    # -- storage ---------------------------------------------------------------------
    def to_npz(self, f) -> None:
        data = {"points": self.points, "values": self.values, "source": np.array(self.source)}
        if self.axes is not None:
            data.update({f"axis{i}": a for i, a in enumerate(self.axes)})
        np.savez_compressed(f, **data)

    @classmethod
    def from_npz(cls, path: Path) -> Reference:
        """Read arrays ``points`` and ``values`` (and ``axis0`` … of a grid) from an
        ``.npz`` file; arrays of Python objects are refused, never unpickled."""
        invalid = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)
        try:
            z = np.load(path, allow_pickle=False)
        except invalid:
            z = None
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise GMNMError(f"{path} is not a valid .npz file (a zip archive of arrays written "
                            "by numpy.savez); save the reference with numpy.savez(path, "
                            "points=..., values=...)")

        def read(key: str) -> np.ndarray:
            try:
                return z[key]
            except invalid:
                if _holds_objects(z, key):
                    raise GMNMError(f"{path}: array '{key}' holds Python objects, which are "
                                    "never unpickled; save numeric arrays") from None
                raise GMNMError(f"{path} is not a valid .npz file (array '{key}' is damaged)") from None

        with z:
            keys = set(z.files)
            px = next((k for k in ("points", "x", "X", "coords") if k in keys), None)
            pv = next((k for k in ("values", "u", "U", "y", "solution") if k in keys), None)
            if px is None or pv is None:
                raise GMNMError(
                    f"{path}: a reference .npz needs arrays 'points' (N, d) and 'values' (N,) "
                    f"or (N, k); it has: {', '.join(sorted(keys)) or 'nothing'}"
                )
            points, values = read(px), read(pv)
            axes = [read(f"axis{i}") for i in range(points.shape[1])] \
                if px == "points" and "axis0" in keys and points.ndim == 2 else None
            source = str(read("source")) if "source" in keys else f"file {path}"
            return cls(points, values, source=source, axes=axes)


def _holds_objects(z: np.lib.npyio.NpzFile, key: str) -> bool:
    """Whether the array ``key`` of an ``.npz`` file is declared to hold Python objects
    (read from its header alone)."""
    from numpy.lib import format as npy

    try:
        with z.zip.open(f"{key}.npy") as f:
            version = npy.read_magic(f)
            header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            return bool(header(f)[2].hasobject)
    except Exception:  # a damaged header: not an object array we could name
        return False


def load_reference(path: str | Path, dim: int, n_outputs: int = 1, *,
                   names: Sequence[str] = ()) -> Reference:
    """Read a reference solution from a file: ``.npz`` (arrays ``points`` and
    ``values``), ``.csv`` (optional header row), whitespace-separated text with
    optional comment lines starting with ``%`` or ``#`` (as FEM tools export), or a mesh
    file meshio reads (``.vtu``, ``.vtk``, ``.msh``; see :func:`read_mesh_field`). Text
    and CSV files have one row per point: the ``dim`` coordinates, then ``n_outputs``
    values. ``names`` are the problem's outputs, which pick a mesh's point fields.
    """
    path = Path(path)
    if not path.is_file():
        raise GMNMError(f"reference file not found: {path}")
    if path.suffix in MESH_FORMATS:
        ref = read_mesh_field(path, dim, n_outputs, names)
    elif path.suffix == ".npz":
        ref = Reference.from_npz(path)
    else:
        rows = _read_table(path)
        if rows.shape[1] != dim + n_outputs:
            raise GMNMError(
                f"{path}: rows have {rows.shape[1]} columns, expected {dim + n_outputs} "
                f"({dim} coordinates, then {n_outputs} value(s))"
            )
        ref = Reference(rows[:, :dim], rows[:, dim:], source=f"file {path.name}")
    if ref.axes is None:  # points on a tensor grid interpolate alike whatever the format
        ref = _as_grid(ref)
    if ref.dim != dim or ref.n_outputs != n_outputs:
        raise GMNMError(f"{path}: reference is {ref.dim}-D with {ref.n_outputs} value(s) per "
                        f"point; the problem needs {dim}-D with {n_outputs}")
    missing = int(np.isnan(ref.values).any(axis=1).sum())
    if missing:
        warnings.warn(f"{path}: {missing} of {len(ref.values)} points of the reference have NaN "
                      "values; they are left out of the metrics", GMNMWarning, stacklevel=2)
    return ref


def read_mesh_field(path: Path, dim: int, n_outputs: int, names: Sequence[str] = ()) -> Reference:
    """A point field of a mesh file, read with meshio, at the mesh's nodes.

    The nodes' first ``dim`` coordinates are the points (further coordinates must be
    zero: a 2-D mesh written in 3-D). The values are the point field named after the
    output (``u``) or, with several outputs, one field per output name or one field with
    a column per output; a file with a single point field of the right width needs no
    names. Gmsh's bookkeeping fields (``gmsh:…``) are not solutions and are skipped."""
    from ..fem.deps import require

    meshio = require("meshio")
    try:
        mesh = meshio.read(path)
    except Exception as exc:  # meshio's own errors carry no common base class
        raise GMNMError(f"{path}: meshio could not read it ({type(exc).__name__}: {exc})") from None
    points = np.asarray(mesh.points, dtype=np.float64)
    if points.shape[1] < dim or np.abs(points[:, dim:]).max(initial=0.0) > 0:
        raise GMNMError(f"{path}: its nodes have {points.shape[1]} coordinates, not a {dim}-D mesh")
    fields = {k: np.asarray(v, dtype=np.float64).reshape(len(points), -1)
              for k, v in mesh.point_data.items() if not k.startswith("gmsh:")}
    wide = [k for k, v in fields.items() if v.shape[1] == n_outputs]
    if names and all(n in fields and fields[n].shape[1] == 1 for n in names):
        values = np.hstack([fields[n] for n in names])
        label = ", ".join(names)
    elif len(wide) == 1:
        values, label = fields[wide[0]], wide[0]
    else:
        found = ", ".join(f"{k} ({v.shape[1]} column(s))" for k, v in fields.items()) or "none"
        raise GMNMError(f"{path}: cannot tell which point field is the solution ({n_outputs} "
                        f"value(s) per point{' named ' + ', '.join(names) if names else ''}); "
                        f"point fields: {found}")
    return Reference(points[:, :dim], values, source=f"file {path.name}, point field {label}")


def _read_table(path: Path) -> np.ndarray:
    text = path.read_text(errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("%", "#"))]
    if not lines:
        raise GMNMError(f"{path}: no data rows")
    comma = path.suffix == ".csv" or "," in lines[0]
    if comma:
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
    else:
        rows = [ln.split() for ln in lines]
    try:
        float(rows[0][0])
    except ValueError:
        rows = rows[1:]  # a header row
    try:
        data = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise GMNMError(f"{path}: not a table of numbers ({exc})") from None
    if data.ndim != 2 or len(data) == 0:
        raise GMNMError(f"{path}: rows must all have the same number of columns")
    return data


def _as_grid(ref: Reference) -> Reference:
    """The same data on a tensor grid when the points form one (faster, smoother)."""
    axes = [np.unique(ref.points[:, i]) for i in range(ref.dim)]
    if int(np.prod([len(a) for a in axes])) != len(ref.points):
        return ref
    idx = tuple(np.searchsorted(a, ref.points[:, i]) for i, a in enumerate(axes))
    grid = np.full(tuple(len(a) for a in axes) + (ref.n_outputs,), np.nan)
    grid[idx] = ref.values
    if np.isnan(grid).any():  # repeated points: not a grid
        return ref
    return Reference.on_grid(axes, grid, source=ref.source)
