"""The few Kubernetes API calls the operator makes, over one shared client.

Every write here is conditional on a difference, so a steady state costs reads only: the
operator's API traffic must not grow with time, only with change. With leader election every
write is fenced too: it is refused (``LeadershipLost``) once this operator's term is over.
"""

from __future__ import annotations

import base64
import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_operator import metrics
from shoal_operator.errors import MissingSecret
from shoal_operator.spec import GROUP, VERSION, ObjectRef, QueueSpec, SecretKey, parse_queue

if TYPE_CHECKING:
    from shoal_operator.leadership import Leadership

logger = logging.getLogger("shoal_operator.kube")

MERGE_PATCH: dict[str, Any] = {"_content_type": "application/merge-patch+json"}
"""The client would send a JSON patch (a list of operations); our patches are merge patches."""


@dataclass(frozen=True, slots=True)
class Pod:
    """What the operator reads of a worker pod: its name and annotations."""

    name: str
    annotations: Mapping[str, str]


class Kube:
    """Typed wrappers over the calls the operator needs."""

    def __init__(self, api: client.ApiClient, leadership: Leadership | None = None) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.leadership = leadership
        self.instance = leadership.identity if leadership else "shoal-operator"
        """Who made a change, in the Events: with several operators, the one that led."""

    @classmethod
    async def connect(cls, leadership: Leadership | None = None) -> Kube:
        return cls(await api_client(), leadership)

    def _fence(self) -> None:
        if self.leadership is not None:
            self.leadership.check()

    async def close(self) -> None:
        await self.api.close()

    async def secret_value(self, namespace: str, ref: SecretKey) -> str:
        try:
            metrics.API_REQUESTS.labels("get", "secrets").inc()
            secret = await self.core.read_namespaced_secret(ref.name, namespace)
        except ApiException as error:
            if error.status == 404:
                raise MissingSecret(
                    f"Secret {namespace}/{ref.name} not found: create it with the backend URL "
                    f"under the key {ref.key!r}"
                ) from None
            raise
        data = secret.data or {}
        if ref.key not in data:
            raise MissingSecret(
                f"Secret {namespace}/{ref.name} has no key {ref.key!r} (it has: "
                f"{', '.join(sorted(data)) or 'none'}): add the backend URL under that key"
            )
        return base64.b64decode(data[ref.key]).decode()

    async def get_queue(self, namespace: str, name: str) -> QueueSpec | None:
        """The Queue parsed, or None if there is none (an invalid one raises InvalidSpec)."""
        try:
            metrics.API_REQUESTS.labels("get", "customresources").inc()
            found: dict[str, Any] = await self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "queues", name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return parse_queue(found)

    async def patch_status(self, target: ObjectRef, status: Mapping[str, Any]) -> None:
        self._fence()
        metrics.API_REQUESTS.labels("patch", "status").inc()
        await self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            target.namespace,
            target.plural,
            target.name,
            {"status": dict(status)},
            **MERGE_PATCH,
        )

    async def deployment_replicas(self, namespace: str, name: str) -> int | None:
        """The Deployment's ``spec.replicas``, or None if there is no such Deployment."""
        existing = await self._read_deployment(namespace, name)
        return None if existing is None else int(existing.spec.replicas or 0)

    async def _read_deployment(self, namespace: str, name: str) -> Any | None:
        try:
            metrics.API_REQUESTS.labels("get", "deployments").inc()
            return await self.apps.read_namespaced_deployment(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def apply_deployment(
        self, wanted: dict[str, Any], current: Mapping[str, Any] | None = None
    ) -> str:
        """Create the Deployment, or put back what differs from ``wanted``; returns what
        was done: "created", "updated" or "unchanged". ``current`` is the Deployment as a
        watch event just delivered it, which saves reading it again."""
        meta = wanted["metadata"]
        self._fence()
        if current is None:
            existing = await self._read_deployment(meta["namespace"], meta["name"])
            if existing is None:
                metrics.API_REQUESTS.labels("create", "deployments").inc()
                await self.apps.create_namespaced_deployment(meta["namespace"], cast(Any, wanted))
                return "created"
            current = self.api.sanitize_for_serialization(existing)
        if _contains(current, wanted):
            return "unchanged"
        self._fence()
        merged = dict(wanted)
        merged["metadata"] = {
            **current["metadata"],
            "labels": {**current["metadata"].get("labels", {}), **meta["labels"]},
            "ownerReferences": meta["ownerReferences"],
        }
        metrics.API_REQUESTS.labels("update", "deployments").inc()
        await self.apps.replace_namespaced_deployment(
            meta["name"], meta["namespace"], cast(Any, merged)
        )
        return "updated"

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self._fence()
        metrics.API_REQUESTS.labels("patch", "deployments/scale").inc()
        await self.apps.patch_namespaced_deployment_scale(
            name, namespace, {"spec": {"replicas": replicas}}, **MERGE_PATCH
        )

    async def pods(self, namespace: str, selector: str) -> list[Pod]:
        metrics.API_REQUESTS.labels("list", "pods").inc()
        listing = await self.core.list_namespaced_pod(namespace, label_selector=selector)
        return [
            Pod(item.metadata.name, dict(item.metadata.annotations or {})) for item in listing.items
        ]

    async def annotate_pod(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        self._fence()
        metrics.API_REQUESTS.labels("patch", "pods").inc()
        await self.core.patch_namespaced_pod(
            name,
            namespace,
            {"metadata": {"annotations": annotations}},
            **MERGE_PATCH,
        )

    async def event(
        self, target: ObjectRef, reason: str, message: str, type_: str = "Normal"
    ) -> None:
        """Post a core/v1 Event about ``target``; failures are logged, never raised (but a
        term that is over raises, as every write)."""
        self._fence()
        now = datetime.datetime.now(datetime.UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{target.name}.", namespace=target.namespace
            ),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind=target.kind,
                name=target.name,
                namespace=target.namespace,
                uid=target.uid,
            ),
            reason=reason,
            message=message[:1024],
            type=type_,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component="shoal-operator"),
            reporting_component="shoal-operator",
            reporting_instance=self.instance,
        )
        try:
            metrics.API_REQUESTS.labels("create", "events").inc()
            await self.core.create_namespaced_event(target.namespace, body)
        except ApiException as error:
            logger.warning("could not post event %s on %s: %s", reason, target.name, error)


async def api_client() -> client.ApiClient:
    """In-cluster credentials when in a pod, else the kubeconfig (``$KUBECONFIG``)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


def _contains(actual: Any, wanted: Any) -> bool:
    """Whether every field of ``wanted`` is in ``actual`` with the same value.

    Fields the API server defaults (imagePullPolicy, dnsPolicy, ...) are in ``actual`` only;
    they are not hand edits, so a subset comparison is the right test for drift.
    """
    if not wanted and isinstance(wanted, Mapping | list):
        return not actual  # the API server drops empty maps and lists
    if isinstance(wanted, Mapping):
        return isinstance(actual, Mapping) and all(
            _contains(actual.get(key), value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(wanted)
            and all(_contains(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    return bool(actual == wanted)
