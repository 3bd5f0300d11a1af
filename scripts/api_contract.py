"""schemathesis against the served OpenAPI document, with more cases than the test suite runs.

    .venv/bin/python scripts/api_contract.py [--examples 200]

Runs every operation of the gateway app in process (a temporary data root) and prints each operation's
failures: server errors, responses that violate their documented schema, status code or media type. A
well-formed request naming a run that does not exist is answered 404 by design, so that check is left out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200)
    args = parser.parse_args()
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.specs.openapi import checks

    from services.gateway.app import create
    from shared.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        schema = schemathesis.openapi.from_asgi("/openapi.json", create(Settings(data_root=Path(tmp) / "data")))
        failed = 0
        for result in schema.get_all_operations():
            operation = result.ok()

            @settings(max_examples=args.examples, deadline=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy())
            def run(case):
                case.call_and_validate(excluded_checks=[checks.positive_data_acceptance])

            try:
                run()
                print(f"ok      {operation.method.upper()} {operation.path}")
            except Exception as exc:
                failed += 1
                print(f"FAILED  {operation.method.upper()} {operation.path}\n{exc}\n")
    print(f"{failed} operation(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
