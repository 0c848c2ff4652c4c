"""The operator's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

QUEUE_DEPTH = Gauge("shoal_operator_queue_ready", "Ready tasks per queue.", ("namespace", "queue"))
QUEUE_OLDEST = Gauge(
    "shoal_operator_queue_oldest_ready_seconds",
    "Age of the oldest ready task per queue.",
    ("namespace", "queue"),
)
POOL_DESIRED = Gauge(
    "shoal_operator_pool_desired_replicas", "Replicas the policy wants.", ("namespace", "pool")
)
POOL_READY = Gauge("shoal_operator_pool_ready_replicas", "Ready replicas.", ("namespace", "pool"))
SCALE_EVENTS = Counter(
    "shoal_operator_scale_events", "Scale decisions applied.", ("namespace", "pool", "direction")
)
DECISION_LATENCY = Histogram(
    "shoal_operator_decision_latency_seconds",
    "From a signal (wake-up or tick) to the Deployment patched.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STATS_QUERIES = Counter(
    "shoal_operator_stats_queries", "Stats round trips to backends.", ("backend",)
)
RECONCILE_ERRORS = Counter(
    "shoal_operator_reconcile_errors", "Failed reconciles by reason.", ("kind", "reason")
)
RECONCILE_DURATION = Histogram(
    "shoal_operator_reconcile_duration_seconds", "Time one WorkerPool reconcile takes."
)
API_REQUESTS = Counter(
    "shoal_operator_api_requests",
    "Kubernetes API calls the operator made itself (kopf's watches aside).",
    ("verb", "resource"),
)
LEADER = Gauge(
    "shoal_operator_leader",
    "1 while this operator holds the Lease and acts; 0 while it stands by (leader election).",
)

_served: set[int] = set()


def serve(port: int) -> None:
    """Serve the metrics on ``port``, once per process: a standby serves them while it waits
    and goes on serving them as the leader."""
    if port and port not in _served:
        start_http_server(port)
        _served.add(port)
