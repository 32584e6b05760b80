"""The production files (Dockerfiles, .dockerignore, k8s/) keep the invariants that matter.

Plain file checks, no Docker engine or cluster: they fail when a probe goes missing, a container
may run as root or write its root filesystem, a Secret template carries something other than a
placeholder, a manifest is left out of the kustomization, a selector stops matching, or an image
installs the dev extras. PyYAML is available because uvicorn[standard], a runtime dependency,
requires it. Every manifest file holds exactly one YAML document.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
PLACEHOLDER = "CHANGE_ME"

GATEWAY = "agentlink-gateway"
CONTROL_PLANE = "agentlink-control-plane"
WORKER = "agentlink-worker"
MIGRATE = "agentlink-migrate"
# Deployments that serve HTTP, and the Dockerfile of the image each runs.
HTTP_DEPLOYMENTS = {GATEWAY: "Dockerfile.gateway", CONTROL_PLANE: "Dockerfile.control"}
# Every Deployment and Job (test_the_expected_workloads_exist keeps this list complete, so the
# manifests are parsed by the tests, not at collection).
WORKLOADS = sorted([GATEWAY, CONTROL_PLANE, WORKER, MIGRATE])
IMAGES = {"agentlink-gateway": "Dockerfile.gateway", "agentlink-control": "Dockerfile.control"}
DOCKERFILES = sorted(set(IMAGES.values()))
IN_FLIGHT_METRIC = "agentlink_gateway_in_flight_requests"
# Environment variables whose values are secrets: only ever from a secretKeyRef.
SECRET_NAME = re.compile(
    r"(SECRET|PASSWORD|TOKEN|_API_KEY|ENCRYPTION_KEYS|DATABASE_URL|REDIS_URL)$"
)

Manifest = dict[str, Any]


# ------------------------------------------------------------------------------ k8s helpers


def _manifest_paths() -> list[Path]:
    return sorted(path for path in K8S.glob("*.y*ml") if path.stem != "kustomization")


@cache
def manifests() -> dict[str, Manifest]:
    loaded: dict[str, Manifest] = {}
    for path in _manifest_paths():
        documents = [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc is not None]
        assert len(documents) == 1, f"{path.name}: exactly one YAML document per file"
        loaded[path.name] = documents[0]
    return loaded


def of_kind(kind: str) -> dict[str, Manifest]:
    """Manifests of one kind, by metadata.name."""
    return {m["metadata"]["name"]: m for m in manifests().values() if m["kind"] == kind}


def workloads() -> dict[str, Manifest]:
    """Every Deployment and Job, by name."""
    return {**of_kind("Deployment"), **of_kind("Job")}


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(workload: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_container(workload: Manifest) -> dict[str, Any]:
    (container,) = pod_spec(workload)["containers"]
    return container


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def deployments_selected_by(selector: dict[str, str]) -> list[str]:
    return [name for name, d in of_kind("Deployment").items() if selects(selector, pod_labels(d))]


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port (a number or a port name) as the container's port number."""
    for declared in container.get("ports", []):
        if port in (declared.get("name"), declared["containerPort"]):
            number: int = declared["containerPort"]
            return number
    raise AssertionError(f"{container['name']} declares no port {port!r}")


def env_value(container: dict[str, Any], name: str) -> str | None:
    for entry in container.get("env", []):
        if entry["name"] == name:
            value: str | None = entry.get("value")
            return value
    return None


