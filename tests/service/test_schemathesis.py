"""Property-based requests against every operation of the app's own OpenAPI schema, with a valid token:
no 5xx, and every response (status, content type, headers, body) as the schema documents it.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from tests.stack import Client, Stack

pytestmark = [pytest.mark.service]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# The schema the app serves, built in-process (the deployment under test runs the same code); the
# requests themselves go to the running stack.
schema = schemathesis.openapi.from_dict(create_app().openapi())


@schema.parametrize()
@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case, stack: Stack, alice: Client) -> None:
    case.call_and_validate(
        base_url=stack.url,
        headers={"Authorization": alice.http.headers["Authorization"]},
        checks=CHECKS,
        timeout=60,
    )
