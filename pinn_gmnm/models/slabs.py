"""A solution pieced together in time: one model per time slab, one callable over the whole.

Time marching (:class:`~pinn_gmnm.training.march.March`) solves an evolution problem slab
by slab, [t_0, t_1], [t_1, t_2], …; each slab has its own model, built for that slab's
box. :class:`TimeSlabs` holds them and answers for the whole domain: a point with time t
goes to the slab with t_k ≤ t < t_{k+1} (the last slab also takes t = t_K), so
evaluation, plots, checkpoints and ``load_solution`` see one model as usual.

A :class:`TimeSlabs` may also hold a ``whole`` piece over the full time interval: the
march first tries the single space-time block with it and marches only when the block's
first solve (Newton's method, or least squares for a linear problem) leaves it unsolved
(see :class:`~pinn_gmnm.training.march.March`). Which of the two answers is kept in the
model's state (``marching``), so a saved model answers as it was trained.

**Unequal slabs.** The march may halve a slab it could not solve (:meth:`TimeSlabs.split`);
each slab's level (how often it was halved) is a buffer of the model's state, so a
checkpoint of unequal slabs loads into the model its config builds (with the equal slabs):
the slabs are cut again as saved, and a checkpoint without levels holds equal slabs.
Halves keep the layout of the slab they come from (k_t Gaussians along its half of the
time), so a half can start from the slab's solution.

**Layout of a slab's Gaussians.** A slab is a short cylinder, mapped like any box to
[−1, 1]^d in the piece's own coordinates; the default isotropic layout would put as many
Gaussians along its short time axis as along space. :func:`slab_layout` puts
``TIME_DENSITY`` times the density in time of one block laid out over the whole interval
along time (k_t = ⌈1.5 k / K⌉ per slab, k^d the block's grid) and spends the rest on
space, where fronts need it. Measured on the 8 slabs of ``burgers`` with equally spaced
centres (Newton on the output layer, no budget): 32 × 32 per slab 0.15, 128 × 8 0.11,
256 × 4 7.1e-2; ``allen-cahn`` 256 × 4: 4.1e-3. Once the march moved the centres to the
front (below), time became the limit and 170 × 6 the better split (see
:data:`TIME_DENSITY`). It is used by the default march of a
nonlinear problem in one space dimension (``thin``), not by every march: ``heat-1d`` by least squares in 3 slabs
of 256 Gaussians gave 9e-7 with the isotropic layout and 1.6e-3 with 51 × 5 (too few, too
broad along t for its decay); ``heat-2d``'s default march (8 grown slabs, 60 s) 6.7e-4
isotropic, 0.40 thin; the slabs of a linear march, and of a nonlinear one in more space
dimensions (``spatial``; Gaussians :data:`NEWTON_WIDTH` as wide), put half the isotropic
grid's count along time instead (:data:`SPATIAL_TIME`). The march then moves the k_s centres of each later slab to where
its starting state is steep (:mod:`~pinn_gmnm.training.moving`), keeping the grid. In two
space dimensions a Newton march keeps each slab's grid equally spaced instead and places
a patch of narrower Gaussians where the state is steep (``patch``, :data:`PATCH_DROP`,
:mod:`~pinn_gmnm.training.patch`). On a space box that is not a cube, the grid's centres
in space are as many along each axis as its length holds at one spacing, so that its
Gaussians are round in the problem's units (:func:`round_spatial_grid`), as a steady
problem's are; a patch march keeps the same count along every axis (on the 4 × 1
channel of ``fisher_channel`` in the untuned set its first slab was 0.2 off, but the same
front fails as badly on a square: the march, not the layout, is what fails there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import math

import torch
from torch import Tensor, nn

from .._types import Points
from ..errors import GMNMError
from .base import Bounds
from .contract import Surrogate, closed_form_engine

if TYPE_CHECKING:
    from ..derivatives import DerivativeEngine


def slab_times(t0: float, t1: float, slabs: int, levels: Sequence[int] | None = None
               ) -> list[float]:
    """The boundaries of ``slabs`` equal slabs of [t0, t1] (``slabs + 1`` of them); with
    ``levels``, of the slabs they were cut into: a slab of level l is one of the 2^l equal
    parts of one of the equal slabs (see :meth:`TimeSlabs.split`), in order."""
    equal = [t0 + (t1 - t0) * k / slabs for k in range(slabs)] + [t1]
    if levels is None:
        return equal
    out, j, frac = [t0], 0, 0.0
    for level in levels:
        if j >= slabs or isinstance(level, bool) or not 0 <= level <= MAX_LEVEL:
            break
        frac += 2.0 ** -level  # exact: sums of powers of two
        if frac >= 1.0:
            j, frac = j + 1, 0.0
            out.append(equal[j])
        else:
            out.append(equal[j] + (equal[j + 1] - equal[j]) * frac)
    if len(out) != len(levels) + 1 or j != slabs or frac != 0.0:
        raise GMNMError(f"slab levels {list(levels)} do not cut {slabs} equal slabs into halves")
    return out


MAX_LEVEL = 30
"""The deepest a slab may be halved (levels are checked against it)."""


class TimeSlabs(Surrogate):
    """Models ``pieces[k]`` for t in [times[k], times[k + 1]) (the last one closed), time
    being the last input coordinate; ``slabs`` equal slabs, of which the march may halve
    some (:meth:`split`; ``levels`` says how often); with ``whole``, also a piece over the whole interval
    (tried first by the march); with ``thin`` or ``spatial``, the pieces laid out by
    :func:`slab_layout` (their Gaussians ``width`` times its width; with ``patch``, a
    spatial layout's patch of narrow ones). ``build(bounds)`` makes one piece for a slab's box;
    every piece has the same architecture, so a trained piece's parameters can start the
    next one (the same layout shifted in time). ``build_whole`` (default ``build``) makes
    the whole piece, which may be laid out otherwise (the default run's is round in space).

    Derivatives are the pieces' (a point's slab is fixed): closed form when every piece
    offers it, else autograd. Training works on one piece at a time.
    """

    least_squares_by_default = False  # trained slab by slab, never as one block

    def __init__(self, build: Callable[[Bounds], nn.Module], bounds: Bounds,
                 slabs: int, *, whole: bool = False, thin: bool = False,
                 spatial: bool = False, width: float = 1.0, patch: bool = False,
                 build_whole: Callable[[Bounds], nn.Module] | None = None) -> None:
        super().__init__()
        if isinstance(slabs, bool) or not isinstance(slabs, int) or slabs < 1:
            raise GMNMError(f"slabs must be a whole number >= 1, got {slabs!r}")
        if thin and spatial:
            raise GMNMError("a slab's layout is thin or spatial, not both")
        lo, hi = (tuple(float(v) for v in b) for b in bounds)
        self.build, self.box, self.base, self.thin = build, (lo, hi), slabs, thin
        if not (math.isfinite(width) and width > 0):
            raise GMNMError(f"a slab layout's width must be a positive number, got {width!r}")
        if patch and not spatial:
            raise GMNMError("a slab's patch (see slab_layout) comes with the layout wide in space")
        self.spatial, self.width, self.patch = spatial, width, patch
        self.whole = (build_whole or build)((lo, hi)) if whole else None
        # how many times each slab was halved (see split): saved, so that a checkpoint
        # of unequal slabs rebuilds them
        self.register_buffer("levels", torch.zeros(slabs, dtype=torch.long))
        self.times = slab_times(lo[-1], hi[-1], slabs)
        self.pieces = nn.ModuleList(self._piece(k) for k in range(slabs))
        # 1: the pieces answer (marched); 0: the whole piece does (when there is one)
        self.register_buffer("marching", torch.tensor(0 if whole else 1))
        first = self.pieces[0]
        self.in_features = int(getattr(first, "in_features", len(lo)))
        self.out_features = int(getattr(first, "out_features", 1))

    @property
    def slabs(self) -> int:
        return len(self.pieces)

    @property
    def laid_out(self) -> bool:
        """Whether the pieces are laid out by :func:`slab_layout` (thin or wide in space)."""
        return self.thin or self.spatial

    @property
    def marched(self) -> bool:
        """Whether the slabs answer (else the whole piece)."""
        return self.whole is None or bool(self.marching)

    def decide(self, march: bool) -> None:
        """Keep the slabs (``march``) or the whole piece as the solution."""
        if self.whole is None:
            return
        self.marching.fill_(int(march))
        unused = self.whole if march else self.pieces
        for p in unused.parameters():  # not counted as the solution's parameters
            p.requires_grad_(False)

    def extra_repr(self) -> str:
        return f"slabs={self.slabs}, times={[round(t, 6) for t in self.times]}"

    def slab_of(self, t: Tensor) -> Tensor:
        """The index of the slab each time belongs to (clamped to the first and last)."""
        inner = torch.tensor(self.times[1:-1], dtype=t.dtype, device=t.device)
        return torch.bucketize(t.contiguous(), inner, right=True)

    def forward(self, x: Points) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise GMNMError(f"expected points of shape (n, {self.in_features}), got {tuple(x.shape)}")
        if not self.marched:
            assert self.whole is not None
            return self.whole(x)
        which = self.slab_of(x[:, -1])
        out = x.new_zeros(len(x), self.out_features)
        for k, piece in enumerate(self.pieces):
            rows = (which == k).nonzero()[:, 0]
            if len(rows):
                out = out.index_copy(0, rows, piece(x[rows]).reshape(len(rows), -1))
        return out

    def derivative_engine(self, x: Points) -> DerivativeEngine | None:
        """Each slab's points answered by its piece's closed-form engine (None: autograd)."""
        if not self.marched:
            assert self.whole is not None
            return closed_form_engine(self.whole, x)
        which = self.slab_of(x[:, -1])
        parts = []
        for k, piece in enumerate(self.pieces):
            rows = (which == k).nonzero()[:, 0]
            if len(rows):
                engine = closed_form_engine(piece, x[rows])
                if engine is None:
                    return None
                parts.append((rows, engine))
        return _Piecewise(len(x), parts)

    def copy_piece(self, source: int, target: int) -> None:
        """Start piece ``target`` from the parameters of piece ``source``."""
        with torch.no_grad():
            self.pieces[target].load_state_dict(self.pieces[source].state_dict())

    def recut(self, levels: Sequence[int]) -> None:
        """Cut the interval into slabs of ``levels`` (see :func:`slab_times`), every piece
        new (built with the current random state)."""
        self._cut([int(v) for v in levels], {})

    def bounds_of(self, k: int) -> Bounds:
        """The box of slab ``k``: the domain's box cut to [times[k], times[k + 1]]."""
        lo, hi = self.box
        return lo[:-1] + (self.times[k],), hi[:-1] + (self.times[k + 1],)

    def split(self, k: int, *, seed: int = 0) -> None:
        """Cut slab ``k`` into two halves, each with a new piece of the same layout (built
        with the random seed ``seed``); the other pieces are kept."""
        levels = [int(v) for v in self.levels.tolist()]
        if not 0 <= k < len(levels):
            raise GMNMError(f"no slab {k} to split: there are {len(levels)}")
        if levels[k] >= MAX_LEVEL:
            raise GMNMError(f"slab {k} was halved {MAX_LEVEL} times already")
        new = levels[:k] + [levels[k] + 1] * 2 + levels[k + 1:]
        kept = {**{i: p for i, p in enumerate(self.pieces) if i < k},
                **{i + 1: p for i, p in enumerate(self.pieces) if i > k}}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._cut(new, kept)

    def _cut(self, levels: list[int], kept: dict[int, nn.Module]) -> None:
        """Cut the interval into slabs of ``levels``: piece ``i`` is ``kept[i]`` or new."""
        like = next(self.pieces[0].parameters())
        self.times = slab_times(self.box[0][-1], self.box[1][-1], self.base, levels)
        pieces = []
        for i in range(len(levels)):
            piece = kept.get(i)
            if piece is None:
                piece = self._piece(i).to(device=like.device, dtype=like.dtype)
                piece.requires_grad_(like.requires_grad)
            pieces.append(piece)
        self.pieces = nn.ModuleList(pieces)
        self.levels = torch.tensor(levels, dtype=torch.long, device=self.levels.device)

    def _piece(self, k: int) -> nn.Module:
        piece = self.build(self.bounds_of(k))
        if self.laid_out:  # every piece has the layout of one of the equal slabs
            slab_layout(piece, self.base, thin=self.thin, width=self.width,
                        patch=self.patch)
        return piece

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        # Slabs split in training save other levels than the config builds: cut the
        # interval as they were, so that run directories and resumes load. (A checkpoint
        # from before slabs were split holds equal slabs.)
        key = prefix + "levels"
        saved = state_dict.setdefault(key, torch.zeros(self.base, dtype=torch.long))
        levels = [int(v) for v in saved.tolist()]
        if levels != [int(v) for v in self.levels.tolist()]:
            with torch.random.fork_rng(devices=[]):
                self._cut(levels, {})
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


TIME_DENSITY = 1.5
"""A thin slab has this many times the centres along time of one block's grid over the
slab (k_t = ⌈1.5 k / K⌉). Measured by the best least-squares fit of ``burgers``' exact
solution over a slab of 8 with 1024 Gaussians, k_s × k_t = 256 × 4, 170 × 6 and 128 × 8
(centres moved to the front as the march moves them): before the front (t ≤ 0.125)
1.9e-4, 1.3e-5, 1.3e-6; as it forms (0.25-0.375) 5.5e-4, 3.8e-5, 1.5e-5; across the
formed shock (0.5-0.625) 2.1e-4, 2.1e-5, 4.3e-4. Along time, not space, was the limit of
4 per slab once the centres moved. Catalogue at 60 s, 1 → 1.5: ``burgers`` 1.0e-3 →
2.7e-4, ``allen-cahn`` 8.7e-4 → 3.9e-4, ``schrodinger`` (24² Gaussians: 3 → 5 along
time) 0.23 → 4.2e-4 (its breathing soliton turns fast in time)."""


SPATIAL_TIME = 0.5
"""A slab of a linear march (solved from scratch by least squares, the rest of the default
march: ``spatial``) has k_t = ⌈SPATIAL_TIME · k⌉ centres along time where the isotropic
grid of its own box has k, and spends the rest on space. Its time axis is 1/K of the
interval, or less in the graded start (see :data:`~pinn_gmnm.training.march.START`), and
the solution moves little over it, while space has the layers: at the edges of
``heat-2d``, whose initial state does not meet the boundary values, a layer of width
√(αt). Measured on ``heat-2d`` (60 s, 2-core CPU, alone; graded start), k_s² × k_t:
isotropic 10² × 10 (the old layout) 1.35e-4, each slab's loss 1e-2 to 1e-3 of its change
in the graded start and 2e-5 to 5e-8 after it; 14² × 5 (980 Gaussians, this rule)
8.6e-5, 3e-4 to 1e-5 and 1e-6 to 2e-8; 12² × 7 9.2e-5; 13² × 7 (1183) 6.3e-5; 16² × 5
(1280) 6.1e-5."""


NEWTON_WIDTH = 0.5
"""The slabs of a nonlinear march in more than one space dimension (laid out wide in
space, as a linear march's, see :data:`SPATIAL_TIME`) have Gaussians this times the
layout's width: Newton's method trains a fixed grid (a linear march's slabs grow where
the residual is large, and try both widths, see
:data:`~pinn_gmnm.training.march.SLAB_WIDTHS`), so the grid itself must resolve the
state. Measured on untuned problems on [0, 1]² (60 s, 2-core CPU, alone; relative L2
against a method-of-lines reference, second-order differences at h = 1/100 and 1/200
extrapolated): one block → slabs at the layout's width → at half of it; the PINN.

- Fisher–KPP (now ``fisher-2d``), u_t = 0.01 Δu + u(1 − u), a spot exp(−r²/0.01), t ≤ 2:
  0.11 → 5.4e-2 → 1.7e-2 (the PINN 3.0e-2, 4.0e-2 and 3.4e-2 in three runs). At twice the
  width 0.17, at a quarter 0.30.
- Allen–Cahn, u_t = 10⁻³ Δu + u − u³, u_0 = ½ sin 2πx sin 2πy: 1.5e-2 → 8.3e-3 → 3.7e-3
  (the PINN 1.2e-2).
- Burgers (now ``burgers-2d``), u_t + u(u_x + u_y) = 0.01 Δu, u_0 = sin πx sin πy: 0.18 →
  3.0e-2 → 2.6e-2 (the PINN 1.35e-2 and 9.9e-3: it wins once the front forms, t ≥ 0.5).

Drawing 4 residual rows per Gaussian (:data:`~pinn_gmnm.training.march.ROWS`) then took
Allen–Cahn to 2.7e-3 and Burgers to 1.3e-2 (Fisher–KPP 1.7e-2 either way). The error of
all three sits where the state is steepest (the spot at t = 0, the fronts):
a finer grid where the state is steep, as in one space dimension
(:mod:`~pinn_gmnm.training.moving`), is what is left. Neither time nor points are the
limit of ``burgers-2d`` (2026-12-02, alone): with a 240 s budget its march ends after 64 s
at the same 1.3e-2 (every slab halved as often as it may), and with 6000 points (larger
slabs) its error where the front forms is no lower (t = 0.4: 9.9e-3 against 1.1e-2;
t = 0.6: 2.2e-2 against 2.3e-2) while the march runs out of 240 s before t = 1. Its error
sits at the front near (0.97, 0.97), about 0.02 wide, where the slabs' 14 centres a side
are 0.086 apart. Tried and not landed (2026-12-02, alone, 60 s): each slab's grid moved
along x and along y by :mod:`~pinn_gmnm.training.moving`'s rule applied to each axis (the
largest slope over 32 lines across the square): 1.3e-2 → 3.0e-2. With 14 centres an axis,
the plateau of :data:`~pinn_gmnm.training.moving.SMOOTH` spacings around the front took
11 of them into [0.5, 1.1], 0.055 apart, and left the bump's smooth side [0, 0.4] two;
with half of each axis's centres kept equally spaced, the slabs came out at 1e-2 to 2e-2
from t = 0.4 and the march did not reach t = 1 in the budget (0.29). What landed instead
(2026-12-03) keeps the grid equally spaced, two centres a side fewer, and places the
Gaussians so freed as a patch of narrow ones where the state is steep (:data:`PATCH_DROP`,
:mod:`~pinn_gmnm.training.patch`): at 60 s on one machine, alone, ``burgers-2d`` 1.5e-2
→ 1.1e-2 and ``fisher-2d`` 1.7e-2 → 2.0e-3, while the Allen–Cahn problem above lost
(2.5e-3 → 4.0e-3: its interfaces are longer than the patch covers; see the module)."""


PATCH_DROP = 2
"""A slab of a Newton march in two space dimensions has this many fewer centres a side in
space than its grid would (k_s − 2, 12² for 14²); the Gaussians so freed, 52 each time
level of its 980, form the patch the march places where the state is steep (see
:mod:`~pinn_gmnm.training.patch`)."""

PATCH_FINER = 3.0
"""The patch's lattice is this many times finer than the slab's grid (and its Gaussians
as many times narrower)."""


@dataclass(frozen=True)
class PatchShape:
    """Which Gaussians of a slab's piece form its patch: ``count`` a time level from
    index ``first`` on, level by level (``levels`` of them), on a lattice of ``step``
    (normalised coordinates)."""

    first: int
    count: int
    levels: int
    step: float


def slab_layout(piece: nn.Module, slabs: int, *, thin: bool = True, width: float = 1.0,
                patch: bool = False) -> Tensor | None:
    """Lay out the Gaussians of ``piece``, a GMNM over one of ``slabs`` equal slabs, as a
    grid with k_t centres along time (the last axis) and the rest along space
    (k_s^(d−1) k_t ≈ m; on a space box that is not a cube, at most k_s^(d−1) of them round
    in space, :func:`round_spatial_grid`): thin, k_t = max(2, ⌈TIME_DENSITY · k / slabs⌉); else
    ``SPATIAL_TIME`` · k (see there). Each Gaussian's width ``width`` × ``width_factor``
    × the grid spacing along each axis, over the same enlarged box as the default layout (see
    the module docstring). Pieces whose count is not a whole grid k^d (spread as a Sobol'
    set), other models and a single slab keep their layout (None; else the widths along
    each axis, normalised coordinates).

    With ``patch`` (a Newton march in two space dimensions), the grid has ``PATCH_DROP``
    fewer centres a side in space and the Gaussians so freed form a patch, each time level
    the same number, on a lattice ``PATCH_FINER`` times finer than the grid's spacing and
    as many times narrower, which the march places where the state is steep (see
    :mod:`~pinn_gmnm.training.patch`; the piece's ``patch_shape`` says which they are)."""
    from .gmnm import GMNM, GMNMLayer

    if slabs < 2 or not isinstance(piece, GMNM) or type(piece.layer) is not GMNMLayer:
        return None
    layer = piece.layer
    d, m = layer.in_features, layer.components
    k = round(m ** (1.0 / d))
    if d < 2 or k**d != m or layer.projections != d:
        return None
    kt = max(2, math.ceil((TIME_DENSITY * k / slabs if thin else SPATIAL_TIME * k) - 1e-9))
    ks = max(1, math.floor((m / kt) ** (1.0 / (d - 1)) + 1e-9))
    coarse = ks - PATCH_DROP if patch and d == 3 and ks > 2 * PATCH_DROP else ks
    counts = [coarse] * (d - 1) + [kt]
    lo = torch.full((d,), -1.0 - piece.margin, dtype=torch.float64)
    hi = -lo
    round_space = None if coarse < ks else round_spatial_grid(piece, coarse ** (d - 1))
    if round_space is not None:  # (a patch march keeps the grid the patch is cut from)
        counts[:-1], lo[:-1], hi[:-1] = round_space
    axes = [(torch.arange(c, dtype=torch.float64) + 0.5) / c for c in counts]
    means = lo + (hi - lo) * torch.cartesian_prod(*axes).reshape(-1, d)
    sigma = width * piece.width_factor * (hi - lo) / torch.tensor(counts, dtype=torch.float64)
    proj = torch.diag(1.0 / sigma).expand(len(means), d, d)
    piece.patch_shape = None
    if coarse < ks:  # the patch: a finer lattice about the centre until the march places it
        per = ks ** (d - 1) - coarse ** (d - 1)
        step = float(hi[0] - lo[0]) / ks / PATCH_FINER
        side = math.ceil(per ** (1.0 / (d - 1)) - 1e-9)
        a = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * step
        spot = torch.cartesian_prod(*[a] * (d - 1)).reshape(-1, d - 1)[:per]
        times = axes[-1] * (hi[-1] - lo[-1]) + lo[-1]
        fine = torch.cat([spot.repeat(kt, 1), times.repeat_interleave(per)[:, None]], dim=1)
        narrow = sigma.clone()
        narrow[:-1] = width * piece.width_factor * step
        piece.patch_shape = PatchShape(len(means), per, kt, step)
        means = torch.cat([means, fine])
        proj = torch.cat([proj, torch.diag(1.0 / narrow).expand(len(fine), d, d)])
    with torch.no_grad():
        layer.components = len(means)
        layer.means = nn.Parameter(means.to(layer.means))
        layer.proj = nn.Parameter(proj.clone().to(layer.proj))
        if len(means) != m:
            w = layer.weights
            layer.weights = nn.Parameter(w.new_zeros(len(means), w.shape[1]).normal_(
                0.0, 0.1 / math.sqrt(len(means))))
    return sigma


def round_spatial_grid(piece: nn.Module, most: int) -> tuple[list[int], Tensor, Tensor] | None:
    """The spatial part of a slab's grid on a space box that is not a cube: at most
    ``most`` centres, as many along each axis as its length holds at one spacing (the
    Gaussians round in space, as a steady problem's are, see
    :attr:`~pinn_gmnm.models.GMNM.aspect`), over the box and one margin on every side
    (:func:`~.layout.enlarged`): the counts and the spatial axes' ends, normalised
    coordinates. None on a cube (the grid is the same count along every axis) and where
    no such grid has ``MIN_GRID_AXIS`` centres along every axis.

    On the 4 × 1 plate of ``heat_strip`` (``benchmarks/untuned_problems.py``) the same
    count along both axes put 14 centres 0.31 apart along the plate and 0.08 across it:
    the first slab's least squares fitted its initial state (modes down to 0.9 long) to
    1.8e-2 at best, every slab was halved and the march ran out of its minute at t = 0.875
    (0.33 in all)."""
    from .layout import MIN_GRID_AXIS, elongated, enlarged, even_count, grid_shape, proportions

    lo, hi = piece.normalize.lo[:-1], piece.normalize.hi[:-1]
    aspect = proportions(lo, hi)
    if not elongated(aspect):
        return None
    a_lo, a_hi = enlarged(len(aspect), piece.margin, aspect)
    sides = [h - l for l, h in zip(a_lo, a_hi)]
    count = even_count(most, sides, MIN_GRID_AXIS)
    shape = None if count is None else grid_shape(count, sides)
    if shape is None:
        return None
    a = torch.tensor(aspect, dtype=torch.float64)
    return (list(shape), torch.tensor(a_lo, dtype=torch.float64) / a,
            torch.tensor(a_hi, dtype=torch.float64) / a)


class _Piecewise:
    """A derivative engine made of the engines of disjoint sets of rows."""

    def __init__(self, n: int, parts: list[tuple[Tensor, DerivativeEngine]]) -> None:
        self.n, self.parts = n, parts

    def _join(self, ask: Callable[[DerivativeEngine], Tensor]) -> Tensor:
        out: Tensor | None = None
        for rows, engine in self.parts:
            v = ask(engine)
            if out is None:
                out = v.new_zeros(self.n, *v.shape[1:])
            out = out.index_copy(0, rows, v)
        assert out is not None
        return out

    def value(self) -> Tensor:
        return self._join(lambda e: e.value())

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._join(lambda e: e.partial(output, axes))

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._join(lambda e: e.laplacian(output, axes))


def pieces_of(model: nn.Module) -> Sequence[nn.Module]:
    """The pieces of a :class:`TimeSlabs` model (its whole piece first, when it has one),
    or the model itself as the only one."""
    if not isinstance(model, TimeSlabs):
        return [model]
    return ([] if model.whole is None else [model.whole]) + list(model.pieces)