def cpu(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory(quantity: str | int) -> int:
    text = str(quantity)
    for suffix, factor in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


# ------------------------------------------------------------------------ Dockerfile helpers


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: int  # 0 before the first FROM, then 1, 2, ...


@cache
def dockerfile(name: str) -> tuple[Instruction, ...]:
    """Logical instructions: continuations joined, comment lines (even inside them) dropped."""
    instructions: list[Instruction] = []
    stage = 0
    pending = ""
    for raw in (ROOT / name).read_text("utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), arguments.strip(), stage))
    return tuple(instructions)


def final_stage(name: str) -> list[Instruction]:
    instructions = dockerfile(name)
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def exec_form(name: str, keyword: str) -> list[str] | None:
    """The last CMD/ENTRYPOINT as its JSON array; fails on the shell form (Docker would silently
    run it through `/bin/sh -c`, so the app would not be PID 1 and would miss SIGTERM)."""
    found = [i for i in dockerfile(name) if i.keyword == keyword]
    if not found:
        return None
    try:
        value = json.loads(found[-1].arguments)
    except json.JSONDecodeError:
        pytest.fail(f"{name}: {keyword} is not in exec (JSON array) form: {found[-1].arguments}")
    assert isinstance(value, list), f"{name}: {keyword} must be a JSON array"
    assert all(isinstance(item, str) for item in value)
    return value


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for token in shlex.split(instruction.arguments):
                key, _, value = token.partition("=")
                values[key] = value
    return values


def flag(arguments: list[str], name: str) -> str:
    assert name in arguments, f"{name} missing from {arguments}"
    return arguments[arguments.index(name) + 1]


def cmd(name: str) -> list[str]:
    command = exec_form(name, "CMD")
    assert command, f"{name} has no CMD"
    return command


# ------------------------------------------------------------------- manifests and kustomize


def test_every_manifest_is_one_namespace_agnostic_document() -> None:
    assert manifests(), "k8s/ holds no manifests"
    for file_name, manifest in manifests().items():
        assert manifest.get("apiVersion"), file_name
        assert manifest.get("kind"), file_name
        assert manifest["metadata"].get("name"), file_name
        assert "namespace" not in manifest["metadata"], f"{file_name}: namespace is set by overlays"


def test_kustomization_lists_every_manifest_once() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text("utf-8"))
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "a resource is listed twice"
    assert set(resources) == {path.name for path in _manifest_paths()}


def test_kustomization_images_cover_every_workload_image() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text("utf-8"))
    configured = {image["name"] for image in kustomization["images"]}
    used = {c["image"] for w in workloads().values() for c in containers(w)}
    assert used <= configured
    assert used <= set(IMAGES), f"unknown images {used - set(IMAGES)}"


def test_the_expected_workloads_exist() -> None:
    # A new Deployment must be added here on purpose, and so get the checks below.
    assert set(of_kind("Deployment")) == {GATEWAY, CONTROL_PLANE, WORKER}
    assert set(of_kind("Job")) == {MIGRATE}
    assert set(workloads()) == set(WORKLOADS)


# ---------------------------------------------------------------------------- pods and probes


@pytest.mark.parametrize("name", sorted(HTTP_DEPLOYMENTS))
def test_http_deployments_probe_liveness_and_readiness_on_the_right_paths(name: str) -> None:
    container = main_container(of_kind("Deployment")[name])
    expected_port = int(flag(cmd(HTTP_DEPLOYMENTS[name]), "--port"))
    probes = {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }
    for probe, path in probes.items():
        assert probe in container, f"{name}: no {probe}"
        http_get = container[probe]["httpGet"]
        assert http_get["path"] == path, f"{name}: {probe} must check {path}"
        assert container_port(container, http_get["port"]) == expected_port


@pytest.mark.parametrize("name", sorted(HTTP_DEPLOYMENTS))
def test_http_deployments_serve_the_port_their_image_listens_on(name: str) -> None:
    dockerfile_name = HTTP_DEPLOYMENTS[name]
    container = main_container(of_kind("Deployment")[name])
    assert IMAGES[container["image"]] == dockerfile_name
    port = int(flag(cmd(dockerfile_name), "--port"))
    assert container_port(container, "http") == port
    exposed = [i.arguments for i in final_stage(dockerfile_name) if i.keyword == "EXPOSE"]
    assert exposed == [str(port)]
    # 127.0.0.1 (uvicorn's default) is unreachable from the kubelet and the Service.
    assert flag(cmd(dockerfile_name), "--host") == "0.0.0.0"


@pytest.mark.parametrize("name", sorted(HTTP_DEPLOYMENTS))
def test_http_deployments_drain_before_sigterm_and_outlive_a_30s_stream(name: str) -> None:
    deployment = of_kind("Deployment")[name]
    container = main_container(deployment)
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        drain_s = int(pre_stop["sleep"]["seconds"])
    else:
        sleep, seconds = pre_stop["exec"]["command"]
        assert sleep == "sleep"
        drain_s = int(seconds)
    assert drain_s >= 5, "the load balancers need a few seconds to stop sending traffic"
    arguments = container.get("args") or cmd(HTTP_DEPLOYMENTS[name])
    graceful_s = int(flag(arguments, "--timeout-graceful-shutdown"))
    grace_s = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert grace_s > drain_s + graceful_s, "SIGKILL would cut requests that are still draining"
    if name == GATEWAY:
        assert graceful_s >= 30, "a stream may take 30 s to its first byte"


