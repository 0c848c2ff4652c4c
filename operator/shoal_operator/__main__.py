"""``shoal-operator`` (``python -m shoal_operator``): run the operator, cluster-wide or in the
namespaces listed. Every flag has a ``SHOAL_OPERATOR_*`` twin, shown in ``--help``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import kopf

from shoal.cli import logs
from shoal.cli.options import add_settings, settings_from
from shoal.core.errors import ShoalError
from shoal_operator import handlers  # noqa: F401  (registers the handlers)
from shoal_operator.settings import OperatorSettings

LOG_CONTEXT = ("k8s_ref",)
"""kopf's reference to the object a line is about (kind, namespace, name), kept in the logs."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal-operator",
        description="Run the shoal operator: Queue and WorkerPool resources, depth-driven "
        "scaling of the workers.",
        epilog="Every flag can also be set by its SHOAL_OPERATOR_* environment variable.",
    )
    add_settings(parser, OperatorSettings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        settings = settings_from(arguments, OperatorSettings)
    except ShoalError as error:
        print(f"shoal-operator: error: {error}", file=sys.stderr)
        return 2
    level = "debug" if settings.verbose else settings.log_level
    logs.configure(settings.log_format, level, context=LOG_CONTEXT)
    asyncio.run(
        kopf.operator(
            clusterwide=not settings.namespace,
            namespaces=list(settings.namespace),
            liveness_endpoint=settings.liveness,
            standalone=True,
            memo=kopf.Memo(settings=settings),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
