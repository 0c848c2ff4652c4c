"""The shoal Kubernetes operator (kopf): Queue and WorkerPool resources, depth-driven scaling.

``shoal-operator --help`` lists its settings; ``docs/architecture.md`` its modules. The
runtime never imports this package.
"""
