"""A static, self-contained HTML report of a creative-ranking evaluation (one file, inline CSS and SVG).

Two layers:

* :func:`render_report` -- a pure function from plain, JSON-able *report data* to HTML (testable without
  TFMA);
* :func:`report_data_from_eval_dir` -- a thin loader turning the Evaluator's output (``tfma.load_eval_result``
  per model, the stored ``EvalConfig`` and ``tfma.load_validation_result``) into report data.

:func:`write_report` / :func:`write_report_from_eval_dir` glue them together, and
``python -m creative_metrics.report --eval-dir DIR --out report.html`` runs them from the command line.

Modules: :mod:`~creative_metrics.report.slices` (reading and pooling slices),
:mod:`~creative_metrics.report.formats` (number formats), :mod:`~creative_metrics.report.plots`
(matplotlib), :mod:`~creative_metrics.report.tables` and :mod:`~creative_metrics.report.page` (HTML, with
:mod:`~creative_metrics.report.style`), :mod:`~creative_metrics.report.models` (the models' roles),
:mod:`~creative_metrics.report.thresholds` and :mod:`~creative_metrics.report.loader` (TFMA),
:mod:`~creative_metrics.report.write` and :mod:`~creative_metrics.report.cli`.

Report data::

    {
      "title": "Creative ranking evaluation",
      "subtitle": "data: ...",                         # optional
      "blessed": True,                                 # optional: the Evaluator's verdict
      "validation": {                                  # optional: what the Evaluator checked
        "ok": True,
        "checks": [                                    # every threshold applied (see .thresholds)
          {"metric": "pctr_ad/auc", "model": "candidate", "kind": "value", "slice": "overall",
           "rule": ">= 0.53", "status": "passed", "value": 0.71, "message": ""}, ...],
        "failures": [],                                # failures no check shows, as text
        "no_baseline": False,                          # True: no baseline, no change threshold applied
        "error": "...",                                # present when the validation file is unreadable
      },
      "generated": "2026-01-31 08:00 UTC",             # optional
      "models": {                                      # the model under evaluation first
        "candidate": {
          "role": "candidate",                         # TFMA's role: "candidate" or "baseline"
          "slices": [                                  # one entry per TFMA slice; [] = overall
            {"slice": [], "metrics": {"nsctr": 0.031, "pctr_ad/auc": 0.71, ...}},
            {"slice": [["num_candidates_bucket", "4-8"]], "metrics": {...}},
          ],
          "calibration": [                             # optional: pctr_ad calibration buckets (overall)
            {"count": 10.0, "label_sum": 0.3, "prediction_sum": 0.28}, ...],
        },
        "baseline": {...},                             # optional
      },
    }

Metric names are TFMA's, prefixed with ``"<output>/"`` for metrics of a named model output (e.g.
``pctr_ad/auc``); the keys of :mod:`creative_metrics.tfma_metrics` are used as emitted. Slices by number
of candidate creatives use the buckets of :mod:`creative_metrics.candidate_buckets` (see
:mod:`~creative_metrics.report.slices`).
"""

from creative_metrics.report.cli import main
from creative_metrics.report.loader import report_data_from_eval_dir
from creative_metrics.report.page import render_report
from creative_metrics.report.slices import pool_num_candidates_buckets
from creative_metrics.report.write import write_report, write_report_from_eval_dir

__all__ = [
    "render_report",
    "report_data_from_eval_dir",
    "write_report",
    "write_report_from_eval_dir",
    "pool_num_candidates_buckets",
    "main",
]
