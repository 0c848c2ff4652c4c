"""The worker layer: claim, run, record, drain. Imports the app and the backends."""

from shoal.worker.monitor import run_workers
from shoal.worker.worker import Worker

__all__ = ["Worker", "run_workers"]