@pytest.mark.parametrize("name", sorted(HTTP_DEPLOYMENTS))
def test_http_deployments_spread_over_zones_and_nodes(name: str) -> None:
    deployment = of_kind("Deployment")[name]
    constraints = pod_spec(deployment)["topologySpreadConstraints"]
    keys = {c["topologyKey"] for c in constraints}
    assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys
    for constraint in constraints:
        assert selects(constraint["labelSelector"]["matchLabels"], pod_labels(deployment))


def test_the_worker_has_no_http_and_stops_gracefully() -> None:
    worker = of_kind("Deployment")[WORKER]
    container = main_container(worker)
    assert container["args"] == ["python", "-m", "control_plane.worker"]
    assert IMAGES[container["image"]] == "Dockerfile.control"
    # No endpoint to probe: an HTTP probe would fail and kill it in a loop. It exits non-zero
    # on fatal errors and the kubelet restarts it.
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert probe not in container
    assert container["ports"] == [{"name": "metrics", "containerPort": 9102}]
    [monitor] = of_kind("PodMonitor").values()
    assert selects(monitor["spec"]["selector"]["matchLabels"], pod_labels(worker))
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert not [
        s for s in of_kind("Service").values() if selects(s["spec"]["selector"], pod_labels(worker))
    ]
    assert pod_spec(worker)["terminationGracePeriodSeconds"] >= 30
    assert worker["spec"]["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize("name", WORKLOADS)
def test_pods_run_as_non_root_with_a_read_only_root_and_no_capabilities(name: str) -> None:
    workload = workloads()[name]
    spec = pod_spec(workload)
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] > 0
    assert pod_security["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host_namespace)
    for container in containers(workload):
        security = container["securityContext"]
        assert security.get("runAsNonRoot", True) is True
        assert security.get("runAsUser", 1) != 0
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security.get("privileged", False) is False
        assert "ALL" in security["capabilities"]["drop"]
        assert not security["capabilities"].get("add")


@pytest.mark.parametrize("name", WORKLOADS)
def test_the_only_writable_paths_are_emptydirs(name: str) -> None:
    workload = workloads()[name]
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
    for container in containers(workload):
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}
        assert "emptyDir" in mounts.get("/tmp", {}), f"{name}: /tmp must be an emptyDir"
        for path, volume in mounts.items():
            assert "emptyDir" in volume, f"{name}: {path} is not an emptyDir"
            assert volume["emptyDir"].get("sizeLimit"), f"{name}: {path} has no sizeLimit"


@pytest.mark.parametrize("name", WORKLOADS)
def test_every_container_has_requests_within_limits(name: str) -> None:
    for container in containers(workloads()[name]):
        resources = container["resources"]
        requests, limits = resources["requests"], resources["limits"]
        assert 0 < cpu(requests["cpu"]) <= cpu(limits["cpu"]), f"{name}: cpu"
        assert 0 < memory(requests["memory"]) <= memory(limits["memory"]), f"{name}: memory"


def test_gateway_workers_share_a_multiprocess_metrics_dir() -> None:
    deployment = of_kind("Deployment")[GATEWAY]
    container = main_container(deployment)
    workers = int(env_value(container, "WEB_CONCURRENCY") or "1")
    assert workers <= cpu(container["resources"]["limits"]["cpu"])
    metrics_dir = env_value(container, "PROMETHEUS_MULTIPROC_DIR")
    assert metrics_dir, "several uvicorn workers need prometheus-client multiprocess mode"
    assert env_of(final_stage("Dockerfile.gateway"))["PROMETHEUS_MULTIPROC_DIR"] == metrics_dir
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert "emptyDir" in mounts[metrics_dir]
    # The image's ENTRYPOINT empties this directory at start; `command` would bypass it.
    assert "command" not in container


def test_control_plane_runs_one_uvicorn_worker_per_pod() -> None:
    # Its metrics are single-process: several workers would each answer /metrics partially.
    container = main_container(of_kind("Deployment")[CONTROL_PLANE])
    arguments = container.get("args") or cmd("Dockerfile.control")
    assert "--workers" not in arguments
    assert env_value(container, "WEB_CONCURRENCY") in (None, "1")
    assert "WEB_CONCURRENCY" not in env_of(final_stage("Dockerfile.control"))


