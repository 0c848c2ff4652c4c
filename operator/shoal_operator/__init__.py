"""The shoal Kubernetes operator (kopf): Queue and WorkerPool resources, depth-driven scaling.

Not built yet: see the operator issue. The runtime never imports this package.
"""
