"""The Mountain Gazelle Optimiser: minimise a function over a box, with a budget of evaluations.

`mountain_gazelle` is the metaheuristic that OMSN-ER (Patil et al. 2024) uses to tune its
network's learning rate; `random_search` is the baseline it must beat at the same number of
evaluations.  Both are general (any ``f`` over any box), deterministic for a seed and
evaluate whole batches of points at once when ``f`` is vectorised.

``python -m classify.mgo`` prints both on the standard benchmark functions (`BENCHMARKS`,
10 dimensions) as a Markdown table.
"""

import argparse
import dataclasses
import math
import time

import numpy as np

from extract.errors import EmofuseError

__all__ = ["OptimiserError", "OptimisationResult", "mountain_gazelle", "random_search", "BENCHMARKS",
           "benchmark_table"]


class OptimiserError(EmofuseError, ValueError):
    """Bounds, budget or population an optimiser cannot use."""


@dataclasses.dataclass(frozen=True)
class OptimisationResult:
    """The best point an optimiser found.

    Attributes
    ----------
    x : np.ndarray [shape=(d,)]
        Best point.
    fun : float
        ``f(x)``.
    n_evaluations : int
        Points evaluated, at most the budget.
    history : np.ndarray [shape=(n_iterations + 1,)]
        Best value after the initial population and after each iteration (non-increasing).
    """

    x: np.ndarray
    fun: float
    n_evaluations: int
    history: np.ndarray