def test_migration_job_runs_the_runner_once_with_its_own_credentials() -> None:
    job = of_kind("Job")[MIGRATE]
    container = main_container(job)
    assert container["args"] == ["python", "-m", "common.migrations"]
    assert IMAGES[container["image"]] == "Dockerfile.control"
    assert pod_spec(job)["restartPolicy"] in ("Never", "OnFailure")
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["activeDeadlineSeconds"] > 0
    (database_url,) = [e for e in container["env"] if e["name"] == "DATABASE_URL"]
    assert "secretKeyRef" in database_url["valueFrom"]


# ------------------------------------------------------------------ autoscaling and disruption


def test_hpa_scales_the_gateway_on_cpu_and_in_flight_requests() -> None:
    hpa = of_kind("HorizontalPodAutoscaler")[GATEWAY]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        GATEWAY,
    )
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    metrics = hpa["spec"]["metrics"]
    (cpu_metric,) = [m for m in metrics if m["type"] == "Resource"]
    assert cpu_metric["resource"]["name"] == "cpu"
    assert cpu_metric["resource"]["target"]["type"] == "Utilization"
    (pods_metric,) = [m for m in metrics if m["type"] == "Pods"]
    assert pods_metric["pods"]["metric"]["name"] == IN_FLIGHT_METRIC
    assert pods_metric["pods"]["target"]["type"] == "AverageValue"
    assert float(pods_metric["pods"]["target"]["averageValue"]) > 0
    # The HPA owns the replica count; a fixed one would be reset on every apply.
    assert "replicas" not in of_kind("Deployment")[GATEWAY]["spec"]


def test_the_autoscaling_metric_is_one_the_gateway_exports() -> None:
    assert f'"{IN_FLIGHT_METRIC}"' in (ROOT / "gateway" / "metrics.py").read_text("utf-8")


def test_pdbs_select_existing_deployments_and_allow_drains() -> None:
    budgets = of_kind("PodDisruptionBudget")
    covered: set[str] = set()
    for name, pdb in budgets.items():
        assert pdb["apiVersion"] == "policy/v1"
        selected = deployments_selected_by(pdb["spec"]["selector"]["matchLabels"])
        assert len(selected) == 1, f"{name} selects {selected}"
        covered.update(selected)
        # maxUnavailable > 0 so a drain can always make progress (minAvailable can block it).
        assert "minAvailable" not in pdb["spec"]
        assert str(pdb["spec"]["maxUnavailable"]) not in ("0", "0%")
    assert covered == set(HTTP_DEPLOYMENTS)


# ---------------------------------------------------------------- services and observability


def test_services_route_to_their_deployments_named_ports() -> None:
    routed: set[str] = set()
    for name, service in of_kind("Service").items():
        (deployment_name,) = deployments_selected_by(service["spec"]["selector"])
        routed.add(deployment_name)
        container = main_container(of_kind("Deployment")[deployment_name])
        for port in service["spec"]["ports"]:
            assert port["name"], f"{name}: ServiceMonitors select ports by name"
            container_port(container, port["targetPort"])
    assert routed == set(HTTP_DEPLOYMENTS)


