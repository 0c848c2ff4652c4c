"""``python -m shoal_operator``: run the operator (all namespaces, or those listed).

Flags: ``--namespace NS`` (repeatable; default: every namespace) and ``--liveness`` (the
kopf health endpoint, default http://0.0.0.0:8081/healthz). ``$SHOAL_OPERATOR_METRICS_PORT``
(default 8080, 0 for none) serves Prometheus metrics.
"""

from __future__ import annotations

import argparse
import asyncio

import kopf

from shoal_operator import handlers  # noqa: F401  (registers the handlers)


def main() -> None:
    parser = argparse.ArgumentParser(prog="shoal-operator", description=__doc__)
    parser.add_argument(
        "--namespace", action="append", default=[], help="watch only this namespace (repeatable)"
    )
    parser.add_argument(
        "--liveness", default="http://0.0.0.0:8081/healthz", help="kopf's liveness endpoint"
    )
    parser.add_argument("--verbose", action="store_true")
    arguments = parser.parse_args()
    kopf.configure(verbose=arguments.verbose)  # kopf's logging set-up serves ours too
    asyncio.run(
        kopf.operator(
            clusterwide=not arguments.namespace,
            namespaces=list(arguments.namespace),
            liveness_endpoint=arguments.liveness,
            standalone=True,
        )
    )


if __name__ == "__main__":
    main()
