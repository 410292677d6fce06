"""What a pipeline run did, read back from ML Metadata: components and their wall time, artifacts, metrics,
blessing, push. The local runner prints it; tests and benchmarks assert on it."""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

_STATE = metadata_store_pb2.Execution.State


@dataclasses.dataclass
class ComponentRun:
    name: str
    state: str
    seconds: float
    outputs: Dict[str, str]  # output key -> artifact uri
    properties: Dict[str, object]


@dataclasses.dataclass
class RunSummary:
    run_id: str
    components: List[ComponentRun]

    def component(self, name: str) -> Optional[ComponentRun]:
        return next((c for c in self.components if c.name == name), None)

    @property
    def succeeded(self) -> bool:
        return bool(self.components) and all(c.state in ("COMPLETE", "CACHED") for c in self.components)

    def output_uri(self, component: str, key: str) -> Optional[str]:
        c = self.component(component)
        return c.outputs.get(key) if c else None


def _value(v: metadata_store_pb2.Value):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def read_latest_run(metadata_path: str) -> RunSummary:
    """Summarises the most recent pipeline run recorded in the SQLite ML Metadata at ``metadata_path``."""
    if not os.path.exists(metadata_path):
        raise FileNotFoundError(f"no ML Metadata at {metadata_path}")
    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = metadata_path
    cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(cfg)
    runs = store.get_contexts_by_type("pipeline_run")
    if not runs:
        raise RuntimeError(f"ML Metadata at {metadata_path} records no pipeline run")
    run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    executions = sorted(store.get_executions_by_context(run.id), key=lambda e: e.id)
    node_names = {}
    for ctx in store.get_contexts_by_type("node"):
        for e in store.get_executions_by_context(ctx.id):
            node_names[e.id] = ctx.name.split(".")[-1]
    events = store.get_events_by_execution_ids([e.id for e in executions])
    outputs: Dict[int, Dict[str, int]] = {}
    for ev in events:
        if ev.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT):
            key = ev.path.steps[0].key if ev.path.steps else str(ev.artifact_id)
            outputs.setdefault(ev.execution_id, {})[key] = ev.artifact_id
    artifact_ids = sorted({a for d in outputs.values() for a in d.values()})
    artifacts = {a.id: a for a in store.get_artifacts_by_id(artifact_ids)} if artifact_ids else {}
    components = []
    for e in executions:
        seconds = max(0.0, (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000.0)
        outs = {k: artifacts[a].uri for k, a in outputs.get(e.id, {}).items() if a in artifacts}
        props = {}
        for a_id in outputs.get(e.id, {}).values():
            if a_id in artifacts:
                props.update({k: _value(v) for k, v in artifacts[a_id].custom_properties.items()})
        components.append(ComponentRun(node_names.get(e.id, str(e.type_id)), _STATE.Name(e.last_known_state),
                                       seconds, outs, props))
    return RunSummary(run.name, components)


# The headline of a run, as (label, [(metric key, short name)]): what a person reads first. Every metric is
# in the HTML report; keys absent from a variant's evaluation (e.g. no AR in 'cr') are skipped.
HEADLINE = (
    ("ad ranker (pctr_ad)", [("pctr_ad/auc", "AUC"), ("pctr_ad/gauc", "GAUC"),
                             ("pctr_ad/calibration", "calibration")]),
    ("creative ranker (pctr_c)", [("pctr_c/auc", "AUC"), ("pctr_c/calibration", "calibration")]),
    ("creative choice, replayed", [("nsctr", "NSCTR"), ("sctr", "sCTR"), ("calibrated_sctr", "calibrated sCTR")]),
    ("creative choice, true CTR", [("true_ctr_selected", "picked"), ("true_ctr_random", "random"),
                                   ("true_ctr_oracle", "best"), ("lift_share", "lift share")]),
)


def format_metrics(metrics: Dict[str, float], all_metrics: bool = False) -> List[str]:
    """The headline metrics (every metric with ``all_metrics``), one group a line."""
    if all_metrics:
        return [f"    {k:40s} {metrics[k]:.5f}" for k in sorted(metrics)]
    lines = []
    for label, keys in HEADLINE:
        shown = [f"{name} {metrics[key]:.4f}" for key, name in keys if key in metrics]
        if shown:
            lines.append(f"    {label + ':':27s} " + "  ".join(shown))
    return lines


def format_summary(summary: RunSummary, metrics: Dict[str, float], serving_root: str,
                   report_path: Optional[str], components: bool = True, all_metrics: bool = False) -> str:
    """The run's summary: the component table (unless the run already showed a line per component), the
    evaluation's headline metrics (every metric with ``all_metrics``), the blessing, the push and the report."""
    lines = [f"Pipeline run {summary.run_id}: {'succeeded' if summary.succeeded else 'FAILED'}"]
    total = sum(c.seconds for c in summary.components)
    if components:
        lines += ["", f"  {'component':34s} {'state':10s} {'seconds':>8s}"]
        lines += [f"  {c.name:34s} {c.state:10s} {c.seconds:8.1f}" for c in summary.components]
        lines.append(f"  {'(sum of component times)':34s} {'':10s} {total:8.1f}")
    else:
        lines.append(f"  {len(summary.components)} components, {total:.1f} s of component time")
    evaluator = summary.component("Evaluator")
    if evaluator:
        lines += ["", f"  evaluation: {evaluator.outputs.get('evaluation', '-')}"]
    if metrics:
        lines.append("  metrics (eval split, overall slice, model under evaluation):")
        lines += format_metrics(metrics, all_metrics)
    pusher = summary.component("Pusher")
    blessing = evaluator.properties.get("blessed") if evaluator else None
    lines.append(f"  blessed: {'yes' if blessing == 1 else 'no'}")
    if pusher and pusher.properties.get("pushed") == 1:
        lines.append(f"  pushed: {pusher.properties.get('pushed_models')} version "
                     f"{pusher.properties.get('pushed_version')} -> {serving_root}")
    else:
        lines.append(f"  pushed: nothing (served versions under {serving_root} unchanged)")
    if report_path:
        lines.append(f"  report: {report_path} (every metric and slice)")
    return "\n".join(lines)
