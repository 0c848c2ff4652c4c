"""Installed distributions made on the fly, for the tests of backend plugins.

``importlib.metadata`` finds a distribution by its ``*.dist-info`` folder on ``sys.path``;
one written here is found, and its entry points loaded, exactly as one pip installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def write_distribution(
    site: Path, name: str, version: str, entry_points: Mapping[str, Mapping[str, str]]
) -> Path:
    """Write the metadata of distribution ``name`` into ``site`` (a folder on ``sys.path``)."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    sections = [
        "\n".join([f"[{group}]", *(f"{key} = {value}" for key, value in entries.items())])
        for group, entries in entry_points.items()
    ]
    (info / "entry_points.txt").write_text("\n\n".join(sections) + "\n")
    return info
