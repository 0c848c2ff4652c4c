"""Sortable task ids: UUIDv7 (RFC 9562) with a monotonic counter within one process."""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from datetime import datetime

_lock = threading.Lock()
_last_millis = 0
_counter = 0


def new_id() -> str:
    """Return a UUIDv7 string; ids made by one process sort in the order they were made."""
    global _last_millis, _counter
    with _lock:
        millis = time.time_ns() // 1_000_000
        if millis > _last_millis:
            _last_millis, _counter = millis, int.from_bytes(os.urandom(2)) & 0x3FF
        else:
            # Same (or an earlier) millisecond: keep the clock still and count up, so the
            # order stays monotonic; 12 bits of counter overflow into the next millisecond.
            _counter += 1
            if _counter > 0xFFF:
                _last_millis, _counter = _last_millis + 1, 0
        millis = _last_millis
        counter = _counter
    tail = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
    value = (millis << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | tail
    return str(uuid.UUID(int=value))


def id_floor(at: datetime) -> str:
    """The lowest id :func:`new_id` makes at ``at`` or later (to the millisecond): every
    UUIDv7 made from then on sorts at or above it, every one made before sorts below."""
    millis = max(0, math.floor(at.timestamp() * 1000))
    return str(uuid.UUID(int=min(millis, (1 << 48) - 1) << 80))
