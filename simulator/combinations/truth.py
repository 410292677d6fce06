r"""The true click model of a combination of elements, from the truth columns of the GenCO log (NumPy only).

Impression :math:`i` shows ad :math:`a` to user :math:`u`; the ad has the components :math:`J_i` and, for each
:math:`j \in J_i`, a pool of candidate elements (padded to :math:`N` = ``features.GENCO_MAX_CANDIDATES``). A
combination :math:`c = (c_j)_{j}` picks index :math:`c_j` of pool :math:`j` (:math:`-1` for a component the ad
lacks). Its true logit is

.. math::
    \mathrm{logit}_i(c) = b_i + \sum_{j \in J_i} E_{i,j,c_j}
        + \sum_{(j, j') \in P,\; j, j' \in J_i} X_{i,(j,j')}\big[s_{i,j,c_j}, s_{i,j',c_{j'}}\big],
    \qquad \mathrm{CTR}_i(c) = \sigma(\mathrm{logit}_i(c)),

with :math:`b_i` the base logit (``features.GENCO_TRUTH_BASE_LOGIT``: bias, user and ad terms), :math:`E` the
element terms (``features.GENCO_TRUTH_LOGITS``, one per candidate), :math:`s` the element styles
(``features.GENCO_CAND_STYLES``) and :math:`X` the style-pair tables of the pairs :math:`P` =
``features.GENCO_PAIRS`` (``features.GENCO_TRUTH_PAIR_LOGITS``). How the simulator draws these terms is in
:mod:`simulator.combinations.world`; every function here reads only these arrays, so the evaluation of any
policy needs the log alone.

The pair terms make the best combination differ from the product of the per-component bests. It is still
found exactly and fast (:func:`best_combination`).

Array layout (``n`` impressions, ``m`` components in ``features.GENCO_COMPONENTS`` order)::

    base           [n]              float
    element_logits [n, m, N]        float, any value in the padding
    styles         [n, m, N]        int, GENCO_PAD in the padding (a component without candidates is absent)
    pair_logits    [n, P, S, S]     float
    chosen         [n, m]           int, -1 exactly where the component is absent
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

import features as F
from simulator.arrays import sigmoid

COMPONENT_INDEX = {c: j for j, c in enumerate(F.GENCO_COMPONENTS)}
PAIR_INDEX = np.array([[COMPONENT_INDEX[a], COMPONENT_INDEX[b]] for a, b in F.GENCO_PAIRS], np.int64)  # [P, 2]
S = F.GENCO_NUM_STYLES


def present(styles: np.ndarray) -> np.ndarray:
    """[n, m] bool: the ad has the component (its pool holds at least one element)."""
    return (np.asarray(styles) >= 0).any(axis=-1)


def pair_tables(pair_logits: np.ndarray) -> np.ndarray:
    """The flat ``features.GENCO_TRUTH_PAIR_LOGITS`` column [n, P*S*S] as [n, P, S, S]."""
    return np.asarray(pair_logits, np.float64).reshape(-1, len(F.GENCO_PAIRS), S, S)


def check_chosen(styles: np.ndarray, chosen: np.ndarray, what: str = "chosen") -> None:
    """Raises ``ValueError`` naming the row and component unless ``chosen`` picks a real candidate of every
    component the ad has and -1 for every component it lacks."""
    styles, chosen = np.asarray(styles), np.asarray(chosen, np.int64)
    if chosen.shape != styles.shape[:2]:
        raise ValueError(f"{what}: shape {chosen.shape}, expected {styles.shape[:2]} (rows, components)")
    has = present(styles)
    index = np.clip(chosen, 0, styles.shape[2] - 1)
    real = np.take_along_axis(styles, index[..., None], axis=2)[..., 0] >= 0
    bad = np.where(has, (chosen < 0) | (chosen >= styles.shape[2]) | ~real, chosen != -1)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        need = "the index of a candidate" if has[i, j] else "-1 (the ad lacks the component)"
        raise ValueError(f"{what}[{i}] component {F.GENCO_COMPONENTS[j]!r}: expected {need}, "
                         f"got {int(chosen[i, j])}")


def combination_logit(base, element_logits, styles, pair_logits, chosen) -> np.ndarray:
    """[n] true logit of combination ``chosen`` of every impression (the formula of the module docstring)."""
    styles = np.asarray(styles, np.int64)
    chosen = np.asarray(chosen, np.int64)
    check_chosen(styles, chosen)
    has = chosen >= 0
    index = np.maximum(chosen, 0)[..., None]
    elements = np.take_along_axis(np.asarray(element_logits, np.float64), index, axis=2)[..., 0]
    style = np.take_along_axis(styles, index, axis=2)[..., 0]
    logit = np.asarray(base, np.float64) + np.where(has, elements, 0.0).sum(axis=1)
    tables = pair_tables(pair_logits)
    rows = np.arange(len(chosen))
    for p, (a, b) in enumerate(PAIR_INDEX):
        both = has[:, a] & has[:, b]
        term = tables[rows, p, np.maximum(style[:, a], 0), np.maximum(style[:, b], 0)]
        logit += np.where(both, term, 0.0)
    return logit


def combination_ctr(base, element_logits, styles, pair_logits, chosen) -> np.ndarray:
    """[n] true CTR of combination ``chosen`` of every impression."""
    return sigmoid(combination_logit(base, element_logits, styles, pair_logits, chosen))


def component_argmax(element_logits, styles) -> np.ndarray:
    """[n, m] each component's best element alone (ignoring the pair terms); -1 where absent."""
    styles = np.asarray(styles)
    masked = np.where(styles >= 0, np.asarray(element_logits, np.float64), -np.inf)
    return np.where(present(styles), masked.argmax(axis=2), -1)


