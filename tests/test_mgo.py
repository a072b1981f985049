"""The Mountain Gazelle Optimiser on standard 10-dimensional benchmark functions."""

import numpy as np
import pytest

from classify.mgo import (
    BENCHMARKS,
    OptimiserError,
    ackley,
    benchmark_table,
    mountain_gazelle,
    random_search,
    rastrigin,
    rosenbrock,
    sphere,
)
from extract.errors import EmofuseError

D = 10
TOLERANCE = {"sphere": 1e-10, "Rosenbrock": 1e-6, "Rastrigin": 1e-6, "Ackley": 1e-6, "shifted sphere": 1e-10}


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_functions_are_zero_at_their_optimum_only(name):
    f, half_width, optimum = BENCHMARKS[name]
    assert abs(f(optimum[None])[0]) < 1e-12
    rng = np.random.default_rng(0)
    others = optimum + rng.uniform(-half_width / 10, half_width / 10, (100, D))
    assert np.all(f(others) > 1e-3)


def test_benchmark_functions_at_known_points():
    ones, twos = np.ones((1, D)), np.full((1, D), 2.0)
    assert rastrigin(ones)[0] == pytest.approx(10.0)  # x^2 - 10 cos(2 pi) + 10 = 1 per coordinate
    assert rosenbrock(np.zeros((1, D)))[0] == pytest.approx(9.0)  # (1 - 0)^2 for 9 pairs
    assert sphere(twos)[0] == pytest.approx(40.0)
    assert ackley(ones)[0] == pytest.approx(20 - 20 * np.exp(-0.2))  # cos(2 pi) = 1 cancels e


BUDGET = dict(max_evaluations=50_000, population=50)  # 249 iterations, about 0.1 s each run


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", TOLERANCE)
def test_reaches_the_optimum_and_beats_random_search(name, seed):
    f, half_width, optimum = BENCHMARKS[name]
    tolerance = TOLERANCE[name]
    lower, upper = np.full(D, -half_width), np.full(D, half_width)
    result = mountain_gazelle(f, lower, upper, random_state=seed, **BUDGET)
    assert result.n_evaluations == 50 + 4 * 50 * 249 <= BUDGET["max_evaluations"]
    assert result.fun < tolerance
    assert result.fun == f(result.x[None])[0]
    assert np.max(np.abs(result.x - optimum)) < 1e-2
    baseline = random_search(f, lower, upper, max_evaluations=result.n_evaluations, random_state=seed)
    assert baseline.n_evaluations == result.n_evaluations
    assert result.fun < baseline.fun / 100


def test_history_is_elitist_and_stays_in_the_box():
    seen = []

    def recording_sphere(X):
        seen.append(X.copy())
        return sphere(X)

    lower, upper = np.full(3, -1.0), np.full(3, 2.0)
    result = mountain_gazelle(recording_sphere, lower, upper, max_evaluations=500, population=10)
    assert len(result.history) == 1 + (500 - 10) // 40
    assert np.all(np.diff(result.history) <= 0)
    points = np.concatenate(seen)
    assert len(points) == result.n_evaluations
    assert np.all((points >= lower) & (points <= upper))
    assert result.fun == min(sphere(points))


def test_same_seed_same_result_and_scalar_functions_agree():
    box = (np.full(D, -5.12), np.full(D, 5.12))
    first = mountain_gazelle(rastrigin, *box, max_evaluations=2000, random_state=3)
    again = mountain_gazelle(rastrigin, *box, max_evaluations=2000, random_state=3)
    np.testing.assert_array_equal(first.x, again.x)
    scalar = mountain_gazelle(lambda x: rastrigin(x[None])[0], *box, max_evaluations=2000,
                              random_state=3, vectorised=False)
    np.testing.assert_array_equal(scalar.x, first.x)
    other = mountain_gazelle(rastrigin, *box, max_evaluations=2000, random_state=4)
    assert not np.array_equal(other.x, first.x)


def test_nan_values_count_as_worst():
    def sphere_failing_far_out(X):
        values = sphere(X)
        values[np.abs(X).max(axis=1) > 0.5] = np.nan
        return values

    result = mountain_gazelle(sphere_failing_far_out, [-1.0, -1.0], [1.0, 1.0], max_evaluations=1000)
    assert np.isfinite(result.fun) and result.fun < 1e-6


@pytest.mark.parametrize("kwargs, message", [
    (dict(lower=[0.0, 1.0], upper=[1.0, 1.0]), "below"),
    (dict(lower=[0.0], upper=[1.0, 2.0]), "one length"),
    (dict(lower=[-np.inf], upper=[1.0]), "finite"),
    (dict(lower=[0.0], upper=[1.0], max_evaluations=100, population=30), "at least 150"),
    (dict(lower=[0.0], upper=[1.0], population=2), "population"),
])
def test_bad_arguments_raise_emofuse_error(kwargs, message):
    with pytest.raises(OptimiserError, match=message) as error:
        mountain_gazelle(sphere, **kwargs)
    assert isinstance(error.value, EmofuseError)


def test_function_returning_the_wrong_number_of_values_is_refused():
    with pytest.raises(OptimiserError, match="returned 1 values for 10 points"):
        mountain_gazelle(lambda X: np.zeros(1), [0.0], [1.0], max_evaluations=100, population=10)


def test_benchmark_table_lists_every_function():
    table = benchmark_table(seeds=range(1), max_evaluations=500, population=10)
    assert table.count("\n|") == 2 + len(BENCHMARKS)
    assert "| sphere | [-5.12, 5.12] |" in table and "/1 |" in table
