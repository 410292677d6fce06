"""``python -m creative_metrics.report --eval-dir DIR --out report.html``: re-render a report."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from creative_metrics.report.write import write_report_from_eval_dir


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m creative_metrics.report",
                                description="Render the creative-ranking evaluation report (HTML). The "
                                            "blessing thresholds are read from the evaluation itself.")
    p.add_argument("--eval-dir", required=True, help="TFMA output directory (the Evaluator's evaluation)")
    p.add_argument("--baseline-eval-dir", help="optional separate evaluation of the baseline model")
    p.add_argument("--out", required=True, help="HTML file to write")
    p.add_argument("--title", help="report title")
    args = p.parse_args(argv)
    try:
        path = write_report_from_eval_dir(args.eval_dir, args.out, baseline_eval_dir=args.baseline_eval_dir,
                                          title=args.title)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0
