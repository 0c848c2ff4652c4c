"""A Docker daemon of the tests' own, and shoal's images built in it from the Dockerfiles.

:class:`DockerDaemon` runs Debian's ``dockerd`` on a socket in a temporary directory, with no
bridge and no iptables rules of its own (builds and containers use the host's network, so
loopback PostgreSQL and Redis are reachable and nothing is left in the host's firewall), and
stops it afterwards. Its data root, where images and the build cache live, is kept outside
git (``~/.cache/shoal/docker``) so that a second run rebuilds only what changed.

:func:`build_images` builds the three images the README names from the repository's
Dockerfiles: the runtime (``shoal:dev``), the operator (``--target operator``) and the example
worker (``examples/``). No registry is reachable here, so their base is made locally:
``scripts/base-image.sh`` debootstraps Debian with its Python into a cached tarball, imported
here and passed through the Dockerfile's ``PYTHON_IMAGE`` argument. The machine's CA bundle
(a proxy re-signs outbound HTTPS) reaches pip as a BuildKit secret, never a layer.

Fixtures: ``docker_daemon`` and ``shoal_images`` (one per session). Both are built before the
first test that needs them, outside the per-test timeout (see :func:`pytest_runtestloop`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.servers.host import stop_process_group, unmount_below

REPO = Path(__file__).resolve().parents[2]
BASE_SCRIPT = REPO / "scripts" / "base-image.sh"
REDIS_IMAGE = REPO / "tests" / "servers" / "redis-image"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shoal"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""The machine's trust store, which holds the proxy's CA: pip's secret during builds."""


class DockerFailed(RuntimeError):
    """A docker command exited non-zero; the message carries its output."""

    def __init__(self, argv: list[str], result: subprocess.CompletedProcess[str]) -> None:
        output = (result.stdout + result.stderr)[-4000:]
        super().__init__(f"{' '.join(argv)} exited {result.returncode}:\n{output}")
        self.result = result


def debian_docker() -> tuple[Path, Path]:
    """Debian's dockerd and its client, which Debian installs beside it in /usr/bin: a newer
    standalone ``docker`` earlier on PATH may lack the BuildKit client the 20.10 daemon speaks."""
    found = shutil.which("dockerd")
    if found is None:
        raise RuntimeError("no dockerd: scripts/install-node.sh installs docker.io")
    dockerd = Path(found).resolve()
    for directory in (dockerd.parent, dockerd.parent.parent / "bin"):
        if (directory / "docker").exists():
            return dockerd, directory / "docker"
    raise RuntimeError(f"no docker client beside {dockerd}")


