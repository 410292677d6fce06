"""Writing the report file from report data, a TFMA output directory or ``tfma.EvalResult`` objects."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

from creative_metrics.report import models as roles
from creative_metrics.report.loader import model_data, report_data_from_eval_dir
from creative_metrics.report.page import render_report

__all__ = ["write_report", "write_report_from_eval_dir"]


def write_atomically(text: str, out_path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out_path)  # never leave a half-written report behind
    return out_path


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _eval_result(source: Any):
    if hasattr(source, "slicing_metrics"):
        return source
    import tensorflow_model_analysis as tfma

    return tfma.load_eval_result(os.fspath(source))


def write_report(source: Any, out_path: str, *, baseline: Any = None, blessed: Optional[bool] = None,
                 title: Optional[str] = None) -> str:
    """Writes the HTML report; returns ``out_path``.

    Args:
      source: report data (a dict), a TFMA output directory, or a ``tfma.EvalResult``.
      out_path: the HTML file to write (directories are created).
      baseline: with a directory or ``EvalResult`` source, an optional separate baseline evaluation (a
        directory or ``EvalResult``).
      blessed, title: as :func:`creative_metrics.report.report_data_from_eval_dir`.
    """
    if isinstance(source, Mapping):
        data = dict(source)
    elif _is_path(source):
        baseline_dir = os.fspath(baseline) if _is_path(baseline) else None
        data = report_data_from_eval_dir(os.fspath(source), baseline_dir, blessed=blessed, title=title)
        if baseline is not None and not _is_path(baseline):
            data["models"].setdefault(roles.BASELINE_MODEL, model_data(baseline, roles.BASELINE_MODEL))
    elif hasattr(source, "slicing_metrics"):
        data = {"title": title, "blessed": blessed,
                "models": {roles.CANDIDATE_MODEL: model_data(source, roles.CANDIDATE_MODEL)}}
        if baseline is not None:
            data["models"][roles.BASELINE_MODEL] = model_data(_eval_result(baseline), roles.BASELINE_MODEL)
    else:
        raise ValueError(
            f"source must be report data, an eval directory or an EvalResult, got {type(source)}")
    if title:
        data["title"] = title
    return write_atomically(render_report(data), out_path)


def write_report_from_eval_dir(eval_dir: str, out_path: str, *, baseline_eval_dir: Optional[str] = None,
                               blessed: Optional[bool] = None, title: Optional[str] = None) -> str:
    """:func:`write_report` from a TFMA output directory (what the pipeline calls after the Evaluator)."""
    return write_report(eval_dir, out_path, baseline=baseline_eval_dir, blessed=blessed, title=title)
