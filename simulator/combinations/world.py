r"""The multi-component world: users, ads, per-component pools of elements that churn, and the click model.

Entities (logged ids are ``index + 1``; element ids are per component):

* **Users**: gender and age bucket (observable; their pair is the *segment* :math:`g_u`, 18 of them), a hidden
  click propensity :math:`\beta_u` and a traffic share.
* **Ads**: a category :math:`k_a` (``features.AD_CATEGORY``; its *group* :math:`\gamma_a = k_a \bmod 5` names
  ``features.GENCO_CATEGORY_GROUPS``), a hidden quality :math:`q_a`, a Zipf-like popularity, and for each
  component :math:`j` of ``features.GENCO_COMPONENTS`` either no pool (the ad lacks the component, with
  probability :math:`1 -` ``coverage[j]``) or a pool of :math:`n_{a,j}` *tracks*
  (:math:`1 \le n_{a,j} \le` ``features.GENCO_MAX_CANDIDATES``; geometric, mean ``mean_candidates[j]``:
  Gu et al., 2025, Table 1).
* **Elements**: a track holds one element a day; each day it is replaced by a new element with probability
  ``element_churn``, so pools change across days and every element gets few impressions. An element has an
  observable style :math:`s_e \in [0, S)` (``features.GENCO_NUM_STYLES``; drawn from the ad's own style mix), a
  hidden quality :math:`q_e \sim \mathcal N(0, \sigma_e^2)` and the production system's noisy estimate of it,
  :math:`\hat q_e = q_e + \mathcal N(0, \sigma_{est}^2)`.

Ground truth. User :math:`u` sees ad :math:`a` with the combination :math:`c = (e_j)_{j \in J_a}` (one element
of every component the ad has):

.. math::
    \mathrm{logit}\,p(\mathrm{click}) = \underbrace{b + \beta_u + q_a}_{\text{base}}
      + \sum_{j \in J_a} \underbrace{\omega_{\gamma_a, j}\,\big(q_{e_j} + G_j[g_u, s_{e_j}]
            + H_j[k_a, s_{e_j}]\big)}_{\text{element term } E}
      + \sum_{(j, j') \in P,\; j, j' \in J_a} X_{\gamma_a, (j, j')}\big[s_{e_j}, s_{e_{j'}}\big]

* :math:`b`: the global bias, calibrated so the production-logged CTR is ``target_ctr``;
* :math:`G_j \sim \mathcal N(0, \sigma_p^2)`: *personalised* element effects, user segment x element style;
* :math:`H_j \sim \mathcal N(0, \sigma_k^2)`: ad category x element style;
* :math:`\omega`: the importance of each component by category group (fixed; the image matters most
  everywhere, highlight / attribute / structure_attribute more for phone, computer and wine, the image more
  still for clothing and bedding, after Gu et al., 2025, Fig. 3)::

        group      title  image  marketing  highlight  attribute  structure_attribute
        phone      1.0    1.6    0.8        1.12       0.96       0.96     (computer, wine alike)
        clothing   1.0    2.24   0.8        0.7        0.6        0.6      (bedding alike)

* :math:`X \sim \mathcal N(0, \sigma_x^2)`: *cross-component interactions*: for the pairs :math:`P` =
  ``features.GENCO_PAIRS`` and each category group, how well an element style of one component goes with a
  style of the other (e.g. an image style that clashes with a title style). Because of them the best
  combination is in general not the product of the per-component bests.

The true CTR of *every* combination of an impression's pools is computable: the log carries :math:`b`,
:math:`E` for every candidate and the impression's :math:`X` tables, and
:mod:`simulator.combinations.truth` evaluates the formula (and finds the best combination exactly).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Dict, Tuple

import numpy as np

import features as F
from simulator.arrays import ragged_positions
from simulator.combinations.config import CombinationConfig

M = len(F.GENCO_COMPONENTS)
N = F.GENCO_MAX_CANDIDATES
S = F.GENCO_NUM_STYLES
G = len(F.GENCO_CATEGORY_GROUPS)
NUM_SEGMENTS = len(F.GENDERS) * len(F.AGE_BUCKETS)

_BASE_IMPORTANCE = np.array([1.0, 1.6, 0.8, 0.7, 0.6, 0.6])
_DETAIL_GROUPS = (0, 1, 2)  # phone, computer, wine: the detail components matter more
_VISUAL_GROUPS = (3, 4)  # clothing, bedding: the image matters more


def importance_table() -> np.ndarray:
    r"""[G, M] :math:`\omega`, the component importance by category group (module docstring)."""
    omega = np.tile(_BASE_IMPORTANCE, (G, 1))
    detail = [F.GENCO_COMPONENTS.index(c) for c in ("highlight", "attribute", "structure_attribute")]
    omega[np.ix_(_DETAIL_GROUPS, detail)] *= 1.6
    omega[_VISUAL_GROUPS, F.GENCO_COMPONENTS.index("image")] *= 1.4
    return omega


def category_group(category: np.ndarray) -> np.ndarray:
    """Group (index into ``features.GENCO_CATEGORY_GROUPS``) of each ad category."""
    return np.asarray(category, np.int64) % G


@dataclasses.dataclass
class ComponentPools:
    """One component's pools: tracks grouped by ad, the element each holds each day, and the elements.

    Ad ``a``'s pool on day ``d`` is ``track_day_element[ad_ptr[a]:ad_ptr[a + 1], d]`` (element indices, in
    track order: the logged order); ``ad_ptr[a + 1] == ad_ptr[a]`` when the ad lacks the component.
    """

    ad_ptr: np.ndarray  # [A + 1]
    track_day_element: np.ndarray  # [T, D]
    element_style: np.ndarray  # [E]
    element_quality: np.ndarray  # [E] q_e
    element_estimate: np.ndarray  # [E] the production estimate

    @property
    def pool_size(self) -> np.ndarray:
        return np.diff(self.ad_ptr)

    @property
    def num_elements(self) -> int:
        return len(self.element_style)


@dataclasses.dataclass
class CombinationWorld:
    """Entity tables and click-model parameters of the multi-component world (see the module docstring)."""

    config: CombinationConfig
    user_gender: np.ndarray  # [U]
    user_age: np.ndarray  # [U]
    user_propensity: np.ndarray  # [U] beta_u
    user_traffic_cdf: np.ndarray  # [U]
    ad_category: np.ndarray  # [A]
    ad_quality: np.ndarray  # [A] q_a
    ad_popularity_cdf: np.ndarray  # [A]
    components: Dict[str, ComponentPools]  # by features.GENCO_COMPONENTS name
    segment_style: np.ndarray  # [M, NUM_SEGMENTS, S] G_j
    category_style: np.ndarray  # [M, K, S] H_j
    importance: np.ndarray  # [G, M] omega
    pair_style: np.ndarray  # [G, P, S, S] X
    bias: float

    @property
    def num_users(self) -> int:
        return len(self.user_gender)

    @property
    def num_ads(self) -> int:
        return len(self.ad_category)

    # ----------------------------------------------------------------------------------------- pools
    def pools(self, day: int, ads: np.ndarray) -> np.ndarray:
        """[n, M, N] element index of every candidate of the ads' pools on ``day`` (-1 in the padding)."""
        ads = np.asarray(ads, np.int64)
        out = np.full((len(ads), M, N), -1, np.int64)
        for j, name in enumerate(F.GENCO_COMPONENTS):
            comp = self.components[name]
            size = comp.pool_size[ads]
            rows, pos = ragged_positions(size)
            out[rows, j, pos] = comp.track_day_element[comp.ad_ptr[ads][rows] + pos, day]
        return out

    def element_ids(self, elements: np.ndarray) -> np.ndarray:
        """Logged ids (``index + 1``) of [n, M, N] element indices; ``features.GENCO_PAD`` in the padding."""
        return np.where(elements >= 0, elements + 1, F.GENCO_PAD)

    def _per_component(self, elements: np.ndarray, table: str, pad) -> np.ndarray:
        out = np.full(elements.shape, pad, dtype=np.asarray(pad).dtype)
        for j, name in enumerate(F.GENCO_COMPONENTS):
            real = elements[:, j] >= 0
            out[:, j][real] = getattr(self.components[name], table)[elements[:, j][real]]
        return out

    def styles(self, elements: np.ndarray) -> np.ndarray:
        """[n, M, N] style of every candidate; ``features.GENCO_PAD`` in the padding."""
        return self._per_component(elements, "element_style", np.int64(F.GENCO_PAD))

    def estimates(self, elements: np.ndarray) -> np.ndarray:
        """[n, M, N] the production system's quality estimate of every candidate (0 in the padding)."""
        return self._per_component(elements, "element_estimate", np.float64(0.0))

    # ----------------------------------------------------------------------------------- click model
    def base_logit(self, users: np.ndarray, ads: np.ndarray) -> np.ndarray:
        """[n] :math:`b + \\beta_u + q_a`."""
        return self.bias + self.user_propensity[users] + self.ad_quality[ads]

    def element_logits(self, users: np.ndarray, ads: np.ndarray, elements: np.ndarray) -> np.ndarray:
        """[n, M, N] the element term :math:`E` of every candidate (0 in the padding)."""
        quality = self._per_component(elements, "element_quality", np.float64(0.0))
        styles = np.maximum(self.styles(elements), 0)
        segment = (self.user_gender[users] * len(F.AGE_BUCKETS) + self.user_age[users])[:, None, None]
        category = self.ad_category[ads][:, None, None]
        comp = np.arange(M)[None, :, None]
        effect = quality + self.segment_style[comp, segment, styles] + self.category_style[comp, category, styles]
        omega = self.importance[category_group(self.ad_category[ads])][:, :, None]
        return np.where(elements >= 0, omega * effect, 0.0)

    def pair_logits(self, ads: np.ndarray) -> np.ndarray:
        """[n, P * S * S] the impression's style-pair tables :math:`X_{\\gamma_a}` (the logged layout)."""
        return self.pair_style[category_group(self.ad_category[ads])].reshape(len(ads), -1)

    # ------------------------------------------------------------------------------------ save / load
    def save(self, path: str) -> None:
        arrays = {"config_json": np.array(json.dumps(self.config.to_dict())), "bias": np.array(self.bias)}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "components":
                for name, comp in value.items():
                    for key, column in dataclasses.asdict(comp).items():
                        arrays[f"components/{name}/{key}"] = column
            elif field.name not in ("config", "bias"):
                arrays[field.name] = np.asarray(value)
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: str) -> "CombinationWorld":
        with np.load(path) as data:
            kwargs = {"components": {}}
            parts: Dict[str, Dict[str, np.ndarray]] = {}
            for key in data.files:
                if key == "config_json":
                    kwargs["config"] = CombinationConfig.from_dict(json.loads(str(data[key])))
                elif key == "bias":
                    kwargs[key] = float(data[key])
                elif key.startswith("components/"):
                    _, name, column = key.split("/")
                    parts.setdefault(name, {})[column] = data[key]
                else:
                    kwargs[key] = data[key]
        kwargs["components"] = {name: ComponentPools(**parts[name]) for name in F.GENCO_COMPONENTS}
        return cls(**kwargs)


def truth_arrays(world: CombinationWorld, users: np.ndarray, ads: np.ndarray,
                 elements: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(base [n], element_logits [n, M, N], styles [n, M, N], pair_logits [n, P*S*S]) of impressions: the
    arguments of :mod:`simulator.combinations.truth`."""
    return (world.base_logit(users, ads), world.element_logits(users, ads, elements), world.styles(elements),
            world.pair_logits(ads))
