"""The Mountain Gazelle Optimiser on standard 10-dimensional benchmark functions."""

import numpy as np
import pytest

from classify.mgo import OptimiserError, mountain_gazelle, random_search
from extract.errors import EmofuseError

D = 10
SHIFT = np.linspace(-3.0, 3.5, D)  # an optimum away from the centre of the box


def sphere(X):
    return np.sum(X**2, axis=1)


def rosenbrock(X):
    return np.sum(100 * (X[:, 1:] - X[:, :-1] ** 2) ** 2 + (1 - X[:, :-1]) ** 2, axis=1)


def rastrigin(X):
    return 10 * X.shape[1] + np.sum(X**2 - 10 * np.cos(2 * np.pi * X), axis=1)


def ackley(X):
    return (-20 * np.exp(-0.2 * np.sqrt(np.mean(X**2, axis=1)))
            - np.exp(np.mean(np.cos(2 * np.pi * X), axis=1)) + 20 + np.e)


def shifted_sphere(X):
    return sphere(X - SHIFT)


# name: (function, half-width of the box, optimum, tolerance on f at the optimum)
BENCHMARKS = {
    "sphere": (sphere, 5.12, np.zeros(D), 1e-10),
    "rosenbrock": (rosenbrock, 5.0, np.ones(D), 1e-6),
    "rastrigin": (rastrigin, 5.12, np.zeros(D), 1e-6),
    "ackley": (ackley, 32.768, np.zeros(D), 1e-6),
    "shifted sphere": (shifted_sphere, 5.12, SHIFT, 1e-10),
}
BUDGET = dict(max_evaluations=50_000, population=50)  # 249 iterations, about 0.1 s each run


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", BENCHMARKS)
def test_reaches_the_optimum_and_beats_random_search(name, seed):
    f, half_width, optimum, tolerance = BENCHMARKS[name]
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
