"""The app layer: task registry, payload codecs, hooks. Above backends, below the worker."""

from shoal.app.application import App, load_app
from shoal.app.hooks import Event, EventName
from shoal.app.tasks import PushOptions, TaskDefinition

__all__ = ["App", "Event", "EventName", "PushOptions", "TaskDefinition", "load_app"]
