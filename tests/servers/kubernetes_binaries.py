"""Where the Kubernetes test binaries come from, found (or built) before the first test.

First match wins:

- ``KUBEBUILDER_ASSETS`` (envtest's convention), when it holds the binaries asked for;
- ``scripts/k8s-binaries.sh`` (``--node`` for the real node's too), which builds them once
  from the Go module proxy into a cache outside git and prints the bin dir (fast when cached;
  the first build takes 10-30 minutes, done before the first test starts so the per-test
  timeout does not cut it short).

A pytest plugin (``tests/conftest.py`` lists it) for its :func:`pytest_runtestloop` hook.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.servers.node import NODE_BINARIES

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "k8s-binaries.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")


def holds_binaries(directory: Path, names: tuple[str, ...] = BINARIES) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in names)


def find_bin_dir(*, node: bool = False) -> Path:
    """The directory holding the binaries (with ``node``, the real node's too):
    ``KUBEBUILDER_ASSETS`` or the build script's cache.

    The script's progress goes to this process's stderr; its last stdout line is the bin dir.
    """
    names = BINARIES + NODE_BINARIES if node else BINARIES
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and holds_binaries(Path(assets), names):
        return Path(assets)
    argv = [str(BUILD_SCRIPT), *(["--node"] if node else [])]
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, timeout=3600, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not holds_binaries(Path(lines[-1]), names):
        raise RuntimeError(
            f"{BUILD_SCRIPT.relative_to(REPO)} failed (exit {result.returncode}); "
            "its output is above"
        )
    return Path(lines[-1])


REAL_NODE_DEFAULT = os.environ.get("SHOAL_TEST_REAL_NODE") == "1"
"""``SHOAL_TEST_REAL_NODE=1``: ``kube_cluster`` is the real-node cluster too (one per session)."""

_built: dict[bool, Path | BaseException] = {}
"""The bin dir (or the failure) per ``node``, found before the first test: the build is not
timed."""


def _wants(item: pytest.Item, fixture: str) -> bool:
    return fixture in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Build the binaries before any test starts, when a selected test needs the cluster.

    A first build takes minutes: done here it is outside every test's timeout, and its
    progress lines reach the terminal.
    """
    if session.config.option.collectonly or _built:
        return
    plain = any(_wants(item, "kube_cluster") for item in session.items)
    node = any(_wants(item, "real_cluster") for item in session.items)
    node = node or (plain and REAL_NODE_DEFAULT)
    if not (plain or node):
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    quiet = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with quiet:
        try:
            found: Path | BaseException = find_bin_dir(node=node)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            found = exc
        _built[False] = found
        if node:
            _built[True] = found


def bin_dir(*, node: bool) -> Path:
    """The bin dir found before the tests (or now, if no selected test seemed to need it)."""
    found = _built[node] if node in _built else find_bin_dir(node=node)
    if isinstance(found, BaseException):
        raise RuntimeError(f"no Kubernetes binaries: {found}") from found
    return found