def test_service_monitors_scrape_metrics_of_both_http_services() -> None:
    scraped: set[str] = set()
    for name, monitor in of_kind("ServiceMonitor").items():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        selector = monitor["spec"]["selector"]["matchLabels"]
        matched = [
            s for s in of_kind("Service").values() if selects(selector, s["metadata"]["labels"])
        ]
        assert len(matched) == 1, f"{name} matches {len(matched)} Services"
        port_names = {port["name"] for port in matched[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names
            assert endpoint["path"] == "/metrics"
        scraped.update(deployments_selected_by(matched[0]["spec"]["selector"]))
    assert scraped == set(HTTP_DEPLOYMENTS)


def test_gateway_network_policy_allows_what_the_gateway_needs() -> None:
    (policy,) = of_kind("NetworkPolicy").values()
    assert deployments_selected_by(policy["spec"]["podSelector"]["matchLabels"]) == [GATEWAY]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == {8080}
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {53, 443, 5432, 6379} <= egress_ports  # DNS, providers, Postgres, Redis


# ------------------------------------------------------------------------ config and secrets


def test_secret_template_holds_only_placeholders() -> None:
    (secret,) = of_kind("Secret").values()
    assert "data" not in secret, "base64 `data` could hide a real value; use stringData"
    assert secret["stringData"], "the template should list every secret the apps read"
    for key, value in secret["stringData"].items():
        assert value == PLACEHOLDER, f"{key} must be the placeholder {PLACEHOLDER}"


def test_workloads_read_secrets_only_from_the_secret() -> None:
    (secret,) = of_kind("Secret").values()
    (config,) = of_kind("ConfigMap").values()
    assert not [key for key in config["data"] if SECRET_NAME.search(key)], "secret in ConfigMap"
    for name, workload in workloads().items():
        for container in containers(workload):
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, f"{name}: list the secrets it needs one by one"
                assert source["configMapRef"]["name"] == config["metadata"]["name"]
            for entry in container.get("env", []):
                reference = entry.get("valueFrom", {}).get("secretKeyRef")
                if reference is None:
                    assert not SECRET_NAME.search(entry["name"]), f"{name}: {entry['name']}"
                    continue
                assert reference["name"] == secret["metadata"]["name"]
                assert reference["key"] in secret["stringData"], f"{name}: {reference['key']}"


def _settings_loaders() -> dict[str, Callable[[dict[str, str]], object]]:
    from control_plane.settings import ApiSettings, WorkerSettings
    from gateway.settings import GatewaySettings

    return {
        GATEWAY: GatewaySettings.from_env,
        CONTROL_PLANE: ApiSettings.from_env,
        WORKER: WorkerSettings.from_env,
    }


def pod_env(name: str) -> dict[str, str]:
    """The environment a Deployment's main container gets: the ConfigMap, then its own env."""
    container = main_container(of_kind("Deployment")[name])
    (config,) = of_kind("ConfigMap").values()
    env = {str(key): str(value) for key, value in config["data"].items()}
    for entry in container["env"]:
        env[entry["name"]] = str(entry.get("value", "x" * 64))
    return env


@pytest.mark.parametrize("name", [GATEWAY, CONTROL_PLANE, WORKER])
def test_every_required_setting_is_provided(name: str) -> None:
    # A variable without a default stops the process at start-up when it is missing: the
    # process's own settings type must load from what the manifest gives it (a secret's value
    # stands in as a long placeholder).
    _settings_loaders()[name](pod_env(name))


def test_the_gateway_cuts_its_streams_before_uvicorn_would() -> None:
    """gateway/drain.py ends streams at SHUTDOWN_DRAIN_S with an in-band error and settles
    them; uvicorn's --timeout-graceful-shutdown would cancel them with nothing said. So both
    that and a JSON call's whole timeout come first, as the pod's settings give them."""
    from gateway.settings import GatewaySettings

    container = main_container(of_kind("Deployment")[GATEWAY])
    settings = GatewaySettings.from_env(pod_env(GATEWAY))
    arguments = container.get("args") or cmd(HTTP_DEPLOYMENTS[GATEWAY])
    graceful_s = int(flag(arguments, "--timeout-graceful-shutdown"))
    assert settings.shutdown_drain_s < graceful_s
    assert settings.upstream_timeout_s < graceful_s


# -------------------------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_is_multi_stage_on_python_311_slim(name: str) -> None:
    instructions = dockerfile(name)
    defaults = dict(
        i.arguments.split("=", 1)
        for i in instructions
        if i.keyword == "ARG" and i.stage == 0 and "=" in i.arguments
    )
    bases = [
        re.sub(r"\$\{?(\w+)\}?", lambda m: defaults[m.group(1)], i.arguments.split()[0])
        for i in instructions
        if i.keyword == "FROM"
    ]
    assert len(bases) >= 2, "a builder stage and a runtime stage"
    assert bases[-1] == "python:3.11-slim"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_runtime_runs_as_a_numeric_non_root_user(name: str) -> None:
    users = [i for i in dockerfile(name) if i.keyword == "USER"]
    assert users, f"{name} runs as root"
    last = users[-1]
    assert last.stage == max(i.stage for i in dockerfile(name)), "USER must be in the final stage"
    # Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
    uid = last.arguments.split(":")[0]
    assert uid.isdigit()
    assert int(uid) == 10001
    after_user = dockerfile(name)[dockerfile(name).index(last) + 1 :]
    assert not [i for i in after_user if i.keyword in ("RUN", "COPY", "ADD")]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_commands_are_exec_form(name: str) -> None:
    assert cmd(name)
    entrypoint = exec_form(name, "ENTRYPOINT")
    if entrypoint is not None and entrypoint[:2] == ["/bin/sh", "-c"]:
        # A wrapper must hand PID 1 to the app, or SIGTERM never reaches uvicorn.
        assert entrypoint[2].rstrip().endswith('exec "$@"')


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_runtime_environment(name: str) -> None:
    env = env_of(final_stage(name))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_installs_runtime_dependencies_only(name: str) -> None:
    runs = [i.arguments for i in dockerfile(name) if i.keyword == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert installs
    for run in installs:
        assert not re.search(r"\.\[|\[(dev|embedded)\]|--editable|\s-e\s", run), run
    text = " ".join(runs)
    assert "['project']['dependencies']" in text
    assert "optional-dependencies" not in text
    # Nothing is installed in the runtime stage: it only copies the builder's virtualenv.
    assert not [i for i in final_stage(name) if i.keyword == "RUN" and "pip" in i.arguments]
    assert "--mount=type=cache,target=/root/.cache/pip" in text


def _copied_sources(name: str) -> set[str]:
    sources: set[str] = set()
    for instruction in dockerfile(name):
        if instruction.keyword in ("COPY", "ADD"):
            parts = [p for p in instruction.arguments.split() if not p.startswith("--")]
            if not instruction.arguments.startswith("--from"):
                sources.update(part.rstrip("/").split("/")[0] for part in parts[:-1])
    return sources


def test_each_image_copies_only_what_it_runs() -> None:
    assert _copied_sources("Dockerfile.gateway") == {
        "pyproject.toml",
        "requirements-model.txt",  # the local embedding model
        "common",
        "crypto",
        "gateway",
    }
    assert _copied_sources("Dockerfile.control") == {
        "pyproject.toml",
        "requirements-model.txt",
        "common",
        "crypto",
        "control_plane",
        "migrations",
    }


def test_gateway_image_command() -> None:
    command = cmd("Dockerfile.gateway")
    assert command[0] == "uvicorn"
    assert flag(command, "--factory") == "gateway.app:create_app"
    assert flag(command, "--loop") == "uvloop"
    # httptools, with the limits of common/http_server.py (issue 9, item 10).
    assert flag(command, "--http") == "common.http_server:GuardedHttpProtocol"
    assert "--no-access-log" in command
    assert "--reload" not in command


def test_control_image_command_and_migrations() -> None:
    command = cmd("Dockerfile.control")
    assert command[0] == "uvicorn"
    assert flag(command, "--factory") == "control_plane.app:create_app"
    # The runner's default (<repo>/migrations) does not exist once the package is installed.
    migrations_dir = env_of(final_stage("Dockerfile.control"))["MIGRATIONS_DIR"]
    copies = [i.arguments.split() for i in final_stage("Dockerfile.control") if i.keyword == "COPY"]
    assert ["migrations", migrations_dir] in copies


def test_dockerignore_allows_only_what_the_images_copy() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert rules[0] == "*", "the build context is an allowlist"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = _copied_sources("Dockerfile.gateway") | _copied_sources("Dockerfile.control")
    assert copied <= allowed, f"COPY of {copied - allowed} would fail: not in the context"
    for private in (".git", ".venv", ".data", ".env", "tests"):
        assert private not in allowed
        assert private in rules


@pytest.mark.parametrize("name", DOCKERFILES)
def test_no_server_believes_forwarded_headers_from_any_peer(name: str) -> None:
    """uvicorn's default trusts X-Forwarded-For from 127.0.0.1, so any local peer could pose as
    any client; the control plane reads it from TRUSTED_PROXIES only (issue 9, item 9)."""
    assert "--no-proxy-headers" in cmd(name)
    from devstack.stack import _uvicorn

    assert "--no-proxy-headers" in _uvicorn("control_plane.app:create_app", 1)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_server_limits_headers_slow_clients_and_connections(name: str) -> None:
    """Issue 9, item 10: the guarded protocol (header limits, read timeouts) and a connection
    cap per worker, in the images (hence k8s) and in devstack."""
    from devstack.stack import _uvicorn

    for command in (cmd(name), _uvicorn("gateway.app:create_app", 1, 2)):
        assert command[command.index("--http") + 1] == "common.http_server:GuardedHttpProtocol"
        assert int(command[command.index("--limit-concurrency") + 1]) > 0
