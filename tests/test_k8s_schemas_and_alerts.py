"""Every manifest in k8s/ against the Kubernetes JSON schemas, offline (kubernetes-validate
bundles them), strictly (an unknown field is an error), on the oldest Kubernetes we support and
the newest the package knows; and the alert rules against the code: every metric an
expression names is one a process exports, and every alert's runbook section exists.

kubernetes-validate has no schemas for the Prometheus Operator's CRDs (ServiceMonitor,
PodMonitor, PrometheusRule) or the Kustomization: those are checked here by shape.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from control_plane.knowledge.ingest import KnowledgeMetrics as WorkerKnowledgeMetrics
from control_plane.metrics import ControlPlaneMetrics
from control_plane.worker_metrics import WorkerMetrics
from gateway.knowledge import KnowledgeMetrics as GatewayKnowledgeMetrics
from gateway.metrics import GatewayMetrics

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
OPERATIONS = ROOT / "docs" / "operations.md"
OLDEST_SUPPORTED = "1.31.0"
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.stem == "kustomization":
            continue
        [document] = [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d is not None]
        found.append((path.name, document))
    return found


CORE = [(name, doc) for name, doc in _documents() if doc["kind"] not in CRD_KINDS]


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, kubernetes_validate.latest_version()])
@pytest.mark.parametrize(("name", "document"), CORE, ids=[name for name, _ in CORE])
def test_every_core_manifest_passes_the_kubernetes_schema(
    name: str, document: dict[str, Any], version: str
) -> None:
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{name} (Kubernetes {version}): {error.message} at {list(error.path)}")


def test_the_validator_does_refuse_a_bad_manifest() -> None:
    """The check above can fail: an unknown field and a wrong type are both refused."""
    hpa = dict(next(doc for name, doc in CORE if name == "control-plane-hpa.yaml"))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**hpa, "spec": {**hpa["spec"], "replicas": 3}},
                                     OLDEST_SUPPORTED, strict=True)  # fmt: skip
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**hpa, "spec": {**hpa["spec"], "minReplicas": "two"}},
                                     OLDEST_SUPPORTED, strict=True)  # fmt: skip


def test_the_crds_have_the_operator_shape() -> None:
    crds = [(name, doc) for name, doc in _documents() if doc["kind"] in CRD_KINDS]
    assert {doc["kind"] for _, doc in crds} == CRD_KINDS
    for name, doc in crds:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1", name
        assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}, name
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "agentlink", name


def test_both_http_deployments_autoscale() -> None:
    hpas = {doc["spec"]["scaleTargetRef"]["name"]: doc for _, doc in CORE
            if doc["kind"] == "HorizontalPodAutoscaler"}  # fmt: skip
    deployments = {doc["metadata"]["name"] for _, doc in CORE if doc["kind"] == "Deployment"}
    assert set(hpas) == {"agentlink-gateway", "agentlink-control-plane"} <= deployments
    for hpa in hpas.values():
        assert hpa["spec"]["minReplicas"] >= 2


# ---------------------------------------------------------------------------- alert rules


def exported_series() -> dict[str, set[str]]:
    """Every series name the processes export, with the label names it carries (built from
    the metric objects themselves: a labelled family without children exports no sample)."""
    registry = CollectorRegistry()
    worker = WorkerMetrics(registry)
    owners = [
        GatewayMetrics(registry),
        GatewayKnowledgeMetrics(registry),
        ControlPlaneMetrics(registry),
        worker,
        WorkerKnowledgeMetrics(worker.registry),
    ]
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "gauge": ("",)}  # fmt: skip
    series: dict[str, set[str]] = {}
    for owner in owners:
        for metric in vars(owner).values():
            if not isinstance(metric, MetricWrapperBase):
                continue
            labels = set(metric._labelnames)
            for suffix in suffixes[metric._type]:
                series[metric._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


def _rules() -> list[dict[str, Any]]:
    [rule] = [doc for _, doc in _documents() if doc["kind"] == "PrometheusRule"]
    return [item for group in rule["spec"]["groups"] for item in group["rules"]]


_METRIC = re.compile(r"\b(agentlink_[a-z0-9_]+)\b(?:\{([^}]*)\})?")
_MATCHER = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)")
_BY = re.compile(r"\bby\s*\(([^)]*)\)")


def test_every_alert_expression_names_metrics_and_labels_the_code_exports() -> None:
    series = exported_series()
    rules = _rules()
    assert len(rules) >= 10
    for rule in rules:
        alert, expr = rule["alert"], rule["expr"]
        named = _METRIC.findall(expr)
        assert named, f"{alert} names no metric"
        known: set[str] = set()
        for metric, matchers in named:
            assert metric in series, f"{alert}: {metric} is not exported"
            known |= series[metric]
            for label in _MATCHER.findall(matchers):
                assert label in series[metric], f"{alert}: {metric} has no label {label}"
        for grouping in _BY.findall(expr):
            for label in filter(None, (item.strip() for item in grouping.split(","))):
                assert label in known, f"{alert}: grouped by {label}, which no series has"


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section() -> None:
    text = OPERATIONS.read_text("utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in text.splitlines()
        if line.startswith("#")
    }
    names = [rule["alert"] for rule in _rules()]
    assert len(names) == len(set(names))
    for rule in _rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/operations.md#{rule['alert'].lower()}", rule["alert"]
        assert url.split("#", 1)[1] in anchors, f"no section for {rule['alert']}"


def test_the_label_check_does_catch_a_wrong_name() -> None:
    series = exported_series()
    assert "agentlink_gateway_requests_total" in series
    assert "agentlink_gateway_request_duration_seconds_bucket" in series
    assert "agentlink_gateway_requests" not in series  # a counter is exported as ..._total
    assert series["agentlink_control_requests_total"] == {"route", "method", "status_class"}
    assert "le" in series["agentlink_gateway_request_duration_seconds_bucket"]
    assert series["agentlink_worker_webhook_deliveries_total"] == {"outcome"}
