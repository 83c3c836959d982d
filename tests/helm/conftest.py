"""Fixtures of the chart tier: helm itself and the chart rendered once per values file.

``helm/sessiond/ci/*.yaml`` are the values files (the chart's defaults plus
each file); every one is rendered for the oldest and the newest Kubernetes
version the chart supports (``support.helm.KUBE_VERSIONS``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.helm import CHART, CI_VALUES, KUBE_VERSIONS, NEWEST, helm_binary, render

Rendered = dict[tuple[str, str], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm_path() -> Path:
    """A real helm binary (downloaded once into .cache/helm/)."""
    return helm_binary()


@pytest.fixture(scope="session")
def rendered(helm_path: Path) -> Rendered:
    """``{(values file stem, kube version): manifests}`` for every ci values file."""
    return {
        (path.stem, version): render([path], kube_version=version)
        for path in CI_VALUES
        for version in KUBE_VERSIONS
    }


@pytest.fixture(scope="session")
def newest(rendered: Rendered) -> dict[str, list[dict[str, Any]]]:
    """``{values file stem: manifests}`` rendered for the newest version."""
    return {name: docs for (name, version), docs in rendered.items() if version == NEWEST}


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    """The chart's values.schema.json."""
    return json.loads((CHART / "values.schema.json").read_text())
