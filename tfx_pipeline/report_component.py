"""Writes the evaluation report (one self-contained HTML file) from the Evaluator's output.

The report itself (tables, plots, estimate-vs-truth) lives in :mod:`creative_metrics.report`; this component
only places it in the pipeline, after the Evaluator, so every run leaves ``report.html`` beside its metrics.
The report reads the thresholds the Evaluator applied from the evaluation itself (its stored EvalConfig and
validation result), so the rule it shows is the one that blessed or rejected the model.
"""
# (No `from __future__ import annotations`: TFX parses the component's type hints at import time.)

import os

from tfx import v1 as tfx
from tfx.types import artifact, standard_artifacts

REPORT_FILE = "report.html"


class EvaluationReportArtifact(artifact.Artifact):
    """A directory holding ``report.html``."""

    TYPE_NAME = "adcr.EvaluationReport"  # namespaced: Kubeflow V2 requires "<ns>.<Name>"


@tfx.dsl.components.component
def EvaluationReport(
    evaluation: tfx.dsl.components.InputArtifact[standard_artifacts.ModelEvaluation],
    blessing: tfx.dsl.components.InputArtifact[standard_artifacts.ModelBlessing],
    report: tfx.dsl.components.OutputArtifact[EvaluationReportArtifact],
) -> None:
    from creative_metrics import report as report_lib  # imported in the worker, not at pipeline build

    blessed = bool(blessing.get_int_custom_property("blessed"))
    report_lib.write_report_from_eval_dir(evaluation.uri, os.path.join(report.uri, REPORT_FILE),
                                          blessed=blessed)
