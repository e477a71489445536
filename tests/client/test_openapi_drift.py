"""The client's endpoint methods against the server's OpenAPI schema (from the app itself), so the two
cannot drift: the same parameter names, types, choices and defaults, and every field of a job known to
the client's `JobState`."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Sequence
from functools import cache
from typing import Any

import pytest

from api.main import create_app
from fitexplain_client.endpoints import ENDPOINTS, Endpoints, parameters
from fitexplain_client.models import JobState

CLIENT_ONLY = {"data", "training_index"}  # the upload itself, not query parameters
SERVER_ONLY = {"wait"}  # the client waits with Job.wait(), which long-polls GET /jobs/{id}?wait=
# The client sends "sample:N" as the query parameter, and a path, bytes or a DataFrame as a file part.
QUERY_OR_FILE = {"background"}
JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


@cache
def openapi() -> dict[str, Any]:
    return create_app().openapi()


def server_parameters(endpoint: str) -> dict[str, dict[str, Any]]:
    declared = openapi()["paths"][f"/{endpoint}"]["post"]["parameters"]
    return {item["name"]: item for item in declared if item["in"] == "query"}


def schema_of(parameter: dict[str, Any]) -> tuple[set[str], list[Any] | None, Any]:
    """(JSON types, enum, default) of a parameter, with `null` dropped from an anyOf."""
    schema = parameter["schema"]
    options = schema.get("anyOf", [schema])
    kinds = {option["type"] for option in options if option.get("type") not in (None, "null")}
    enum = next((option["enum"] for option in options if "enum" in option), None)
    return kinds, enum, schema.get("default")


def client_type(annotation: Any) -> tuple[set[str], set[Any] | None]:
    """(JSON types, choices) a client annotation sends: Literal choices as strings, a Sequence of names
    comma-joined into one string, None dropped."""
    kinds: set[str] = set()
    choices: set[Any] = set()
    pending = [annotation]
    while pending:
        current = pending.pop()
        origin = typing.get_origin(current)
        if origin in (typing.Union, types.UnionType):
            pending.extend(typing.get_args(current))
        elif origin is typing.Literal:
            kinds.add("string")
            choices.update(typing.get_args(current))
        elif origin is not None and issubclass(origin, Sequence):
            kinds.add("string")
        elif current is not type(None):
            kinds.add(JSON_TYPES[current])
    return kinds, choices or None


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_client_declares_each_server_parameter_with_its_type_choices_and_default(endpoint: str) -> None:
    server = server_parameters(endpoint)
    method = getattr(Endpoints, endpoint)
    hints = typing.get_type_hints(method)
    signature = inspect.signature(method).parameters
    assert set(parameters(endpoint)) == set(server) - SERVER_ONLY, "the same names"
    for name, declared in server.items():
        if name in SERVER_ONLY:
            continue
        kinds, enum, default = schema_of(declared)
        assert not declared.get("required"), f"{endpoint}.{name}: every query parameter has a default"
        if name in QUERY_OR_FILE:
            assert kinds == {"string"} and str in typing.get_args(hints[name]), f"{endpoint}.{name}: a string"
            assert signature[name].default == default, f"{endpoint}.{name}: default {signature[name].default}"
            continue
        sent, choices = client_type(hints[name])
        assert sent <= kinds | ({"number"} if "integer" in kinds else set()) and kinds <= sent | {
            "integer"
        }, f"{endpoint}.{name}: the client sends {sent}, the server reads {kinds}"
        if "number" in kinds:
            assert "number" in sent, f"{endpoint}.{name}: a number, not only an integer"
        if enum is not None:
            assert choices == set(enum), f"{endpoint}.{name}: choices {choices} against the server's {enum}"
        assert signature[name].default == default, f"{endpoint}.{name}: default {signature[name].default}"


def test_interpretability_choices_are_what_the_server_accepts() -> None:
    from api.endpoint_params import parse_interpretability

    _, choices = client_type(typing.get_type_hints(Endpoints.mlclassification)["interpretability"])
    assert choices and "none" in choices
    for choice in choices:
        parse_interpretability(choice)  # raises on a name the server does not know


def test_the_client_knows_every_field_of_a_job() -> None:
    schemas = openapi()["components"]["schemas"]
    served = set(schemas["JobPublic"]["properties"])
    assert served <= set(JobState.model_fields), f"unknown to JobState: {served - set(JobState.model_fields)}"


def test_the_drift_check_sees_a_difference() -> None:
    """The comparison itself: a parameter typed or defaulted otherwise than the server's is caught."""
    seed = server_parameters("mlclassification")["seed"]
    assert schema_of(seed) == ({"integer"}, None, 123)
    assert (
        client_type(str | None) == ({"string"}, None)
        and client_type(int)[0] != schema_of(server_parameters("mlregression")["level"])[0]
    )
