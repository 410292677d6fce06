"""The models of a report and their roles in TFMA's model comparison.

"Candidate" in TFMA means the model under evaluation (in this project a "candidate" is otherwise a candidate
creative), so the report data keeps TFMA's role strings but the page says *model under evaluation* and
*baseline (latest blessed)*.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

# Roles of the report data (TFMA's: the model under evaluation, and the baseline it is compared with).
CANDIDATE_MODEL = "candidate"
BASELINE_MODEL = "baseline"

ROLE_TITLES = {CANDIDATE_MODEL: "model under evaluation", BASELINE_MODEL: "baseline (latest blessed)"}

ROLE_COLORS = {CANDIDATE_MODEL: "#1f6feb", BASELINE_MODEL: "#8b949e"}
OTHER_COLOR = "#6e7781"


def ordered(models: Mapping[str, Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """The models with the model under evaluation first."""
    items = sorted(models.items(), key=lambda kv: kv[1].get("role") != CANDIDATE_MODEL)
    return {name: dict(m) for name, m in items}


def with_role(models: Mapping[str, Mapping[str, Any]], role: str) -> Optional[str]:
    """The name of the first model with ``role``, or None."""
    return next((n for n, m in models.items() if m.get("role") == role), None)


def title(name: str, model: Mapping[str, Any]) -> str:
    """How the page names a model: by its role, with its own name when that says more."""
    role_title = ROLE_TITLES.get(model.get("role"))
    if role_title is None:
        return name
    return role_title if name in (model.get("role"), "") else f"{name} ({role_title})"


def color(model: Mapping[str, Any]) -> str:
    return ROLE_COLORS.get(model.get("role"), OTHER_COLOR)
