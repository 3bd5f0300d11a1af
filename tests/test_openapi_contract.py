"""The served OpenAPI document against the running app, with schemathesis (bounded): no server error, no
response that violates its documented schema, status code or media type, on every operation."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.specs.openapi import checks  # noqa: E402

from services.gateway.app import create  # noqa: E402
from shared.settings import Settings  # noqa: E402

# A well-formed request can still name a run that does not exist: that 404 is the contract, not a defect.
SEMANTIC = [checks.positive_data_acceptance]


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    app = create(Settings(data_root=tmp_path_factory.mktemp("openapi") / "data"))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_keeps_its_documented_contract(schema):
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy())
        def run(case):
            case.call_and_validate(excluded_checks=SEMANTIC)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)
