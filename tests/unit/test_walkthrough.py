"""The README's Kubernetes walkthrough names the images, files and values that really exist.

Its docker and kind steps cannot run here (no container engine), so this checks that they
fit together: each image the manifests and the chart use is built and loaded, under the same
name, by a step before the one that needs it.
"""

from __future__ import annotations

import re

import yaml

from tests.dockerfile import EXAMPLE, ROOT, parse

README = (ROOT / "README.md").read_text()


def walkthrough() -> list[str]:
    """The commands of the console block in the "On Kubernetes" section, continuations joined."""
    section = README.split("## On Kubernetes", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```console\n(.*?)```", section, re.S)
    assert block, "no console block in the On Kubernetes section"
    commands = block[1].replace("\\\n", " ").splitlines()
    return [re.sub(r"\s+#.*$", "", line.removeprefix("$ ")).strip() for line in commands]


def step(pattern: str) -> int:
    """The index of the first command matching ``pattern``."""
    for index, command in enumerate(walkthrough()):
        if re.search(pattern, command):
            return index
    raise AssertionError(f"no step matches {pattern!r} in:\n" + "\n".join(walkthrough()))


def test_every_image_is_built_then_loaded_under_the_name_that_is_used() -> None:
    pool = yaml.safe_load((ROOT / "examples" / "03-workerpool.yaml").read_text())
    values = yaml.safe_load((ROOT / "charts" / "shoal" / "values.yaml").read_text())
    install = walkthrough()[step(r"^helm install ")]
    tag = re.search(r"--set image\.tag=(\S+)", install)
    assert tag, install
    operator_image = f"{values['image']['repository']}:{tag[1]}"
    example_base = parse(EXAMPLE).resolve(parse(EXAMPLE).stages[0].base)
    images = {
        example_base: r"^docker build -t (\S+) \.$",
        operator_image: r"^docker build --target operator -t (\S+) \.$",
        pool["spec"]["image"]: r"^docker build -t (\S+) examples/$",
    }
    load = walkthrough()[step(r"^kind load docker-image ")].split()[3:]
    for image, build in images.items():
        built = re.search(build, walkthrough()[step(build)])
        assert built and built[1] == image, f"{image} is not what `{build}` builds"
        assert image in load, f"{image} is not loaded into kind"
        assert step(build) < step(r"^kind load ") < step(r"^kubectl apply -f examples/$")
    assert step(r"^kind create cluster$") < step(r"^helm install shoal charts/shoal ")


def test_the_enqueue_step_reaches_the_example_backend() -> None:
    enqueue = walkthrough()[step(r"^kubectl run ")]
    secret = yaml.safe_load((ROOT / "examples" / "01-secret.yaml").read_text())
    service = next(
        doc
        for doc in yaml.safe_load_all((ROOT / "examples" / "00-redis.yaml").read_text())
        if doc["kind"] == "Service"
    )
    name, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
    assert f"SHOAL_BACKEND_URL=redis://{name}:{port}/0" in enqueue
    assert f"redis://{name}.default.svc.cluster.local:{port}/0" == secret["stringData"]["url"]
    assert "python tasks.py" in enqueue and step(r"^kubectl run ") > step(r"^kubectl apply")
    assert walkthrough()[-1].startswith("kubectl get workerpools -w")
