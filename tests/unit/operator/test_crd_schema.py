"""The CRDs (``crds/``) and the operator's models of them (``shoal_operator.spec``) declare
the same fields, types, bounds and defaults: each is compared, field by field, with the JSON
schema pydantic derives from the models, so neither can change without the other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from shoal_operator.spec import FROM_METADATA, QueueSpec, WorkerPoolSpec
from shoal_operator.state import QueueStatus, WorkerPoolStatus

CRDS = Path(__file__).resolve().parents[3] / "crds"
COMPARED = ("type", "minimum", "maximum", "minLength", "maxLength", "pattern")
COMPARED += ("minItems", "maxItems", "default", "enum")


def crd_spec(file: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / file).read_text())
    [version] = crd["spec"]["versions"]
    spec: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def from_crd(node: dict[str, Any]) -> dict[str, Any]:
    """The parts of a CRD schema node that the models must match; an object's default is
    taken as the API server applies it, with the defaults of its properties filled in."""
    shape = {key: node[key] for key in COMPARED if key in node}
    if "properties" in node:
        shape["properties"] = {name: from_crd(sub) for name, sub in node["properties"].items()}
        shape["required"] = sorted(node.get("required", []))
    if "items" in node:
        shape["items"] = from_crd(node["items"])
    if isinstance(shape.get("default"), dict):
        filled = {
            name: sub["default"]
            for name, sub in shape.get("properties", {}).items()
            if "default" in sub
        }
        shape["default"] = filled | shape["default"]
    return shape


def from_model(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The same parts of a pydantic JSON schema node: ``None`` is how an optional field is
    left unset, and an empty list or map is how the API server leaves one out."""
    options = [o for o in node.get("anyOf", []) if o != {"type": "null"}]
    if len(options) == 1:  # an optional field: its one type, an object's by reference too
        node = {**options[0], **node}
    if "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[1]], **node}
    shape = {key: node[key] for key in COMPARED if key in node}
    if isinstance(shape.get("default"), dict):
        shape["default"] = {k: v for k, v in shape["default"].items() if v not in (None, [], {})}
    if shape.get("default") in (None, [], {}):
        shape.pop("default", None)
    if "properties" in node:
        shape["properties"] = {
            name: from_model(sub, defs) for name, sub in node["properties"].items()
        }
        shape["required"] = sorted(node.get("required", []))
    if "items" in node:
        shape["items"] = from_model(node["items"], defs)
    return shape


def free_form_in_model(model: dict[str, Any], crd: dict[str, Any]) -> dict[str, Any]:
    """Where the model takes any object (a pod template part passed on as it is), the CRD
    may say more of its inside: compare the type only there."""
    if "properties" not in model and "properties" in crd:
        return {key: value for key, value in crd.items() if key not in ("properties", "required")}
    crd = dict(crd)
    if "properties" in model:
        crd["properties"] = {
            name: free_form_in_model(model["properties"].get(name, {}), sub)
            for name, sub in crd["properties"].items()
        }
    if "items" in model and "items" in crd:
        crd["items"] = free_form_in_model(model["items"], crd["items"])
    return crd


@pytest.mark.parametrize(
    ("file", "model"),
    [("queues.shoal.dev.yaml", QueueSpec), ("workerpools.shoal.dev.yaml", WorkerPoolSpec)],
)
def test_the_crd_and_the_model_declare_the_same_spec(file: str, model: type[BaseModel]) -> None:
    schema = model.model_json_schema(by_alias=True)
    ours = from_model(schema, schema.get("$defs", {}))
    for name in FROM_METADATA:
        ours["properties"].pop(name, None)
    ours["required"] = [name for name in ours["required"] if name not in FROM_METADATA]
    theirs = free_form_in_model(ours, from_crd(crd_spec(file)))
    assert set(ours["properties"]) == set(theirs["properties"])
    for name in ours["properties"]:
        assert ours["properties"][name] == theirs["properties"][name], name
    assert ours == theirs


def test_the_crd_defaults_parse_to_the_model_defaults() -> None:
    """What the API server stores for a minimal pool is what the parser makes of nothing."""
    autoscaling = crd_spec("workerpools.shoal.dev.yaml")["properties"]["autoscaling"]
    defaulted = from_crd(autoscaling)["default"]
    assert (
        WorkerPoolSpec.model_fields["autoscaling"].default.model_dump(
            by_alias=True, exclude_none=True
        )
        == defaulted
    )


@pytest.mark.parametrize(
    ("file", "model"),
    [("queues.shoal.dev.yaml", QueueStatus), ("workerpools.shoal.dev.yaml", WorkerPoolStatus)],
)
def test_the_statuses_written_are_the_crd_status(file: str, model: type[BaseModel]) -> None:
    """A status field the CRD does not declare would be pruned by the API server, silently."""
    crd = yaml.safe_load((CRDS / file).read_text())
    [version] = crd["spec"]["versions"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    schema = model.model_json_schema(by_alias=True)
    ours = from_model(schema, schema.get("$defs", {}))
    theirs = free_form_in_model(ours, from_crd(status))
    assert ours == theirs
