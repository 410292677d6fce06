"""Online A/B experiments on the simulated world, and the paper's tables from them.

``python -m experiments.run --profile small --out DIR`` trains what a profile needs through the pipeline,
serves it behind the real router, runs the A/B test over the world's live days and the profile's fidelity
study, and writes ``results.json``, ``results.md`` and ``report.html``.

* :mod:`experiments.config` -- an arm (mode, models, label), a training, a profile;
  :mod:`experiments.profiles` -- the named profiles;
* :mod:`experiments.deployments` -- the router over HTTP (reference), in-process, or in front of no-op models;
* :mod:`experiments.abtest` -- the closed loop: requests, arms by user hash, clicks from the truth, daily logs;
* :mod:`experiments.stats` -- metrics with bootstrap CIs over users, lifts, means over seeds;
* :mod:`experiments.fidelity` -- the fidelity study (Fig. 4 with the truth): offline metrics' lifts against
  true lifts over a ladder of creative rankers, under two logging policies and the sCTR-bias knob on and off
  (``python -m experiments.fidelity --profile NAME --out DIR`` runs it alone);
* :mod:`experiments.results`, :mod:`experiments.report` -- ``results.json`` and its Markdown and HTML views;
* :mod:`experiments.run` -- the command.

GenCO (Gu et al., 2025), offline on the combination world (``python -m experiments.genco --profile small
--out DIR``): :mod:`experiments.genco` (the command and its profiles), :mod:`experiments.genco_methods` (the
methods of Tables 2-3), :mod:`experiments.genco_tables` (Tables 2-4 and Fig. 3 with intervals over seeds).
"""
