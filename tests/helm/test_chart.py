"""The Helm chart: lint, Kubernetes schema validation and the rendered manifests.

Everything runs the real helm (see ``support.helm``) on ``helm/sessiond`` with
each ``ci/*.yaml`` values file.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate

from sessiond.server.app import SERVICE_NAME
from support.helm import (
    CHART,
    CI_VALUES,
    KUBE_VERSIONS,
    NEWEST,
    OLDEST,
    find,
    helm,
    load_values,
    one,
    render,
    server_container,
    server_deployment,
    server_environment,
    template,
    values_ids,
)

VALIDATOR = Path(sys.executable).with_name("kubernetes-validate")
CI = {path.stem: path for path in CI_VALUES}
EXPECTED_CI = {
    "default-values",
    "production-irsa-values",
    "hpa-values",
    "dev-moto-values",
    "engines-values",
    "engines-bedrock-values",
}


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return server_deployment(docs)["spec"]["template"]["spec"]


def all_containers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every container and init container of every workload."""
    found = []
    for deployment in find(docs, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        found += spec.get("initContainers", []) + spec["containers"]
    return found


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# ---- lint and schema validation ---------------------------------------------


def test_ci_values_cover_the_required_scenarios() -> None:
    assert EXPECTED_CI <= set(CI), "ci values files are missing"
    assert any(load_values(p).get("tls", {}).get("enabled") for p in CI_VALUES), "no TLS scenario"


@pytest.mark.parametrize("path", CI_VALUES, ids=values_ids())
def test_lint_strict(helm_path: Path, path: Path) -> None:
    for version in KUBE_VERSIONS:
        result = helm(
            "lint", "--strict", str(CHART), "--kube-version", version, values_files=[path]
        )
        assert "0 chart(s) failed" in result.stdout
        assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_manifest_validates_strictly(rendered, tmp_path: Path, version: str) -> None:
    files, count = [], 0
    for (name, rendered_for), docs in rendered.items():
        if rendered_for != version:
            continue
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        files.append(str(path))
        count += len(docs)
    result = subprocess.run(
        [str(VALIDATOR), "--strict", "-k", version, *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A kind without a schema is only a warning to kubernetes-validate: not here.
    assert "WARN" not in output and "ERROR" not in output, output
    assert output.count(" passed for resource ") == count, output


def test_supported_versions_are_the_validated_ones(helm_path: Path) -> None:
    supported = kubernetes_validate.all_versions()
    assert OLDEST in supported and NEWEST == supported[-1]
    # Native gRPC probes are GA from 1.27: the chart must not claim less.
    assert tuple(int(p) for p in OLDEST.split(".")[:2]) >= (1, 27)
    older = f"1.{int(OLDEST.split('.')[1]) - 1}.0"
    result = template([CI["default-values"]], kube_version=older, check=False)
    assert result.returncode != 0 and "kubeVersion" in result.stderr


def test_chart_versions() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    pyproject = (CHART.parents[1] / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE).group(1)
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == version


def test_packaged_chart_renders_the_same(helm_path: Path, tmp_path: Path) -> None:
    helm("package", str(CHART), "--destination", str(tmp_path))
    (package,) = tmp_path.glob("sessiond-0.1.0.tgz")

    def docs(text: str) -> list[dict[str, Any]]:
        parsed = [doc for doc in yaml.safe_load_all(text) if doc]
        for doc in find(parsed, "Secret"):
            doc.pop("data", None)  # the generated page-token key is random
        return parsed

    for name in ("tls-values", "dev-moto-values"):
        args = ("template", "rel", str(package), "--namespace", "agents")
        packaged = docs(helm(*args, values_files=[CI[name]]).stdout)
        assert packaged == docs(template([CI[name]]).stdout)
    # The development mode's script is in the package (.Files.Get would render "").
    script = one(packaged, "ConfigMap", "rel-sessiond-moto")["data"]["ensure_bucket.py"]
    assert script == (CHART / "files" / "ensure_bucket.py").read_text()


def test_default_values_demand_a_bucket(helm_path: Path) -> None:
    result = template(check=False)
    assert result.returncode != 0
    assert "store.bucket is required" in result.stderr
    # ... and nothing else: the defaults plus a bucket render.
    docs = render(values={"store": {"bucket": "my-bucket"}})
    assert server_environment(docs)["SESSIOND_STORE"] == "s3://my-bucket/sessiond"


# ---- probes, shutdown -------------------------------------------------------


@pytest.mark.parametrize("name", values_ids())
def test_grpc_probes(newest, name: str) -> None:
    docs = newest[name]
    container = server_container(docs)
    env = server_environment(docs)
    grpc_port = int(env["SESSIOND_LISTEN"].rpartition(":")[2])
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["grpc"] == grpc_port
    # With TLS (kubelet's probes cannot do TLS) the probes use the plaintext
    # health-only port the server opens; otherwise the API port.
    probe_port = grpc_port
    if "SESSIOND_HEALTH_LISTEN" in env:
        probe_port = int(env["SESSIOND_HEALTH_LISTEN"].rpartition(":")[2])
        assert ports["health"] == probe_port != grpc_port
    assert ("SESSIOND_TLS_CERT_FILE" in env) <= ("health" in ports)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert set(container[probe]) >= {"grpc"} and "exec" not in container[probe]
        assert container[probe]["grpc"]["port"] == probe_port
    # Liveness and startup check the process, which a storage outage leaves
    # SERVING; readiness checks the service that follows the store.
    assert container["livenessProbe"]["grpc"]["service"] == ""
    assert container["startupProbe"]["grpc"]["service"] == ""
    assert container["readinessProbe"]["grpc"]["service"] == SERVICE_NAME


@pytest.mark.parametrize("name", values_ids())
def test_termination_grace_outlasts_drain_and_grace(newest, name: str) -> None:
    docs = newest[name]
    env = server_environment(docs)
    shutdown = float(env["SESSIOND_SHUTDOWN_DRAIN_SECONDS"]) + float(
        env["SESSIOND_SHUTDOWN_GRACE_SECONDS"]
    )
    assert pod_spec(docs)["terminationGracePeriodSeconds"] > shutdown


def test_termination_grace_too_short_fails(helm_path: Path) -> None:
    values = {
        "store": {"bucket": "bkt"},
        "server": {"shutdownDrainSeconds": 5, "shutdownGraceSeconds": 20},
        "terminationGracePeriodSeconds": 25,
    }
    result = template(values=values, check=False)
    assert result.returncode != 0 and "terminationGracePeriodSeconds" in result.stderr
    values["terminationGracePeriodSeconds"] = 26
    assert pod_spec(render(values=values))["terminationGracePeriodSeconds"] == 26
    del values["terminationGracePeriodSeconds"]
    assert pod_spec(render(values=values))["terminationGracePeriodSeconds"] == 5 + 20 + 15


# ---- security ---------------------------------------------------------------


@pytest.mark.parametrize("name", values_ids())
def test_hardened_security_context(newest, name: str) -> None:
    docs = newest[name]
    for deployment in find(docs, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True
        assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        writable = set()
        for volume in spec.get("volumes", []):
            if "emptyDir" in volume:
                assert volume["emptyDir"].get("sizeLimit"), "unbounded emptyDir"
                writable.add(volume["name"])
            else:  # only read-only kinds of volume besides /tmp
                assert set(volume) - {"name"} <= {"secret", "configMap"}, volume
        assert writable == {"tmp"}
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert context.get("privileged", False) is False
            mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
            for mount in mounts.values():
                if mount["name"] != "tmp":
                    assert mount.get("readOnly") is True, mount
            if container["name"] in {"sessiond", "moto"}:
                assert mounts["tmp"]["mountPath"] == "/tmp"
            assert container["resources"]["requests"] and container["resources"]["limits"]


def test_default_user_is_the_image_user(newest) -> None:
    dockerfile = (CHART.parents[1] / "Dockerfile").read_text()
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    spec = pod_spec(newest["default-values"])
    assert (str(spec["securityContext"]["runAsUser"]), str(spec["securityContext"]["fsGroup"])) == (
        user[0],
        user[1],
    )
    assert (
        str(server_container(newest["default-values"])["securityContext"]["runAsUser"]) == (user[0])
    )


SECRETISH = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|ACCESS_KEY", re.I)
#: Settings named after model tokens (counts), not credentials.
TOKEN_COUNTS = {"SESSIOND_MAX_TOKENS", "SESSIOND_CONTEXT_WINDOW_TOKENS"}


@pytest.mark.parametrize("name", values_ids())
def test_no_secret_values_inlined(newest, name: str) -> None:
    docs = newest[name]
    for container in all_containers(docs):
        for entry in container.get("env", []):
            if SECRETISH.search(entry["name"]):
                assert "value" not in entry, f"{entry['name']} is inlined"
                assert "secretKeyRef" in entry["valueFrom"], entry
    # Paths of files in mounted Secrets (SESSIOND_AUTH_TOKENS_FILE...) are
    # settings, not secrets: allowed when they point into a mounted Secret.
    secret_mounts = mounted_secret_paths(docs)
    for config in find(docs, "ConfigMap"):
        for key, value in config["data"].items():
            if key.endswith("_FILE") and any(value.startswith(m + "/") for m in secret_mounts):
                continue
            if key in TOKEN_COUNTS:
                assert value.isdigit(), f"{key}={value!r} is not a count"
                continue
            assert not SECRETISH.search(key), f"{key} in ConfigMap {config['metadata']['name']}"
    # The only Secrets the chart makes: a generated page-token key (not from
    # values) and, in development mode only, moto's dummy credentials.
    values = load_values(CI[name])
    dev = values.get("devMode", {}).get("moto", {}).get("enabled", False)
    for secret in find(docs, "Secret"):
        secret_name = secret["metadata"]["name"]
        if secret_name.endswith("-page-tokens"):
            assert not values.get("pageTokens", {}).get("existingSecret")
            (key,) = secret["data"].values()
            assert len(base64.b64decode(key)) >= 32
        else:
            assert dev and secret_name.endswith("-moto-credentials"), secret_name
            assert secret["stringData"] == {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
            }


def mounted_secret_paths(docs: list[dict[str, Any]]) -> set[str]:
    """Mount paths (no trailing slash) of the server container's Secret volumes."""
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    return {
        mount["mountPath"].rstrip("/")
        for mount in server_container(docs).get("volumeMounts", [])
        if "secret" in volumes.get(mount["name"], {})
    }


def test_generated_page_token_key_is_random(helm_path: Path) -> None:
    def key() -> str:
        docs = render([CI["default-values"]])
        return one(docs, "Secret")["data"]["page-token-secret"]

    assert key() != key()


def test_secrets_come_from_existing_secrets(newest) -> None:
    irsa = server_environment(newest["production-irsa-values"])
    assert irsa["SESSIOND_PAGE_TOKEN_SECRET"] == {
        "secretKeyRef": {"name": "sessiond-page-tokens", "key": "hmac-key"}
    }
    assert "AWS_ACCESS_KEY_ID" not in irsa  # IRSA: the pod's identity, no keys
    assert not find(newest["production-irsa-values"], "Secret")
    minio = server_environment(newest["hpa-values"])
    assert minio["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "minio-sessiond", "key": "accesskey"}
    }
    assert minio["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "minio-sessiond", "key": "secretkey"}
    }
    assert minio["AWS_SESSION_TOKEN"] == {
        "secretKeyRef": {"name": "minio-sessiond", "key": "sessiontoken"}
    }
    env_from = server_container(newest["hpa-values"])["envFrom"]
    assert {"secretRef": {"name": "sessiond-engines"}} in env_from


def test_auth_and_tls_secrets_are_mounted_read_only(newest) -> None:
    docs = newest["tls-values"]
    spec = pod_spec(docs)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in server_container(docs)["volumeMounts"]}
    assert volumes["auth-tokens"]["secret"]["secretName"] == "sessiond-auth-tokens"
    assert mounts["auth-tokens"] == {
        "name": "auth-tokens",
        "mountPath": "/etc/sessiond/auth",
        "readOnly": True,
    }
    assert volumes["tls"]["secret"]["secretName"] == "sessiond-tls"
    assert mounts["tls"]["mountPath"] == "/etc/sessiond/certs" and mounts["tls"]["readOnly"]
    assert "auth-tokens" not in {v["name"] for v in pod_spec(newest["default-values"])["volumes"]}
    # The server reads the mounted files.
    env = server_environment(docs)
    assert env["SESSIOND_TLS_CERT_FILE"] == "/etc/sessiond/certs/tls.crt"
    assert env["SESSIOND_TLS_KEY_FILE"] == "/etc/sessiond/certs/tls.key"
    assert env["SESSIOND_TLS_CLIENT_CA_FILE"] == "/etc/sessiond/certs/ca.crt"
    assert env["SESSIOND_AUTH_TOKENS_FILE"] == "/etc/sessiond/auth/tokens"
    assert env["SESSIOND_AUTH_JWKS_FILE"] == "/etc/sessiond/auth/jwks.json"
    assert env["SESSIOND_AUTH_JWT_TENANT_CLAIM"] == "org"
    assert "SESSIOND_ALLOW_INSECURE" not in env


def test_engine_keys_and_files_are_mounted_read_only(newest) -> None:
    """The OpenAI key, the engines file and its engines' key Secrets: read-only volumes."""
    docs = newest["engines-values"]
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    mounts = {m["name"]: m for m in server_container(docs)["volumeMounts"]}
    assert volumes["openai-api-key"]["secret"] == {
        "secretName": "vllm-api-key",
        "defaultMode": 0o440,
        "items": [{"key": "token", "path": "token"}],
    }
    assert mounts["openai-api-key"] == {
        "name": "openai-api-key",
        "mountPath": "/etc/sessiond/openai",
        "readOnly": True,
    }
    assert volumes["engines-file"]["configMap"] == {
        "name": "sessiond-engines",
        "items": [{"key": "engines.yaml", "path": "engines.yaml"}],
    }
    assert mounts["engines-file"]["mountPath"] == "/etc/sessiond/engines"
    assert mounts["engines-file"]["readOnly"] is True
    # Each key Secret of the engines file's engines, in a directory of its own.
    for index, name in enumerate(["openai-keys", "litellm-keys"]):
        volume = f"engine-keys-{index}"
        assert volumes[volume]["secret"] == {"secretName": name, "defaultMode": 0o440}
        assert mounts[volume] == {
            "name": volume,
            "mountPath": f"/etc/sessiond/engine-keys/{name}",
            "readOnly": True,
        }
    env = server_environment(docs)
    assert env["SESSIOND_OPENAI_API_KEY_FILE"] == "/etc/sessiond/openai/token"
    assert env["SESSIOND_ENGINES_FILE"] == "/etc/sessiond/engines/engines.yaml"
    assert "SESSIOND_OPENAI_API_KEY" not in env and "OPENAI_API_KEY" not in env
    # The engines file from a Secret instead.
    bedrock = newest["engines-bedrock-values"]
    volumes = {v["name"]: v for v in pod_spec(bedrock)["volumes"]}
    mounts = {m["name"]: m for m in server_container(bedrock)["volumeMounts"]}
    assert volumes["engines-file"]["secret"] == {
        "secretName": "sessiond-engines",
        "defaultMode": 0o440,
        "items": [{"key": "engines.json", "path": "engines.json"}],
    }
    assert mounts["engines-file"]["mountPath"] == "/etc/sessiond/engines-file"
    assert mounts["engines-file"]["readOnly"] is True
    assert "openai-api-key" not in volumes and "engine-keys-0" not in volumes
    env = server_environment(bedrock)
    assert env["SESSIOND_ENGINES_FILE"] == "/etc/sessiond/engines-file/engines.json"
    assert "SESSIOND_OPENAI_API_KEY_FILE" not in env
    # Bedrock through IRSA: no AWS keys, the ServiceAccount's role.
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)
    account = one(bedrock, "ServiceAccount")["metadata"]["annotations"]
    assert account["eks.amazonaws.com/role-arn"].endswith(":role/sessiond-bedrock")
    # No engine volumes by default.
    names = {v["name"] for v in pod_spec(newest["default-values"])["volumes"]}
    assert not {"openai-api-key", "engines-file"} & names


def test_no_engine_key_value_in_any_manifest(helm_path: Path) -> None:
    """A key can only be named (a Secret), never given: no value holds one."""
    key = "sk-test-" + "9" * 40
    for attempt in (
        {"engines": {"openai": {"apiKey": key}}},
        {"engines": {"openai": {"apiKey": {"value": key}}}},
        {"engines": {"openai": {"key": key}}},
        {"engines": {"file": {"content": f"api_key: {key}"}}},
        {"engines": {"bedrock": {"secretAccessKey": key}}},
    ):
        result = template([CI["engines-values"]], values=attempt, check=False)
        assert result.returncode != 0, attempt
        assert "don't meet the specifications of the schema" in result.stderr, attempt
        assert key not in result.stdout


# ---- workload shape ---------------------------------------------------------


def test_hpa_replaces_replicas(newest) -> None:
    docs = newest["hpa-values"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    deployment = server_deployment(docs)
    assert "replicas" not in deployment["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 60},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    # Autoscaling works on requests: there must be some.
    assert server_container(docs)["resources"]["requests"]["cpu"]
    default = newest["default-values"]
    assert not find(default, "HorizontalPodAutoscaler")
    assert server_deployment(default)["spec"]["replicas"] == 2


@pytest.mark.parametrize("name", values_ids())
def test_selectors_match_the_pods(newest, name: str) -> None:
    docs = newest[name]
    deployment = server_deployment(docs)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert matches(deployment["spec"]["selector"]["matchLabels"], labels)
    container = server_container(docs)
    port_names = {port["name"] for port in container["ports"]}
    services = [s for s in find(docs, "Service") if "moto" not in s["metadata"]["name"]]
    assert services
    for service in services:
        assert matches(service["spec"]["selector"], labels)
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names
    for pdb in find(docs, "PodDisruptionBudget"):
        assert matches(pdb["spec"]["selector"]["matchLabels"], labels)
    for constraint in pod_spec(docs).get("topologySpreadConstraints", []):
        assert matches(constraint["labelSelector"]["matchLabels"], labels)
    for policy in find(docs, "NetworkPolicy"):
        if "moto" in policy["metadata"]["name"]:
            continue
        assert matches(policy["spec"]["podSelector"]["matchLabels"], labels)
        for rule in policy["spec"]["ingress"]:
            assert {p["port"] for p in rule["ports"]} <= port_names
    # The pods' ServiceAccount is the one the chart makes.
    account = one(docs, "ServiceAccount")
    assert pod_spec(docs)["serviceAccountName"] == account["metadata"]["name"]


def test_services_and_metrics_port(newest) -> None:
    docs = newest["default-values"]
    service = one(docs, "Service", "rel-sessiond")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["grpc"]["port"] == 50051 and ports["grpc"]["appProtocol"] == "grpc"
    assert ports["metrics"]["port"] == 9464
    env = server_environment(docs)
    assert env["SESSIOND_METRICS_LISTEN"] == "0.0.0.0:9464"
    annotations = server_deployment(docs)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9464"
    headless = one(docs, "Service", "rel-sessiond-headless")
    assert headless["spec"]["clusterIP"] == "None"
    # Metrics off: no metrics port anywhere, and the server is told so.
    off = newest["hpa-values"]
    assert server_environment(off)["SESSIOND_METRICS_LISTEN"] == ""
    assert [p["name"] for p in server_container(off)["ports"]] == ["grpc"]
    assert [p["name"] for p in one(off, "Service")["spec"]["ports"]] == ["grpc"]
    assert one(off, "Service")["spec"]["type"] == "LoadBalancer"


def test_pdb_and_topology_spread(newest) -> None:
    default = newest["default-values"]
    assert one(default, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    keys = [c["topologyKey"] for c in pod_spec(default)["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    production = newest["production-irsa-values"]
    pdb = one(production, "PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == 2 and "maxUnavailable" not in pdb
    for constraint in pod_spec(production)["topologySpreadConstraints"]:
        assert constraint["whenUnsatisfiable"] == "DoNotSchedule"


def test_irsa_service_account(newest) -> None:
    account = one(newest["production-irsa-values"], "ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::123456789012:role/sessiond-prod"
    )
    assert account["automountServiceAccountToken"] is False
    image = server_container(newest["production-irsa-values"])["image"]
    assert image.endswith("/sessiond@sha256:" + "0123456789abcdef" * 4)
    assert server_container(newest["default-values"])["image"] == "sessiond:0.1.0"


def test_config_changes_roll_the_pods(helm_path: Path) -> None:
    def checksum(values: dict[str, Any]) -> str:
        deployment = server_deployment(render(values=values))
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = {"store": {"bucket": "bkt"}}
    assert checksum(base) == checksum(base)
    assert checksum(base) != checksum({"store": {"bucket": "bkt", "leaseTtlSeconds": 60}})


def test_network_policy(newest) -> None:
    # With TLS the probes' plaintext health port is open to any source (the
    # kubelet probes from the node); it answers grpc.health.v1 only.
    tls = one(newest["tls-values"], "NetworkPolicy")["spec"]
    assert {"ports": [{"port": "health", "protocol": "TCP"}]} in tls["ingress"]
    production = one(newest["production-irsa-values"], "NetworkPolicy")["spec"]
    assert production["policyTypes"] == ["Ingress", "Egress"]
    grpc_rule, metrics_rule = production["ingress"]
    assert grpc_rule["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "agents"
    }
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    egress_ports = {p["port"] for rule in production["egress"] for p in rule.get("ports", [])}
    assert egress_ports == {53, 443}
    # The S3-compatible endpoint's port is allowed out.
    minio = one(newest["hpa-values"], "NetworkPolicy")["spec"]
    egress_ports = {p["port"] for rule in minio["egress"] for p in rule.get("ports", [])}
    assert egress_ports == {53, 443, 9000}
    assert {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]} in minio["egress"]
    # So are the model endpoints' (an in-cluster vLLM on 8000).
    engines = one(newest["engines-values"], "NetworkPolicy")["spec"]
    egress_ports = {p["port"] for rule in engines["egress"] for p in rule.get("ports", [])}
    assert egress_ports == {53, 443, 8000}
    assert not find(newest["default-values"], "NetworkPolicy")


# ---- development mode -------------------------------------------------------


def test_dev_mode_deploys_moto_beside_sessiond(newest) -> None:
    docs = newest["dev-moto-values"]
    moto = one(docs, "Deployment", "rel-sessiond-moto")
    service = one(docs, "Service", "rel-sessiond-moto")
    env = server_environment(docs)
    port = service["spec"]["ports"][0]["port"]
    assert env["SESSIOND_S3_ENDPOINT"] == f"http://rel-sessiond-moto:{port}"
    assert env["SESSIOND_STORE"] == "s3://sessiond-dev/sessiond"
    assert env["SESSIOND_S3_REGION"] == "us-east-1"
    assert matches(service["spec"]["selector"], moto["spec"]["template"]["metadata"]["labels"])
    assert moto["spec"]["replicas"] == 1 and moto["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = moto["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith("motoserver/moto:")
    assert container["ports"][0]["containerPort"] == port
    # Credentials: dummy ones, through a Secret like real ones.
    assert env["AWS_ACCESS_KEY_ID"]["secretKeyRef"]["name"] == "rel-sessiond-moto-credentials"
    # The bucket exists before sessiond starts, and after every moto restart.
    (init,) = pod_spec(docs)["initContainers"]
    assert init["command"] == ["python", "/scripts/ensure_bucket.py"]
    init_env = {e["name"]: e["value"] for e in init["env"]}
    assert init_env == {"MOTO_URL": env["SESSIOND_S3_ENDPOINT"], "BUCKET": "sessiond-dev"}
    hook = container["lifecycle"]["postStart"]["exec"]["command"]
    assert hook == ["python3", "/scripts/ensure_bucket.py"]
    moto_env = {e["name"]: e["value"] for e in container["env"]}
    assert moto_env == {"MOTO_URL": f"http://127.0.0.1:{port}", "BUCKET": "sessiond-dev"}
    script_map = one(docs, "ConfigMap", "rel-sessiond-moto")
    assert "ensure_bucket.py" in script_map["data"]
    for spec in (pod_spec(docs), moto["spec"]["template"]["spec"]):
        (scripts,) = [v for v in spec["volumes"] if v.get("configMap")]
        assert scripts["configMap"]["name"] == "rel-sessiond-moto"
    # Only sessiond reaches moto.
    policy = one(docs, "NetworkPolicy", "rel-sessiond-moto")["spec"]
    assert policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"][
        "app.kubernetes.io/component"
    ] == ("server")


@pytest.mark.parametrize("name", values_ids())
def test_dev_mode_is_marked_not_for_production(newest, name: str) -> None:
    docs = newest[name]
    dev = load_values(CI[name]).get("devMode", {}).get("moto", {}).get("enabled", False)
    moto_objects = [d for d in docs if "moto" in d["metadata"]["name"]]
    if not dev:
        assert not moto_objects
        assert "initContainers" not in pod_spec(docs)
        return
    assert moto_objects
    for doc in moto_objects:
        if doc["kind"] == "NetworkPolicy":
            continue
        assert "not-for-production" in str(doc["metadata"].get("annotations")), doc["kind"]
    template_annotations = server_deployment(docs)["spec"]["template"]["metadata"]["annotations"]
    assert "sessiond.dev/not-for-production" in template_annotations


def test_dev_mode_bucket_script_creates_the_bucket(newest, moto_endpoint, moto_s3_client) -> None:
    script = one(newest["dev-moto-values"], "ConfigMap", "rel-sessiond-moto")["data"]
    bucket = "chart-dev-bucket"
    for _ in range(2):  # a second run finds it there: still fine
        result = subprocess.run(
            [sys.executable, "-c", script["ensure_bucket.py"]],
            env={"MOTO_URL": moto_endpoint, "BUCKET": bucket, "TIMEOUT_SECONDS": "20"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
    moto_s3_client.head_bucket(Bucket=bucket)
    moto_s3_client.delete_bucket(Bucket=bucket)


def test_dev_mode_script_fails_when_moto_never_answers() -> None:
    script = (CHART / "files" / "ensure_bucket.py").read_text()
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"MOTO_URL": "http://127.0.0.1:9", "BUCKET": "b", "TIMEOUT_SECONDS": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "cannot create bucket b" in result.stderr


@pytest.mark.parametrize("name", ["dev-moto-values", "default-values", "tls-values"])
def test_notes_tell_how_to_reach_the_service(helm_path: Path, name: str) -> None:
    result = helm(
        "install",
        "rel",
        str(CHART),
        "--namespace",
        "agents",
        "--dry-run=client",
        values_files=[CI[name]],
    )
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "rel-sessiond.agents.svc.cluster.local:50051" in notes
    assert "kubectl port-forward -n agents service/rel-sessiond" in notes
    assert ("NOT FOR PRODUCTION" in notes) == (name == "dev-moto-values")
    plaintext = "tls-values" not in name
    assert ("served in PLAINTEXT" in notes) == plaintext
    assert ("grpcurl -plaintext" in notes) == plaintext
    assert ("authentication is OFF" in notes) == plaintext
    if not plaintext:
        assert "mutual TLS, bearer tokens" in notes
        assert "plaintext health-only port 8081" in notes
        assert "-cacert ca.crt -cert client.crt -key client.key" in notes


# ---- the schema rejects bad values ------------------------------------------

BAD_VALUES = {
    "lease TTL below the server's minimum": (
        {"store": {"leaseTtlSeconds": 0.5}},
        "/store/leaseTtlSeconds': exclusiveMinimum",
    ),
    "lease TTL above the maximum": (
        {"store": {"leaseTtlSeconds": 4000}},
        "/store/leaseTtlSeconds': maximum",
    ),
    "unknown log level": ({"server": {"logLevel": "TRACE"}}, "/server/logLevel'"),
    "port out of range": ({"server": {"grpcPort": 70000}}, "/server/grpcPort'"),
    "misspelt value": ({"store": {"buckett": "x"}}, "additional properties 'buckett'"),
    "inline S3 secret key": (
        {"s3Credentials": {"secretAccessKey": "abc"}},
        "additional properties 'secretAccessKey'",
    ),
    "inline page-token key": ({"pageTokens": {"secret": "abc"}}, "additional properties 'secret'"),
    "drain beyond the server's limit": (
        {"server": {"shutdownDrainSeconds": 121}},
        "/server/shutdownDrainSeconds'",
    ),
    "endpoint without a scheme": ({"store": {"endpoint": "minio:9000"}}, "/store/endpoint'"),
    "invalid bucket name": ({"store": {"bucket": "My_Bucket"}}, "/store/bucket'"),
    "image tag instead of digest": ({"image": {"digest": "latest"}}, "/image/digest'"),
    "zero probe period": (
        {"probes": {"liveness": {"periodSeconds": 0}}},
        "/probes/liveness/periodSeconds'",
    ),
    "percentage as a string": (
        {"autoscaling": {"targetCPUUtilizationPercentage": "70%"}},
        "/autoscaling/targetCPUUtilizationPercentage'",
    ),
    "auth without its Secret": ({"auth": {"enabled": True}}, "/auth/existingSecret'"),
    "tls without its Secret": ({"tls": {"enabled": True}}, "/tls/existingSecret'"),
    "relative mount path": ({"auth": {"mountPath": "etc/auth"}}, "/auth/mountPath'"),
    "max receive below 1 MiB": ({"server": {"maxReceiveBytes": 1000}}, "/server/maxReceiveBytes'"),
    "inline bearer token": ({"auth": {"token": "abc"}}, "additional properties 'token'"),
    "inline JWT secret": ({"auth": {"jwt": {"secret": "abc"}}}, "additional properties 'secret'"),
    "auth without a token source": (
        {"auth": {"enabled": True, "existingSecret": "a", "tokensFileKey": ""}},
        "auth.enabled needs auth.tokensFileKey or a JWT key",
    ),
    "JWT without an audience": (
        {"auth": {"enabled": True, "existingSecret": "a", "jwt": {"jwksFileKey": "j"}}},
        "auth.jwt needs auth.jwt.audience",
    ),
    "HS256 among the asymmetric algorithms": (
        {"auth": {"jwt": {"algorithms": "RS256,HS256"}}},
        "/auth/jwt/algorithms'",
    ),
    "TLS reload beyond the server's limit": (
        {"tls": {"reloadSeconds": 90000}},
        "/tls/reloadSeconds'",
    ),
    "mutual TLS without TLS": (
        {"tls": {"clientAuth": {"enabled": True}}},
        "tls.clientAuth.enabled (mutual TLS) needs tls.enabled",
    ),
    "health port on the API port": (
        {"tls": {"enabled": True, "existingSecret": "t"}, "server": {"healthPort": 50051}},
        "server.healthPort and server.grpcPort must differ",
    ),
    "no page-token key": ({"pageTokens": {"generate": False}}, "page tokens need a shared secret"),
    "moto with an endpoint": (
        {"devMode": {"moto": {"enabled": True}}, "store": {"endpoint": "http://x:1"}},
        "store.endpoint",
    ),
    "unknown disconnect policy": (
        {"engines": {"onDisconnect": "maybe"}},
        "/engines/onDisconnect'",
    ),
    "temperature out of range": ({"engines": {"temperature": 5}}, "/engines/temperature'"),
    "no tool rounds": ({"engines": {"maxToolRounds": 0}}, "/engines/maxToolRounds'"),
    "allowed models with an empty name": (
        {"engines": {"allowedModels": "a,,b"}},
        "/engines/allowedModels'",
    ),
    "allowed model holding a comma": (
        {"engines": {"allowedModels": ["a,b"]}},
        "/engines/allowedModels'",
    ),
    "no engine timeout": ({"engines": {"timeoutSeconds": 0}}, "/engines/timeoutSeconds'"),
    "retries beyond the server's limit": (
        {"engines": {"maxRetries": 11}},
        "/engines/maxRetries'",
    ),
    "negative context window": (
        {"engines": {"contextWindow": {"tokens": -1}}},
        "/engines/contextWindow/tokens'",
    ),
    "tool results timeout beyond a day": (
        {"engines": {"toolResultTimeoutSeconds": 86401}},
        "/engines/toolResultTimeoutSeconds'",
    ),
    "token count as a string": ({"engines": {"maxTokens": "1k"}}, "/engines/maxTokens'"),
    "bedrock region misspelt": (
        {"engines": {"bedrock": {"region": "us_east_1"}}},
        "/engines/bedrock/region'",
    ),
    "OpenAI endpoint without a scheme": (
        {"engines": {"openai": {"baseUrl": "vllm:8000/v1"}}},
        "/engines/openai/baseUrl'",
    ),
    "engines file from a ConfigMap and a Secret": (
        {"engines": {"file": {"existingConfigMap": "e", "existingSecret": "e"}}},
        "set existingConfigMap or existingSecret, not both",
    ),
    "invalid key Secret name": (
        {"engines": {"file": {"keySecrets": ["Gpt_Keys"]}}},
        "/engines/file/keySecrets/0'",
    ),
    "key Secret mounted over the engines file": (
        {
            "engines": {
                "file": {
                    "existingConfigMap": "e",
                    "keySecrets": ["engines"],
                    "keySecretsMountPath": "/etc/sessiond",
                }
            }
        },
        "mount paths of auth, tls and engines must differ",
    ),
    "inline OpenAI key": (
        {"engines": {"openai": {"apiKey": {"value": "sk-abc"}}}},
        "additional properties 'value'",
    ),
    "engines file mounted over /tmp": (
        {"engines": {"file": {"existingConfigMap": "e", "mountPath": "/tmp/"}}},
        "mount paths of auth, tls and engines must differ",
    ),
    "min above max replicas": (
        {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
        "minReplicas",
    ),
}


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(out.get(key), dict) else value
    return out


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_values_fail_at_install(helm_path: Path, case: str) -> None:
    bad, expected = BAD_VALUES[case]
    good = {"store": {"bucket": "bkt"}}
    assert template(values=good, check=False).returncode == 0
    result = template(values=merged(good, bad), check=False)
    assert result.returncode != 0, f"{case}: accepted"
    assert expected in result.stderr, result.stderr
