"""shoal: background jobs for Python that run the same on a laptop and on Kubernetes."""
