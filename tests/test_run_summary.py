"""The run summary a person reads at the end of a local run."""

from tfx_pipeline import run_summary as S


def _summary():
    components = [S.ComponentRun("Trainer", "COMPLETE", 61.6, {}, {}),
                  S.ComponentRun("Evaluator", "COMPLETE", 22.5, {"evaluation": "/e/1"}, {"blessed": 1}),
                  S.ComponentRun("Pusher", "COMPLETE", 0.1, {}, {"pushed": 1, "pushed_models": "ar,cr",
                                                                  "pushed_version": "7"})]
    return S.RunSummary("run-1", components)


METRICS = {"pctr_ad/auc": 0.56463, "pctr_ad/gauc": 0.5276, "pctr_ad/calibration": 0.98062,
           "nsctr": 0.01545, "sctr": 0.01821, "true_ctr_selected": 0.03013, "true_ctr_random": 0.02437,
           "true_ctr_oracle": 0.03356, "lift_share": 0.62656, "nsctr_coverage": 0.796}


def test_headline_groups_the_metrics_a_line_per_model_and_skips_absent_ones():
    assert S.format_metrics(METRICS) == [
        "    ad ranker (pctr_ad):        AUC 0.5646  GAUC 0.5276  calibration 0.9806",
        "    creative choice, replayed:  NSCTR 0.0155  sCTR 0.0182",
        "    creative choice, true CTR:  picked 0.0301  random 0.0244  best 0.0336  lift share 0.6266",
    ]


def test_all_metrics_lists_every_key_sorted():
    lines = S.format_metrics(METRICS, all_metrics=True)
    assert len(lines) == len(METRICS)
    assert lines[0].split() == ["lift_share", "0.62656"]


def test_quiet_summary_drops_the_component_table_the_live_lines_already_showed():
    quiet = S.format_summary(_summary(), METRICS, "/srv", "/r.html", components=False).splitlines()
    full = S.format_summary(_summary(), METRICS, "/srv", "/r.html").splitlines()
    assert quiet[:2] == ["Pipeline run run-1: succeeded", "  3 components, 84.2 s of component time"]
    assert "  Trainer                            COMPLETE       61.6" in full
    assert not any("Trainer" in line for line in quiet)
    for lines in (quiet, full):
        assert "  blessed: yes" in lines
        assert "  pushed: ar,cr version 7 -> /srv" in lines
