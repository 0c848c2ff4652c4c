"""Every error the operator raises about a resource, in one tree under shoal's own.

::

    ShoalError                     (shoal.core.errors)
    └── OperatorError              a resource cannot be acted on; the message says what to fix
        ├── InvalidSpec            the resource itself is wrong: fixed only by editing it
        ├── MissingSecret          the Secret or its key holding the backend URL is missing
        └── QueueMissing           a WorkerPool names a Queue that does not exist
    └── LeadershipLost             this operator's term on the Lease is over: it writes nothing

Each class's docstring is its default message and its ``reason`` the reason of the status
condition and of the Event that report it. ``permanent`` errors wait for the resource to
change (``kopf.PermanentError``); the others are retried (``kopf.TemporaryError``), since
the missing object may yet be created.
"""

from __future__ import annotations

from typing import ClassVar

from shoal.core.errors import ShoalError


class OperatorError(ShoalError):
    """The operator cannot act on this resource."""

    reason: ClassVar[str] = "Failed"
    permanent: ClassVar[bool] = False


class InvalidSpec(OperatorError):
    """The custom resource is invalid; the message says what to change."""

    reason = "InvalidSpec"
    permanent = True


class MissingSecret(OperatorError):
    """The Secret or its key holding the backend URL does not exist."""

    reason = "SecretMissing"


class QueueMissing(OperatorError):
    """The WorkerPool names a Queue that does not exist."""

    reason = "QueueMissing"


class LeadershipLost(ShoalError):
    """This operator no longer holds the leader Lease; the one that does makes the changes."""
