"""``open_backend`` and the backends other packages register in the ``shoal.backends`` group.

Each test installs distributions of its own (``tests/distributions.py``): the lookup goes
through ``importlib.metadata`` as it does for a package pip installed.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shoal.backends import open_backend
from shoal.backends.memory import MemoryBackend
from shoal.backends.sqlite import SQLiteBackend
from shoal.core.errors import BackendPluginError, ConfigurationError, UnsupportedBackend
from tests.distributions import write_distribution

Install = Callable[..., None]

PLUGINS = {
    "good_plugin": """
        from shoal.backends.memory import MemoryBackend

        opened = []

        def from_url(url):
            opened.append(url)
            return MemoryBackend()
    """,
    "broken_plugin": "import no_such_driver_anywhere",
    "wrong_plugin": "def from_url(url):\n    return object()",
    "raising_plugin": """
        from shoal.core.errors import ConfigurationError

        def from_url(url):
            if "typed" in url:
                raise ConfigurationError("the mine:// URL needs a bucket")
            raise ValueError(f"cannot parse {url}")
    """,
}


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(distribution, scheme=module)``: a distribution whose plugins are these modules."""
    site = tmp_path / "site"
    site.mkdir()
    for module, source in PLUGINS.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(site)

    def install(distribution: str, **schemes: str) -> None:
        entries = {scheme: f"{module}:from_url" for scheme, module in schemes.items()}
        write_distribution(site, distribution, "1.0", {"shoal.backends": entries})

    yield install
    for module in PLUGINS:
        sys.modules.pop(module, None)


def test_a_registered_scheme_opens_the_plugins_backend(install: Install) -> None:
    install("shoal-mine", mine="good_plugin")
    backend = open_backend("mine://bucket/jobs")
    assert isinstance(backend, MemoryBackend)
    assert sys.modules["good_plugin"].opened == ["mine://bucket/jobs"]


def test_an_unknown_scheme_lists_built_in_and_installed_schemes(install: Install) -> None:
    install("shoal-mine", mine="good_plugin", MORE="good_plugin")
    with pytest.raises(UnsupportedBackend) as caught:
        open_backend("mysql://root:hunter2@db/x")
    message = str(caught.value)
    assert "'mysql://root:***@db/x'" in message and "hunter2" not in message
    assert "memory://, sqlite://, postgresql://, postgres://, redis://, rediss://" in message
    assert "installed plugins serve mine:// (shoal-mine 1.0), more:// (shoal-mine 1.0)" in message
    assert "'shoal.backends' entry-point group" in message


def test_a_plugin_never_shadows_a_built_in_scheme(install: Install, tmp_path: Path) -> None:
    install("shoal-impostor", sqlite="good_plugin")
    assert isinstance(open_backend(f"sqlite:///{tmp_path}/x.db"), SQLiteBackend)
    with pytest.raises(UnsupportedBackend, match=r"ignored, as built in: sqlite:// \(shoal-imp"):
        open_backend("nothing://")


def test_a_plugin_that_fails_to_import_is_named(install: Install) -> None:
    install("shoal-broken", mine="broken_plugin")
    with pytest.raises(BackendPluginError) as caught:
        open_backend("mine://x")
    assert (caught.value.scheme, caught.value.distribution) == ("mine", "shoal-broken 1.0")
    assert str(caught.value) == (
        "the mine:// backend plugin from the distribution shoal-broken 1.0 failed to load "
        "'broken_plugin:from_url': ModuleNotFoundError: No module named 'no_such_driver_anywhere'"
    )
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_a_plugin_returning_something_else_than_a_backend_is_named(install: Install) -> None:
    install("shoal-wrong", mine="wrong_plugin")
    with pytest.raises(
        BackendPluginError,
        match=r"shoal-wrong 1\.0 is broken: 'wrong_plugin:from_url' returned a 'object', not a",
    ):
        open_backend("mine://x")


def test_a_plugin_failing_to_build_is_named_without_the_password(install: Install) -> None:
    install("shoal-raising", mine="raising_plugin")
    with pytest.raises(BackendPluginError) as caught:
        open_backend("mine://app:hunter2@host/x")
    assert "hunter2" not in str(caught.value)
    assert (
        "failed to build a backend for 'mine://app:***@host/x': ValueError: cannot parse "
        in str(caught.value)
    )
    with pytest.raises(ConfigurationError, match="needs a bucket") as typed:
        open_backend("mine://typed")
    assert not isinstance(typed.value, BackendPluginError)


def test_a_scheme_registered_twice_names_both_distributions(install: Install) -> None:
    install("shoal-one", mine="good_plugin")
    install("shoal-two", mine="good_plugin")
    with pytest.raises(
        BackendPluginError, match=r"shoal-one 1\.0 and shoal-two 1\.0 is ambiguous: "
    ):
        open_backend("mine://x")
