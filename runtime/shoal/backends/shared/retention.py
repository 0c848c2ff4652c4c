"""How much retention deletes at once, on every backend.

Deletes happen during reap, in statements (or Lua calls) of at most :data:`PRUNE_BATCH`
tasks, and at most :data:`PRUNE_PER_REAP` tasks per reap: no long transaction holds vacuum
back or the Redis server up, and a backlog (a first reap over a year of finished tasks) is
worked off over the following reaps. With the default reap interval that is up to 10,000
tasks every few seconds, far more than any worker finishes in that time.
"""

from __future__ import annotations

PRUNE_BATCH = 1000
"""Tasks deleted by one statement or script at most."""
PRUNE_PER_REAP = 10 * PRUNE_BATCH
"""Tasks deleted by one reap at most."""