def mountain_gazelle(f, lower, upper, *, max_evaluations=10_000, population=30,
                     random_state=0, vectorised=True):
    """Minimise ``f`` over the box ``[lower, upper]`` with the Mountain Gazelle Optimiser.

    N gazelles start uniform in the box.  In iteration ``t = 1 .. T`` each gazelle ``X_i``
    proposes four candidates, built from the best gazelle so far (the territorial ``male``),
    the young-male herd ``BH`` (the mean of ``ceil(N/3)`` gazelles drawn at random; the
    paper's ``X_ra floor(r1) + M_pr ceil(r2)`` is always ``M_pr``), ``F = N(0,1)^D
    exp(2 - 2t/T)`` and the coefficient vectors ``Cof`` (one of four drawn at random for each
    use, with ``a = -1 - t/T``: ``(a + 1) + r``, ``a N(0,1)^D``, ``U(0,1)^D`` and
    ``n1 n2^2 cos(2 r n1)``, r a scalar ~ U(0, 1)); ``ri`` are random integers in {1, 2}:

    - territorial solitary male, ``TSM = male - |(ri1 BH - ri2 X_i) F| Cof``;
    - maternity herd, ``MH = (BH + Cof) + (ri3 male - ri4 X_rand) Cof'``;
    - bachelor male herd, ``BMH = (X_i - Dv) + (ri5 male - ri6 BH) Cof`` with
      ``Dv = (|X_i| + |male|)(2 r - 1)``;
    - migration to search for food, ``MSF = lower + (upper - lower) U(0,1)^D``.

    The candidates are clipped to the box and evaluated, and the herd and its 4N candidates
    are sorted and truncated to the best N (elitist).  Unlike the authors' loop, which
    refreshes ``male`` after each gazelle, every gazelle of an iteration moves against the
    same ``male`` and herd, so the 4N candidates of an iteration are evaluated in one batch.
    A NaN value (a failed evaluation) counts as +inf.

    Parameters
    ----------
    f : callable
        With ``vectorised``: ``f(X [shape=(m, d)]) -> [shape=(m,)]``; else ``f(x [shape=(d,)])
        -> float``.
    lower, upper : array-like [shape=(d,)]
        Finite bounds, ``lower < upper``.
    max_evaluations : int
        Budget.  N go to the initial herd and 4N to each iteration, so ``T = (budget - N) //
        (4 N)`` iterations run (at least one is needed).
    population : int
        N, at least 3 (the paper tuning OMSN-ER: 50, with 100 iterations).
    random_state : int
        Seed of every random draw.
    vectorised : bool
        Whether ``f`` takes a batch of points.

    Returns
    -------
    OptimisationResult

    References
    ----------
    Abdollahzadeh, B., Gharehchopogh, F. S., Khodadadi, N., & Mirjalili, S. (2022). Mountain
    Gazelle Optimizer: a new nature-inspired metaheuristic algorithm for global optimization
    problems. Advances in Engineering Software, 174, 103282.
    """
    lower, upper = _check_box(lower, upper)
    n, d = population, len(lower)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 3:
        raise OptimiserError(f"mountain_gazelle: population must be an integer >= 3, got {n!r}")
    n_iterations = (max_evaluations - n) // (4 * n)
    if n_iterations < 1:
        raise OptimiserError(
            f"mountain_gazelle: a budget of {max_evaluations} evaluations does not cover the "
            f"herd of {n} and one iteration (4 x {n}); need at least {5 * n}"
        )
    evaluate = _evaluator(f, vectorised, d)
    rng = np.random.default_rng(random_state)
    herd = lower + (upper - lower) * rng.random((n, d))
    cost = evaluate(herd)
    history = [cost.min()]
    herd_size = math.ceil(n / 3)
    for t in range(1, n_iterations + 1):
        male = herd[cost.argmin()]
        # BH: each gazelle's own random third of the herd, averaged.
        members = np.argsort(rng.random((n, n)), axis=1)[:, :herd_size]
        young_males = herd[members].mean(axis=1)
        strength = rng.standard_normal((n, d)) * math.exp(2 - 2 * t / n_iterations)
        a = -1 - t / n_iterations
        n1, n2 = rng.standard_normal((2, n, d))
        coefficients = np.stack([
            np.broadcast_to((a + 1) + rng.random((n, 1)), (n, d)),
            a * rng.standard_normal((n, d)),
            rng.random((n, d)),
            n1 * n2**2 * np.cos(2 * rng.random((n, 1)) * n1),
        ])  # (4, n, d)

        def cof():
            return coefficients[rng.integers(0, 4, n), np.arange(n)]

        def ri():
            return rng.integers(1, 3, (n, 1))

        others = herd[rng.integers(0, n, n)]
        spread = (np.abs(herd) + np.abs(male)) * (2 * rng.random((n, 1)) - 1)
        candidates = np.concatenate([
            male - np.abs((ri() * young_males - ri() * herd) * strength) * cof(),  # TSM
            (young_males + cof()) + (ri() * male - ri() * others) * cof(),  # MH
            (herd - spread) + (ri() * male - ri() * young_males) * cof(),  # BMH
            lower + (upper - lower) * rng.random((n, d)),  # MSF
        ])
        candidates = np.clip(candidates, lower, upper)
        pool, pool_cost = np.concatenate([herd, candidates]), np.concatenate([cost, evaluate(candidates)])
        best = np.argsort(pool_cost, kind="stable")[:n]
        herd, cost = pool[best], pool_cost[best]
        history.append(cost[0])
    return OptimisationResult(herd[0].copy(), float(cost[0]), n + 4 * n * n_iterations, np.array(history))


def random_search(f, lower, upper, *, max_evaluations=10_000, random_state=0, vectorised=True):
    """Minimise ``f`` by evaluating ``max_evaluations`` points uniform in the box.

    The baseline every metaheuristic must beat at the same budget.  Parameters as
    `mountain_gazelle`; ``history`` holds the single best value.
    """
    lower, upper = _check_box(lower, upper)
    if max_evaluations < 1:
        raise OptimiserError(f"random_search: max_evaluations must be >= 1, got {max_evaluations}")
    points = lower + (upper - lower) * np.random.default_rng(random_state).random((max_evaluations, len(lower)))
    cost = _evaluator(f, vectorised, len(lower))(points)
    best = int(cost.argmin())
    return OptimisationResult(points[best], float(cost[best]), max_evaluations, cost[best : best + 1])


def _check_box(lower, upper):
    lower, upper = np.atleast_1d(np.asarray(lower, float)), np.atleast_1d(np.asarray(upper, float))
    if lower.ndim != 1 or lower.shape != upper.shape or not np.all(np.isfinite(lower) & np.isfinite(upper)):
        raise OptimiserError(f"bounds must be finite vectors of one length, got {lower} and {upper}")
    if not np.all(lower < upper):
        raise OptimiserError(f"every lower bound must be below its upper bound, got {lower} and {upper}")
    return lower, upper


