"""Heat maps of a domain in space are drawn to scale; x–t maps and fits fill their panels."""

import torch

from pinn_gmnm import Dirichlet, Disk, Interval, Problem, Rectangle, SpaceTime
from pinn_gmnm.fitting import fit_problem
from pinn_gmnm.models import GMNM
from pinn_gmnm.plotting import map_aspect, plot_snapshots, plot_solution


def _laplace(geometry):
    return Problem(geometry, lambda u, x: u.laplacian(), [Dirichlet(0.0)],
                   exact=lambda x: torch.zeros(len(x), dtype=x.dtype))


def test_maps_of_space_are_to_scale_and_maps_with_time_or_of_fits_are_not(tmp_path):
    channel = _laplace(Rectangle((0, 0), (2.2, 0.41)))
    assert abs(map_aspect(channel) - 0.41 / 2.2) < 1e-12
    assert map_aspect(_laplace(Disk((0, 0), 1.0))) == 1.0
    moving = Problem(SpaceTime(Rectangle((0, 0), (2, 1)), (0, 5)), lambda u, x: u.d("t"))
    assert map_aspect(moving) == 0.5  # x–y maps at a time, whatever the time span
    assert map_aspect(Problem(SpaceTime(Interval(0, 1), (0, 9)), lambda u, x: u.d("t"))) is None
    assert map_aspect(fit_problem(lambda x: x[:, 0], 2, lo=(0, 0), hi=(1, 100))) is None

    model = GMNM(2, 1, 16, bounds=channel.geometry.bbox).double()
    plot_solution(channel, model, tmp_path / "channel.png")
    plot_snapshots(moving, GMNM(3, 1, 8, bounds=moving.geometry.bbox).double(),
                   tmp_path / "moving.png")
    from matplotlib.image import imread

    height, width = imread(tmp_path / "channel.png").shape[:2]
    assert height < 0.2 * width  # three maps of a channel 5.4 times as long as it is high
    assert (tmp_path / "moving.png").stat().st_size > 0


def test_a_map_drawn_to_scale_has_a_colour_bar_as_high_as_its_image(tmp_path, monkeypatch):
    """A channel 5.4 times as long as it is high is a low image in its panel: its colour
    bar spans the image, not the panel (which is what a bar beside the axes box did)."""
    import pinn_gmnm.plotting as plotting

    drawn = []
    save = plotting._save

    def keep(fig, path):
        save(fig, path)  # (gives the figure its canvas and lays it out)
        drawn.append(fig)

    monkeypatch.setattr(plotting, "_save", keep)
    channel = _laplace(Rectangle((0, 0), (2.2, 0.41)))
    plot_solution(channel, GMNM(2, 1, 16, bounds=channel.geometry.bbox).double(),
                  tmp_path / "channel.png")
    (fig,) = drawn
    renderer = fig.canvas.get_renderer()
    maps = [ax for ax in fig.axes if ax.images and ax.child_axes]
    assert len(maps) == 3
    for ax in maps:
        image, (bar,) = ax.get_window_extent(renderer), ax.child_axes
        bar = bar.get_window_extent(renderer)
        assert abs(bar.height - image.height) <= 0.02 * image.height
        assert bar.x0 >= image.x1  # beside the map, not over it