def best_combination(base, element_logits, styles, pair_logits) -> Tuple[np.ndarray, np.ndarray]:
    """The oracle: ([n] highest true logit, [n, m] a combination reaching it), exact.

    A pair term depends on the two styles only, so the best combination takes, for its style tuple, each
    component's best element of that style: with :math:`B_{j}[s]` that element's term, the best logit is
    :math:`b + \max_{s} \sum_j B_j[s_j] + \sum_{(j,j')} X_{(j,j')}[s_j, s_{j'}]`. The pairs form a tree, so
    the maximum over the :math:`S^m` style tuples is found by max-sum message passing from the leaves to the
    root (:data:`_TREE`), :math:`O(n\,|P|\,S^2)`.
    """
    styles = np.asarray(styles, np.int64)
    element_logits = np.asarray(element_logits, np.float64)
    n, m, _ = styles.shape
    has = present(styles)
    # best[i, j, s]: component j's best element term among its elements of style s (-inf: none of that style).
    by_style = np.where(styles[..., None] == np.arange(S), element_logits[..., None], -np.inf)  # [n, m, N, S]
    best, arg = by_style.max(axis=2), by_style.argmax(axis=2)  # [n, m, S]
    # An absent component contributes 0 through "style 0" and nothing through its pairs.
    best = np.where(has[..., None], best, np.where(np.arange(S) == 0, 0.0, -np.inf))
    tables = pair_tables(pair_logits)
    belief = best.copy()  # unary terms plus the messages received so far
    choice = {}  # child -> [n, S_parent] its best style given the parent's style
    for child, parent, p, child_is_first in _TREE:
        edge = tables[:, p] if child_is_first else tables[:, p].transpose(0, 2, 1)  # [n, S_child, S_parent]
        edge = np.where((has[:, child] & has[:, parent])[:, None, None], edge, 0.0)
        total = belief[:, child, :, None] + edge
        choice[child] = total.argmax(axis=1)
        belief[:, parent] += total.max(axis=1)
    style = np.zeros((n, m), np.int64)
    rows = np.arange(n)
    for root in _ROOTS:
        style[:, root] = belief[:, root].argmax(axis=1)
    for child, parent, _, _ in reversed(_TREE):
        style[:, child] = choice[child][rows, style[:, parent]]
    logits = np.asarray(base, np.float64) + sum(belief[rows, r, style[:, r]] for r in _ROOTS)
    chosen = np.take_along_axis(arg, style[..., None], axis=2)[..., 0]
    return logits, np.where(has, chosen, -1)


def _message_order():
    """The pairs as a forest rooted at each tree's first component: [(child, parent, pair, child is the
    pair's first component)] with every child after all of its own children (leaves first), and the roots."""
    m = len(F.GENCO_COMPONENTS)
    neighbours = {j: [] for j in range(m)}
    for p, (a, b) in enumerate(PAIR_INDEX.tolist()):
        neighbours[a].append((b, p, False))
        neighbours[b].append((a, p, True))
    seen, used, roots, order = set(), set(), [], []
    for root in range(m):
        if root in seen:
            continue
        roots.append(root)
        seen.add(root)
        frontier = [root]
        while frontier:
            parent = frontier.pop(0)
            for child, p, child_is_first in neighbours[parent]:
                if p in used:  # the edge to this node's own parent
                    continue
                if child in seen:
                    raise ValueError(f"features.GENCO_PAIRS must form a forest; {F.GENCO_PAIRS} has a cycle")
                used.add(p)
                seen.add(child)
                order.append((child, parent, p, child_is_first))
                frontier.append(child)
    return tuple(reversed(order)), tuple(roots)


_TREE, _ROOTS = _message_order()
