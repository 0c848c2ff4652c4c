"""The registry of pools and queues: by name, by backend URL, and what a re-added pool keeps."""

from __future__ import annotations

from shoal_operator.registry import Registry
from shoal_operator.spec import SecretKey, parse_queue, parse_worker_pool
from shoal_operator.state import Pool, QueueEntry

URL = "postgresql://app:secret@db/jobs"


def pool(concurrency: int, url: str = URL) -> Pool:
    spec = parse_worker_pool(
        {
            "metadata": {"name": "mailers", "namespace": "prod"},
            "spec": {
                "queues": [{"name": "emails"}],
                "image": "registry.example/app:1",
                "app": "tasks:app",
                "concurrency": concurrency,
            },
        }
    )
    return Pool(spec, "uid-1", 1, ["emails"], url, 2, SecretKey("db", "url"))


def test_a_pool_added_again_keeps_what_was_learnt_of_it() -> None:
    registry = Registry()
    first = pool(4)
    registry.add_pool(first)
    first.ready, first.last_scale_reason = 2, "scale up 0 → 2"
    first.crashes.observe("mailers-x", "exited 2")
    changed = pool(8)
    registry.add_pool(changed)
    assert registry.pools[("prod", "mailers")] is changed
    assert (changed.ready, changed.last_scale_reason) == (2, "scale up 0 → 2")
    assert changed.history is first.history and not changed.crashes.observe("other", None).ok


def test_entries_are_found_by_backend_url_and_by_queue() -> None:
    registry = Registry()
    queue = parse_queue(
        {
            "metadata": {"name": "emails", "namespace": "prod"},
            "spec": {"backend": {"urlSecretRef": {"name": "db", "key": "url"}}},
        }
    )
    registry.add_queue(QueueEntry(queue, "uid-q", URL))
    registry.add_pool(pool(4, url="redis://cache/0"))
    assert registry.urls() == {URL, "redis://cache/0"}
    assert [q.spec.name for q in registry.queues_on(URL)] == ["emails"]
    assert registry.pools_on(URL) == []
    assert [p.spec.name for p in registry.pools_serving("prod", "emails")] == ["mailers"]
    assert registry.pools_serving("staging", "emails") == []
    registry.remove_queue(("prod", "emails"))
    assert registry.urls() == {"redis://cache/0"}
