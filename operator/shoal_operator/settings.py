"""The operator's settings: each field a ``shoal-operator`` flag with its environment twin
``SHOAL_OPERATOR_<FIELD>``, both shown in ``--help``; flags beat variables, which beat the
defaults below."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from shoal.core.settings import AlsoFrom, EnvSettings, Names, Shown


class OperatorSettings(EnvSettings):
    """How the operator runs: what it watches, where it answers, how it logs."""

    env_prefix: ClassVar[str] = "SHOAL_OPERATOR_"

    namespace: Annotated[Names, Shown("every namespace")] = ()
    """watch only these namespaces (repeatable, or comma separated); the chart's
    watchNamespaces, which pairs them with a Role in each"""
    liveness: str = "http://0.0.0.0:8081/healthz"
    """kopf's liveness endpoint, which the chart's startup, liveness and readiness probes call"""
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    """port of the operator's Prometheus metrics (queue depth, decisions, API calls); 0 for none"""
    log_format: Literal["text", "json"] = "text"
    """log lines as text or json (one object per line, as the workers write them)"""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """least severe log level shown"""
    verbose: bool = False
    """log every handler step and API call (kopf's verbose mode): the debug level"""
    leader_election: bool = False
    """run only while holding a Lease, standing by otherwise, so that several replicas
    never both scale a pool (the chart turns it on and runs two)"""
    lease_name: str = "shoal-operator"
    """the coordination.k8s.io Lease the replicas campaign for"""
    lease_namespace: Annotated[
        str | None, AlsoFrom(("POD_NAMESPACE",)), Shown("$POD_NAMESPACE, else default")
    ] = None
    """the Lease's namespace: the operator's own (the chart sets POD_NAMESPACE)"""
    lease_seconds: float = Field(default=8.0, ge=2)
    """how long a leader's Lease lasts unrenewed: a standby takes over this long (and an
    eighth) after the leader died; a leader renews every eighth and stops acting at 7/10"""
