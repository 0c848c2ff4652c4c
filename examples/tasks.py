"""Example tasks, baked into the worker image by ``examples/Dockerfile``.

On Kubernetes the WorkerPool in ``03-workerpool.yaml`` runs ``shoal worker tasks:app`` with
``SHOAL_BACKEND_URL`` taken from the Secret in ``01-secret.yaml``. Locally::

    cd examples
    shoal migrate                       # sqlite:///shoal.db unless SHOAL_BACKEND_URL is set
    python tasks.py 50                  # enqueue 50 thumbnails
    shoal worker tasks:app              # run them; Ctrl-C (or SIGTERM) drains and exits 0
"""

from __future__ import annotations

import asyncio
import hashlib
import sys

from shoal import App, Context, PermanentFailure, RetryPolicy

app = App()  # the backend URL comes from SHOAL_BACKEND_URL (the Secret, on Kubernetes)

QUEUE = "thumbnails"
"""The backend queue the tasks use; ``02-queue.yaml`` names it in ``spec.queueName``."""


@app.task(queue=QUEUE, timeout=60)
async def make_thumbnail(context: Context, image_id: int, width: int = 256) -> str:
    """Pretend to resize an image: two seconds of I/O, long enough to watch a pool scale."""
    if width <= 0:
        raise PermanentFailure(f"width must be positive, got {width}")  # never retried
    await asyncio.sleep(2)
    return f"image {image_id} at {width}px (attempt {context.attempt})"


@app.task(queue=QUEUE, retry=RetryPolicy(max_attempts=5, base_delay=1))
def checksum(text: str) -> str:
    """A plain function: it runs in the worker's thread pool."""
    return hashlib.sha256(text.encode()).hexdigest()


async def enqueue(count: int) -> None:
    """Push ``count`` thumbnails and one checksum in two round trips."""
    async with app:
        await app.backend.setup()  # idempotent, the same as `shoal migrate`
        await make_thumbnail.push_many([{"image_id": i} for i in range(count)])
        await checksum.push(text="hello from shoal")
    print(f"enqueued {count} thumbnails and a checksum on {QUEUE!r}")


if __name__ == "__main__":
    asyncio.run(enqueue(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
