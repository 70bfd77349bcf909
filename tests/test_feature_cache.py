"""The feature cache: evaluations without autograd reuse the Gaussians' values and
derivatives while points and Gaussians are unchanged, and never answer stale."""

from __future__ import annotations

import pytest
import torch

from pinn_gmnm import GMNM
from pinn_gmnm.models import feature_cache
from pinn_gmnm.models.gmnm import MixedEngine, MixtureEngine

QUESTIONS = [("value", None, ()), ("partial", 0, (0,)), ("partial", None, (1,)),
             ("partial", 0, (0, 0)), ("partial", 1, (0, 1)), ("laplacian", None, (0, 1))]


def ask(engine, question):
    kind, output, axes = question
    if kind == "value":
        return engine.value()
    return getattr(engine, kind)(output, axes)


def model_and_points(seed: int = 0):
    torch.manual_seed(seed)
    model = GMNM(2, 2, bounds=((0.0, -1.0), (1.0, 1.0)), components=25).double()
    with torch.no_grad():
        model.layer.weights.normal_()
        model.layer.proj.mul_(1 + 0.1 * torch.rand_like(model.layer.proj))
    return model, torch.rand(50, 2, dtype=torch.float64)


def fresh(model, x):
    """The answers of the engine built afresh, as without the cache."""
    A, mu = model.physical()
    return MixedEngine(MixtureEngine(x, A, mu), model.layer.weights, model.layer.bias)


@pytest.fixture(autouse=True)
def empty_cache():
    feature_cache.clear()
    yield
    feature_cache.clear()


def test_cached_answers_equal_the_engine_built_afresh_and_are_reused():
    model, x = model_and_points()
    with torch.no_grad():
        engine = model.derivative_engine(x)
        assert isinstance(engine.features, feature_cache.CachedEngine)
        for q in QUESTIONS:
            assert torch.equal(ask(engine, q), ask(fresh(model, x), q))
        features = model.linear_head().features(x)
        first = features.partial(None, (0,))
        assert model.linear_head().features(x).partial(None, (0,)) is first  # kept


def test_new_weights_are_mixed_with_the_kept_features():
    model, x = model_and_points()
    with torch.no_grad():
        before = model.derivative_engine(x).partial(0, (0, 0))
        model.layer.weights.mul_(-2.0)
        after = model.derivative_engine(x).partial(0, (0, 0))
    assert torch.equal(after, ask(fresh(model, x), ("partial", 0, (0, 0))))
    assert torch.allclose(after, -2.0 * before)


@pytest.mark.parametrize("change", ["means", "proj", "points"])
def test_a_changed_gaussian_or_point_set_is_computed_again(change):
    model, x = model_and_points()
    with torch.no_grad():
        model.derivative_engine(x).laplacian(None, (0, 1))
        if change == "points":
            x.add_(0.01)  # in place: the same tensor, a new version
        else:
            getattr(model.layer, change).add_(0.05)
        got = model.derivative_engine(x).laplacian(None, (0, 1))
    assert torch.equal(got, ask(fresh(model, x), ("laplacian", None, (0, 1))))


def test_an_answer_modified_in_place_is_not_handed_out_again():
    model, x = model_and_points()
    with torch.no_grad():
        features = model.linear_head().features(x)
        features.value().zero_()
        again = model.linear_head().features(x).value()
    assert again.abs().max() > 0
    A, mu = model.physical()
    assert torch.equal(again, MixtureEngine(x, A, mu).value())


def test_under_autograd_nothing_is_cached_and_gradients_reach_the_gaussians():
    model, x = model_and_points()
    engine = model.derivative_engine(x)
    assert isinstance(engine.features, MixtureEngine)  # built afresh: not cached
    engine.partial(0, (0,)).sum().backward()
    assert model.layer.means.grad is not None and model.layer.means.grad.abs().max() > 0


def test_the_cache_stays_within_its_bound(monkeypatch):
    monkeypatch.setattr(feature_cache, "ELEMENTS", 16 * 50 * 25)
    model, _ = model_and_points()
    with torch.no_grad():
        for _ in range(20):
            x = torch.rand(50, 2, dtype=torch.float64)
            engine = model.derivative_engine(x)
            engine.partial(0, (0,))
            engine.partial(0, (0, 0))
            total = sum(e.size for e in feature_cache._CACHE.values())
            assert total == feature_cache._TOTAL  # the running count is right
            assert total <= feature_cache.ELEMENTS or len(feature_cache._CACHE) == 1
        big = torch.rand(51, 2, dtype=torch.float64)  # a sixteenth of the bound, and more
        assert isinstance(model.derivative_engine(big).features, MixtureEngine)


def test_a_cached_engine_asked_under_autograd_answers_with_its_graph():
    model, x = model_and_points()
    with torch.no_grad():
        features = model.linear_head().features(x)
        features.value()
    value = features.value()  # autograd on again
    value.sum().backward()
    assert model.layer.means.grad is not None and model.layer.means.grad.abs().max() > 0


def test_the_cache_holds_at_most_its_count_of_point_sets(monkeypatch):
    monkeypatch.setattr(feature_cache, "ENTRIES", 3)
    model, _ = model_and_points()
    with torch.no_grad():
        for _ in range(10):
            model.derivative_engine(torch.rand(20, 2, dtype=torch.float64)).value()
    assert len(feature_cache._CACHE) == 3
    assert feature_cache._TOTAL == sum(e.size for e in feature_cache._CACHE.values())


def test_a_parameter_whose_data_is_swapped_is_computed_again():
    """``param.data = …`` (as ``vector_to_parameters`` does) gives a parameter new storage
    without a new version; freed storage is soon reused at the same address, which alone
    must not make the old features look current."""
    model, x = model_and_points()
    with torch.no_grad():
        for _ in range(20):
            model.layer.means.data = model.layer.means.detach() + 0.01  # never the same twice
            got = model.derivative_engine(x).partial(0, (0,))
            assert torch.equal(got, ask(fresh(model, x), ("partial", 0, (0,))))