def _evaluator(f, vectorised, d):
    """``f`` as a batch function returning float64 values, NaN replaced by +inf."""
    def evaluate(points):
        values = f(points) if vectorised else [f(x) for x in points]
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(values) != len(points):
            raise OptimiserError(f"f returned {len(values)} values for {len(points)} points of dimension {d}")
        return np.where(np.isnan(values), np.inf, values)
    return evaluate


def sphere(X):
    """``sum_i x_i^2``; minimum 0 at the origin.  ``X [shape=(m, d)]`` -> ``[shape=(m,)]``."""
    return np.sum(X**2, axis=1)


def rosenbrock(X):
    """``sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2``; minimum 0 at (1, ..., 1)."""
    return np.sum(100 * (X[:, 1:] - X[:, :-1] ** 2) ** 2 + (1 - X[:, :-1]) ** 2, axis=1)


def rastrigin(X):
    """``10 d + sum_i x_i^2 - 10 cos(2 pi x_i)``; minimum 0 at the origin, a local one at every integer point."""
    return 10 * X.shape[1] + np.sum(X**2 - 10 * np.cos(2 * np.pi * X), axis=1)


def ackley(X):
    """``-20 exp(-0.2 sqrt(mean x^2)) - exp(mean cos(2 pi x)) + 20 + e``; minimum 0 at the origin."""
    return (-20 * np.exp(-0.2 * np.sqrt(np.mean(X**2, axis=1)))
            - np.exp(np.mean(np.cos(2 * np.pi * X), axis=1)) + 20 + np.e)


SHIFT = np.linspace(-3.0, 3.5, 10)
"""Optimum of the shifted functions, away from the centre of the box (where MGO's moves lean)."""

BENCHMARKS = {
    "sphere": (sphere, 5.12, np.zeros(10)),
    "Rosenbrock": (rosenbrock, 5.0, np.ones(10)),
    "Rastrigin": (rastrigin, 5.12, np.zeros(10)),
    "Ackley": (ackley, 32.768, np.zeros(10)),
    "shifted sphere": (lambda X: sphere(X - SHIFT), 5.12, SHIFT),
    "shifted Rastrigin": (lambda X: rastrigin(X - SHIFT), 5.12, SHIFT),
}
"""name -> (f, half-width of the box [-w, w]^10, the optimum), each with minimum value 0."""


def benchmark_table(*, seeds=range(5), max_evaluations=50_000, population=50) -> str:
    """MGO against random search at the same budget on `BENCHMARKS`, as Markdown.

    Per function: the median and worst best value of MGO over ``seeds``, how many seeds come
    within 1e-6 of the optimum value, random search's median, and MGO's mean CPU seconds.
    """
    rows = [f"MGO, herd {population}, {max_evaluations} evaluations, seeds {list(seeds)}; random search at the "
            "same number of evaluations.", "",
            "| function (10-D) | box | MGO median | MGO worst | seeds within 1e-6 | random search median | MGO CPU s |",
            "|---|---|---|---|---|---|---|"]
    for name, (f, half_width, _) in BENCHMARKS.items():
        box = (np.full(10, -half_width), np.full(10, half_width))
        found, baseline, seconds = [], [], []
        for seed in seeds:
            start = time.process_time()
            result = mountain_gazelle(f, *box, max_evaluations=max_evaluations, population=population,
                                      random_state=seed)
            seconds.append(time.process_time() - start)
            found.append(result.fun)
            baseline.append(random_search(f, *box, max_evaluations=result.n_evaluations, random_state=seed).fun)
        rows.append(f"| {name} | [-{half_width}, {half_width}] | {np.median(found):.2g} | {max(found):.2g} | "
                    f"{sum(v < 1e-6 for v in found)}/{len(found)} | {np.median(baseline):.3g} | {np.mean(seconds):.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="MGO against random search on standard benchmark functions")
    parser.add_argument("--evaluations", type=int, default=50_000)
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    print(benchmark_table(seeds=range(args.seeds), max_evaluations=args.evaluations, population=args.population))
