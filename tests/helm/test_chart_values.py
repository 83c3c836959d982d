"""values.yaml documents every value (``## @param``) and values.schema.json covers it."""

from __future__ import annotations

import re
from typing import Any

import yaml

from support.helm import CHART

VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
PARAMS = dict(re.findall(r"^\s*## @param (\S+) (.+)$", VALUES_TEXT, re.MULTILINE))


def paths(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every key path of a values tree, with its value."""
    found = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        found.append((path, value))
        if isinstance(value, dict):
            found += paths(value, f"{path}.")
    return found


def documented(path: str) -> bool:
    """A path is documented by its own @param or one of an ancestor's."""
    parts = path.split(".")
    return any(".".join(parts[:n]) in PARAMS for n in range(1, len(parts) + 1))


def test_every_value_is_documented() -> None:
    missing = []
    for path, value in paths(VALUES):
        is_leaf = not isinstance(value, dict) or not value
        if is_leaf and not documented(path):
            missing.append(path)
    assert not missing, f"values without ## @param: {missing}"
    # An object documented as a whole is a Kubernetes object passed through
    # (resources, securityContext, ...), never a group of chart settings.
    for name in PARAMS:
        value = dict(paths(VALUES)).get(name)
        if isinstance(value, dict) and value:
            assert name.split(".")[-1] in {
                "updateStrategy",
                "resources",
                "podSecurityContext",
                "securityContext",
            }, f"{name}: document its values one by one"


def test_every_param_names_a_value() -> None:
    known = dict(paths(VALUES))
    assert not [name for name in PARAMS if name not in known]
    assert all(len(text.strip()) > 8 for text in PARAMS.values())


def test_schema_covers_every_value(schema) -> None:
    def node(path: str) -> dict[str, Any] | None:
        current = schema
        for part in path.split("."):
            properties = current.get("properties")
            if properties is None:
                return current  # a free-form object: Kubernetes passes it through
            if part not in properties:
                return None
            current = properties[part]
        return current

    uncovered = [path for path, _ in paths(VALUES) if node(path) is None]
    assert not uncovered, f"values the schema does not know: {uncovered}"

    # Every object of chart settings rejects unknown keys (typos fail).
    def closed(current: dict[str, Any], where: str) -> None:
        if "properties" in current:
            assert current.get("additionalProperties") is False, where
            for key, child in current["properties"].items():
                closed(child, f"{where}.{key}")

    closed(schema, "values")
