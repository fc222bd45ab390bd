"""Global one-to-one assignment of sources to objects with a "no match" option per source.

The problem: given candidate pairs (source *i*, object *j*) with costs ``c_ij``, choose a set of
pairs in which every source and every object appears at most once, that

1. associates as many sources as possible (a source stays unassociated only when every one of
   its candidates is needed by another source), and
2. among those, minimises the total cost.

It is solved exactly as a minimum-weight full bipartite matching
(:func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`, LAPJVsp) on the candidate graph
augmented with one private dummy column per source: the "no match" option. Costs are first
shifted to ``w_ij = c_ij − min(c) + 1 ≥ 1`` (every maximum matching has the same number of
pairs, so a common shift does not change which one is cheapest), and the dummy costs

    M = 1 + Σ w_ij     (summed over all candidate pairs of the graph),

more than any set of real pairs can cost, so one more association always beats any saving in
cost: the optimum is lexicographic (count first, then total cost). Pairs that are the only
candidate of both their source and their object are settled directly without the solver;
that is most pairs at survey densities.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from alertprod.errors import CatalogError

__all__ = ["assign_one_to_one", "no_match_cost"]


def no_match_cost(cost: np.ndarray) -> tuple[np.ndarray, float]:
    """Shifted pair weights and the "no match" weight of the augmented problem.

    Parameters
    ----------
    cost : ndarray, shape (m,)
        Finite pair costs.

    Returns
    -------
    weights : ndarray, shape (m,)
        ``cost − min(cost) + 1``.
    no_match : float
        ``1 + Σ weights``.
    """
    if len(cost) == 0:
        return np.empty(0), 1.0
    w = cost - cost.min() + 1.0
    return w, 1.0 + float(w.sum())


def assign_one_to_one(n_sources: int, n_objects: int, source_index: np.ndarray,
                      object_index: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Optimal one-to-one assignment (see the module docstring).

    Parameters
    ----------
    n_sources, n_objects : int
        Sizes of the two sides.
    source_index, object_index : ndarray of int, shape (m,)
        Candidate pairs (unique).
    cost : ndarray of float, shape (m,)
        Finite cost of each pair, lower is better.

    Returns
    -------
    ndarray of int64, shape (n_sources,)
        Object index assigned to each source, −1 for none.
    """
    source_index = np.asarray(source_index, dtype=np.int64)
    object_index = np.asarray(object_index, dtype=np.int64)
    cost = np.asarray(cost, dtype=float)
    if not (len(source_index) == len(object_index) == len(cost)):
        raise CatalogError("source_index, object_index and cost must have the same length")
    if len(cost) and not np.all(np.isfinite(cost)):
        raise CatalogError("cost must be finite")
    result = np.full(n_sources, -1, dtype=np.int64)
    if len(cost) == 0:
        return result
    deg_s = np.bincount(source_index, minlength=n_sources)
    deg_o = np.bincount(object_index, minlength=n_objects)
    trivial = (deg_s[source_index] == 1) & (deg_o[object_index] == 1)
    result[source_index[trivial]] = object_index[trivial]
    rest = ~trivial
    if not np.any(rest):
        return result
    si, oi, c = source_index[rest], object_index[rest], cost[rest]
    src_ids, row = np.unique(si, return_inverse=True)
    obj_ids, col = np.unique(oi, return_inverse=True)
    n_r, n_c = len(src_ids), len(obj_ids)
    w, m_cost = no_match_cost(c)
    rows = np.concatenate([row, np.arange(n_r)])
    cols = np.concatenate([col, n_c + np.arange(n_r)])
    vals = np.concatenate([w, np.full(n_r, m_cost)])
    graph = csr_matrix((vals, (rows, cols)), shape=(n_r, n_c + n_r))
    rows_m, cols_m = min_weight_full_bipartite_matching(graph)
    real = cols_m < n_c
    result[src_ids[rows_m[real]]] = obj_ids[cols_m[real]]
    return result
