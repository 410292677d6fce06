"""Canary and rollback: the router sends each request to one of two version labels, a user staying in one.

TF Serving names model versions by label (``version_labels`` in its model config, e.g. ``stable`` → 41,
``canary`` → 42) and moves a label between two loaded versions without failing a request. The router
addresses both models (AR and CR) by label rather than by version: :class:`TrafficSplit` puts a share of
users in the canary arm and everyone else in the stable arm, so

* a canary is "point ``canary`` at the new version" (the share of users it serves is the router's
  ``canary_share``), a promotion "point ``stable`` at it too", a rollback "point ``stable`` back" — all
  model-server config edits, no router restart;
* the arm is a hash of (``salt``, user id), uniform in [0, 1): a user keeps their arm for as long as the
  share and salt stay the same, and raising the share only moves stable users into the canary, never
  back (the online A/B harness reads the arm from each response's ``version_label``).

The drill (serve v1; push v2; ``canary=v2``; 10 % to canary; promote; roll back) is in BUILD.md and in
``tests/test_serving_rollout.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import re
from typing import Optional

# TF Serving's REST paths take labels of word characters (serving_config.md, "REST Usage").
_LABEL = re.compile(r"^[A-Za-z0-9_]+$")


def user_fraction(user_id: int, salt: str = "") -> float:
    """A uniform number in [0, 1) fixed by (``salt``, ``user_id``): the user's place in the split."""
    digest = hashlib.blake2b(f"{salt}:{int(user_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


@dataclasses.dataclass(frozen=True)
class TrafficSplit:
    """Which version label serves a user.

    Attributes:
      stable_label / canary_label: labels of both models on their servers.
      canary_share: the fraction of users in the canary arm, in [0, 1].
      salt: changes which users form the canary (keep it fixed for the life of an experiment).
    """

    stable_label: str = "stable"
    canary_label: str = "canary"
    canary_share: float = 0.0
    salt: str = ""

    def __post_init__(self):
        for name in ("stable_label", "canary_label"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _LABEL.match(value):
                raise ValueError(f"{name} must be letters, digits and underscores (a TF Serving label), "
                                 f"got {value!r}")
        if self.stable_label == self.canary_label:
            raise ValueError(f"stable_label and canary_label must differ, both are {self.stable_label!r}")
        if not 0.0 <= self.canary_share <= 1.0:
            raise ValueError(f"canary_share must be in [0, 1], got {self.canary_share}")

    def label_for(self, user_id: int) -> str:
        """The version label that scores ``user_id``'s requests."""
        if self.canary_share > 0.0 and user_fraction(user_id, self.salt) < self.canary_share:
            return self.canary_label
        return self.stable_label


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The router's ``--stable-label``, ``--canary-label``, ``--canary-share``, ``--split-salt``."""
    d = TrafficSplit()
    parser.add_argument("--stable-label", default=None,
                        help="address both models by version label (TF Serving's version_labels): the "
                             f"stable arm's label (default {d.stable_label!r} once any label flag is given)")
    parser.add_argument("--canary-label", default=None, help=f"the canary arm's label (default {d.canary_label!r})")
    parser.add_argument("--canary-share", type=float, default=None,
                        help="fraction of users (hashed on the user id) sent to the canary label")
    parser.add_argument("--split-salt", default=None, help="salt of the user hash (which users are canaries)")


def from_args(args: argparse.Namespace) -> Optional[TrafficSplit]:
    """The split the flags ask for, or None (no label flag: the latest versions serve)."""
    given = {k: v for k, v in (("stable_label", args.stable_label), ("canary_label", args.canary_label),
                               ("canary_share", args.canary_share), ("salt", args.split_salt)) if v is not None}
    return TrafficSplit(**given) if given else None
