"""``shoal-operator`` (``python -m shoal_operator``): run the operator, cluster-wide or in the
namespaces listed. Every flag has a ``SHOAL_OPERATOR_*`` twin, shown in ``--help``.

With ``--leader-election`` the process first stands by for the Lease (kopf not started: a
standby writes nothing), then runs kopf while it holds it. A leader that cannot renew stops
kopf and exits 1, as client-go's controllers do: its memory of the pools is discarded and
the restarted container stands by like any other. On SIGTERM it leaves the Lease released,
so a rollout or a drain hands over at the standby's next look rather than a lease later."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Sequence

import kopf

from shoal.cli import logs
from shoal.cli.options import add_settings, settings_from
from shoal.core.errors import ShoalError
from shoal_operator import (
    handlers,  # noqa: F401  (registers the handlers)
    metrics,
)
from shoal_operator.election import Timing
from shoal_operator.kube import api_client
from shoal_operator.leadership import Leadership
from shoal_operator.settings import OperatorSettings
from shoal_operator.standby import serving_health

logger = logging.getLogger("shoal_operator")

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
    try:
        return asyncio.run(run(settings))
    except ShoalError as error:
        print(f"shoal-operator: error: {error}", file=sys.stderr)
        return 2


async def run(settings: OperatorSettings) -> int:
    memo = kopf.Memo(settings=settings)
    if not settings.leader_election:
        await operate(settings, memo)
        return 0
    api = await api_client()
    leadership = Leadership(
        api,
        settings.lease_namespace or "default",
        settings.lease_name,
        Timing(settings.lease_seconds),
    )
    memo.leadership = leadership
    metrics.serve(settings.metrics_port)
    try:
        async with serving_health(settings.liveness):
            if not await _until_signalled(leadership.campaign()):
                return 0
        lost = asyncio.Event()
        keeper = asyncio.create_task(leadership.keep(lost))
        try:
            await operate(settings, memo, stop_flag=lost)
        finally:
            keeper.cancel()
            await leadership.release()
    finally:
        await api.close()
    if lost.is_set():
        logger.error("exiting: the Lease was lost, a fresh process stands by again")
        return 1
    return 0


async def operate(
    settings: OperatorSettings, memo: kopf.Memo, stop_flag: asyncio.Event | None = None
) -> None:
    await kopf.operator(
        clusterwide=not settings.namespace,
        namespaces=list(settings.namespace),
        liveness_endpoint=settings.liveness,
        standalone=True,  # no kopf peering: the Lease decides who runs (shoal_operator.election)
        memo=memo,
        stop_flag=stop_flag,
    )


async def _until_signalled(campaign: Awaitable[None]) -> bool:
    """Run the campaign; False if SIGTERM or SIGINT came first (kopf, not yet running,
    has no handlers of its own for them)."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(campaign)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        return False
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return True


if __name__ == "__main__":
    sys.exit(main())