class DockerDaemon:
    """``dockerd`` on ``directory/docker.sock``, its images under ``data_root``.

    A lock on ``data_root`` keeps two sessions from running daemons on the same store.
    """

    def __init__(self, directory: Path, data_root: Path) -> None:
        self.directory = directory
        self.data_root = data_root
        self.socket = directory / "docker.sock"
        self.dockerd, self.client = debian_docker()
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None

    def start(self, *, timeout: float = 60.0) -> None:
        self.data_root.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(self.data_root.parent / f"{self.data_root.name}.lock", os.O_CREAT)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        with open(self.directory / "dockerd.log", "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(self.dockerd),
                    f"--host=unix://{self.socket}",
                    f"--data-root={self.data_root}",
                    f"--exec-root={self.directory / 'exec'}",
                    f"--pidfile={self.directory / 'dockerd.pid'}",
                    "--bridge=none",
                    "--iptables=false",
                    "--ip-masq=false",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + timeout
            while self.docker("version", check=False).returncode != 0:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = (self.directory / "dockerd.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"dockerd did not start:\n{tail}")
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise

    def stop(self, *, timeout: float = 30.0) -> None:
        """SIGTERM (dockerd stops its containers and its containerd), SIGKILL if it hangs;
        then the mounts it leaves in its exec root."""
        if self.process is not None:
            stop_process_group(self.process, timeout)
            self.process = None
            unmount_below(self.directory)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def docker(
        self, *args: str, check: bool = True, timeout: float = 120.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run Debian's docker client against this daemon; raises :class:`DockerFailed`."""
        argv = [str(self.client), f"--host=unix://{self.socket}", *args]
        env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": str(self.directory)}
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, input=input, check=False
        )
        if check and result.returncode != 0:
            raise DockerFailed(argv, result)
        return result

    def inspect(self, kind: str, name: str) -> dict[str, Any]:
        found = json.loads(self.docker(kind, "inspect", name).stdout)
        assert isinstance(found, list) and len(found) == 1
        return dict(found[0])

    def has_image(self, name: str) -> bool:
        return self.docker("image", "inspect", name, check=False).returncode == 0

    def __enter__(self) -> DockerDaemon:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Images:
    """The images built, and what each build took (seconds; near 0 when cached)."""

    base: str
    runtime: str = "shoal:dev"
    operator: str = "shoal-operator:dev"
    example: str = "shoal-example:dev"
    redis: str = "shoal-test-redis:dev"
    """For the pods' Redis of examples/00-redis.yaml (tests/servers/redis-image/)."""
    seconds: tuple[tuple[str, float], ...] = ()

    def names(self) -> list[str]:
        """shoal's three images, the README's."""
        return [self.runtime, self.operator, self.example]

    def node_images(self) -> list[str]:
        """What a real node's pods run: shoal's images and the example's Redis."""
        return [*self.names(), self.redis]


def base_tarball() -> Path:
    """The debootstrapped root filesystem: ``scripts/base-image.sh`` makes it once."""
    result = subprocess.run(
        [str(BASE_SCRIPT)], stdout=subprocess.PIPE, text=True, timeout=1800, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        raise RuntimeError(f"scripts/base-image.sh failed (exit {result.returncode})")
    return Path(lines[-1])


def build_images(daemon: DockerDaemon, tarball: Path) -> Images:
    """The base imported (once per tarball), the three images built from the Dockerfiles, and
    the Redis image of the real node's pods."""
    timings: list[tuple[str, float]] = []
    digest = hashlib.sha256(f"{tarball}:{tarball.stat().st_mtime_ns}".encode()).hexdigest()
    base = f"shoal-test-base:bookworm-{digest[:12]}"
    started = time.monotonic()
    if not daemon.has_image(base):
        daemon.docker("import", str(tarball), base, timeout=600)
    timings.append(("import base", time.monotonic() - started))
    images = Images(base=base)
    common = ["build", "--network=host", "--progress=plain"]
    if CA_BUNDLE.exists():
        common.append(f"--secret=id=ca-certificates,src={CA_BUNDLE}")
    builds = [
        (images.runtime, ["--build-arg", f"PYTHON_IMAGE={base}", str(REPO)]),
        (
            images.operator,
            ["--build-arg", f"PYTHON_IMAGE={base}", "--target", "operator", str(REPO)],
        ),
        (images.example, ["--build-arg", f"SHOAL_IMAGE={images.runtime}", str(REPO / "examples")]),
        (images.redis, ["--build-arg", f"BASE_IMAGE={base}", str(REDIS_IMAGE)]),
    ]
    for name, arguments in builds:
        started = time.monotonic()
        daemon.docker(*common, "--tag", name, *arguments, timeout=1200)
        timings.append((f"build {name}", time.monotonic() - started))
    return Images(base=base, seconds=tuple(timings))


_prepared: dict[str, Any] = {}
"""The session's daemon and images (or the failure), made before the first test needs them."""


def _prepare(stack: contextlib.ExitStack) -> tuple[DockerDaemon, Images]:
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shoal-docker-")))
    daemon = stack.enter_context(DockerDaemon(directory, CACHE / "docker"))
    return daemon, build_images(daemon, base_tarball())


def _wants_images(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    # With SHOAL_TEST_REAL_NODE=1, kube_cluster is the real-node cluster, which needs them.
    real_node = os.environ.get("SHOAL_TEST_REAL_NODE") == "1" and "kube_cluster" in fixtures
    return "shoal_images" in fixtures or real_node


def _prepare_once(config: pytest.Config) -> None:
    """Start dockerd and build the images, once per session; stopped at the session's end."""
    if _prepared:
        return
    stack = contextlib.ExitStack()
    config.add_cleanup(stack.close)
    capture = config.pluginmanager.getplugin("capturemanager")
    quiet = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with quiet:
        try:
            _prepared["daemon"], _prepared["images"] = _prepare(stack)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            _prepared["error"] = exc


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Start dockerd and build the images before the first test, when one needs them: the
    first build takes minutes (debootstrap, pip), outside every test's timeout."""
    if not session.config.option.collectonly and any(map(_wants_images, session.items)):
        _prepare_once(session.config)


def _session_value(config: pytest.Config, key: str) -> Any:
    _prepare_once(config)  # already done, unless no selected test seemed to need them
    if "error" in _prepared:
        error = _prepared["error"]
        raise RuntimeError(f"no images: {error}") from error
    return _prepared[key]


@pytest.fixture(scope="session")
def docker_daemon(request: pytest.FixtureRequest, shoal_images: Images) -> DockerDaemon:
    """The session's dockerd, with :data:`shoal_images` built in it."""
    daemon: DockerDaemon = _session_value(request.config, "daemon")
    return daemon


@pytest.fixture(scope="session")
def shoal_images(request: pytest.FixtureRequest) -> Images:
    """The runtime, operator and example images, built from the repository's Dockerfiles."""
    images: Images = _session_value(request.config, "images")
    return images
