"""The version of shoal that is running: what ``shoal --version`` prints and every worker
reports with its heartbeats (``shoal workers``), so a mixed fleet mid-upgrade shows itself."""

from __future__ import annotations

from importlib import metadata

try:
    VERSION = metadata.version("shoal")
except metadata.PackageNotFoundError:  # imported from a source tree nobody installed
    VERSION = "0+unknown"
