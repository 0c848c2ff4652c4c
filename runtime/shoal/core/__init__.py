"""The core layer: models, errors, ids, settings. It imports nothing else from shoal."""
