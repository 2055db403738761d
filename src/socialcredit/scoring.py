"""Scoring: own points, the coupled score, and grades.

Points are kept as integer milli-points, so adding and removing records in any
order gives exactly the same sums (replays are bit-identical). The coupled
score follows Friedkin and Johnsen (1990): ``S = (1 - kappa) P + kappa W S``,
``W`` the row-normalised weighted adjacency of active ties.

References
----------
Friedkin, N. E., & Johnsen, E. C. (1990). Social influence and opinions.
Journal of Mathematical Sociology, 15(3-4), 193-206.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import kernels
from .kernels import chebyshev_step, matvec, row_sums
from .scenario import Coupling, Grade

MILLI = 1000  # points are stored as integer milli-points


def to_milli(points: float) -> int:
    """Points as integer milli-points (rounded to 0.001)."""
    return int(round(points * MILLI))


def own_points(raw_milli: np.ndarray, start: float, low: float, high: float,
               extra_milli: np.ndarray | None = None) -> np.ndarray:
    """``P = clip(P0 + sum of points in effect, P_min, P_max)``.

    ``extra_milli`` (optional) is added to ``raw_milli`` first, as integers.

    >>> own_points(np.array([-5000, 300000]), 1000, 0, 1200).tolist()
    [995.0, 1200.0]
    """
    compiled = kernels.own_points(raw_milli, extra_milli, start, low, high, MILLI)
    if compiled is not None:
        return compiled
    total = raw_milli if extra_milli is None else raw_milli + extra_milli
    return np.clip(start + total / MILLI, low, high)


def needs_product(coupling: Coupling) -> bool:
    """Whether :func:`coupled_score` under this coupling starts from the product ``A P``."""
    return coupling.mode != "none" and coupling.kappa != 0.0


def coupled_score(points: np.ndarray, adjacency: sp.csr_matrix, coupling: Coupling,
                  strength: np.ndarray | None = None, product: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The score after coupling to neighbours, and the solver's iteration count.

    Parameters
    ----------
    points : array (N,)
        Own points ``P``.
    adjacency : csr_matrix (N, N)
        Weighted adjacency of active ties (cut ties stored as 0).
    coupling : Coupling
        ``none``: ``S = P``. ``neighbour_mean``: ``S = (1-k) P + k W P``.
        ``friedkin_johnsen``: ``S = (1-k) P + k W S``, iterated from ``S = P``
        (Chebyshev-accelerated Jacobi) until provably within
        ``coupling.tolerance`` of the exact solution.
    strength : array (N,), optional
        Row sums of ``adjacency`` (computed when not given).
    product : array (N,), optional
        ``matvec(adjacency, points)``, where the caller computed it together
        with other products (``kernels.paired_products``); the result is the
        same, bit for bit.

    Citizens without an active tie keep ``S = P``.

    Examples
    --------
    Two friends, one at 1000 and one at 800, kappa 0.5: the closed form
    ``S = (I - kW)^-1 (1-k) P`` gives 933.33 and 866.67.

    >>> a = sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 0.0]]))
    >>> s, _ = coupled_score(np.array([1000.0, 800.0]), a, Coupling(kappa=0.5))
    >>> np.round(s, 2).tolist()
    [933.33, 866.67]
    """
    kappa = coupling.kappa
    if not needs_product(coupling):
        return points.copy(), 0
    if strength is None:
        strength = row_sums(adjacency)
    # hot path: coef folds kappa and the row normalisation into one vector
    terms = kernels.coupling_terms(points, strength, kappa)
    if terms is None:
        tied = strength > 0
        inv = np.zeros_like(strength)
        inv[tied] = 1.0 / strength[tied]
        terms = (np.where(tied, (1.0 - kappa) * points, points), kappa * inv)
    base, coef = terms
    if coupling.mode == "neighbour_mean":
        return base + coef * (matvec(adjacency, points) if product is None else product), 1
    return _chebyshev(base, coef, adjacency, points, kappa, coupling.tolerance, product)


def _chebyshev(base: np.ndarray, coef: np.ndarray, adjacency: sp.csr_matrix, start: np.ndarray,
               kappa: float, tolerance: float, product: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Solve ``S = base + coef * (A S)`` by Chebyshev-accelerated Jacobi from ``start``.

    The Jacobi map ``G(S) = base + kappa W S`` has a real spectrum in
    ``[-kappa, kappa]`` (``W`` is similar to a symmetric matrix), so the
    Chebyshev semi-iteration converges at rate about
    ``kappa / (1 + sqrt(1 - kappa^2))`` instead of ``kappa``. It returns
    ``G(S)`` as soon as the Jacobi residual ``r = max |G(S) - S|`` is below
    ``tolerance * (1 - kappa) / kappa``. That bounds the returned score's
    error: ``G(S) - S* = kappa W (S - S*)`` and ``max |S - S*| <= r / (1 - kappa)``
    (``I - kappa W`` has an inverse of infinity norm at most ``1 / (1 - kappa)``,
    and ``W``, row-stochastic or zero, has norm at most 1), so
    ``max |G(S) - S*| <= kappa r / (1 - kappa) < tolerance``.
    """
    rho2 = kappa * kappa
    bound = tolerance * (1.0 - kappa) / kappa
    solved = kernels.chebyshev_solve(adjacency, start, base, coef, rho2, bound, product)
    if solved is not None:
        return solved
    previous = start
    current = start
    omega = 1.0
    # hot path: buffers rotate, so after the second step an iteration allocates nothing
    jacobi, following = np.empty_like(start), np.empty_like(start)
    for iteration in range(1, 10_000):
        # a split city's compiled step reuses the far sums its previous step computed, if it ran
        residual = chebyshev_step(adjacency, current, previous, base, coef, omega, jacobi, following,
                                  continued=iteration > (1 if product is None else 2),
                                  product=product if iteration == 1 else None)
        if residual < bound:
            return jacobi, iteration
        # omega of the next step (Golub and Varga's recurrence)
        omega = 2.0 / (2.0 - rho2) if iteration == 1 else 1.0 / (1.0 - rho2 * omega / 4.0)
        freed = previous if previous is not start else np.empty_like(start)  # never write into start
        previous, current, following = current, following, freed
    return current, iteration  # pragma: no cover - kappa < 1 always converges


def grade_index(score: np.ndarray, grades: list[Grade]) -> np.ndarray:
    """Index of the highest grade whose threshold the score reaches (``>=``).

    A score below every threshold gets the last (lowest) grade.

    >>> from socialcredit.scenario import Grade
    >>> g = [Grade(name="A", min=960), Grade(name="B", min=850), Grade(name="D", min=0)]
    >>> grade_index(np.array([960.0, 959.99, 850.0, 12.0, -5.0]), g).tolist()
    [0, 1, 1, 2, 2]
    """
    reached = np.zeros(score.size, dtype=np.int8)  # thresholds <= score
    for grade in grades:  # a pass per threshold beats a binary search per citizen (few grades)
        reached += score >= grade.min
    return np.clip(len(grades) - reached, 0, len(grades) - 1).astype(np.int8)
