"""A stand-in for the kubelet: worker pods run as local processes, for end-to-end tests.

There is no container engine here, but the rest is real: the operator scales Deployments on a
real kube-apiserver, kube-controller-manager turns them into ReplicaSets and Pod objects, and
this process plays the node. It

- registers a Node, keeps it Ready with heartbeats (its status and its Lease), and binds
  the pool's Pods to it (so deletion is graceful, as on a node);
- runs each Pod's container command with the Pod's environment, Secret values resolved as
  the kubelet resolves ``secretKeyRef``, ``POD_NAME`` from ``fieldRef``;
- reports the Pod Running and Ready, so ``readyReplicas`` and pod deletion cost work;
- on deletion sends SIGTERM, then SIGKILL after ``terminationGracePeriodSeconds``, and
  removes the Pod, exactly as the kubelet does; restarts a container that exits by itself;
- appends every start, signal and exit to a JSON-lines record for the tests to assert on.

What it does not simulate: images (the command runs from this checkout with this Python),
isolation (``/tmp`` becomes a per-pod folder, the metrics and health ports free ports),
probes other than readiness (an ``httpGet`` of the pod's readiness probe), resource
limits, init containers, volumes other than the scratch ``emptyDir``, and anything about
networking.

Run: ``python -m tests.e2e.kubelet --namespace NS --record FILE --workdir DIR`` with
``$KUBECONFIG`` set; SIGTERM stops it and its processes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from tests.servers.ports import free_port

NODE = "standin-node"
SELECTOR = "app.kubernetes.io/managed-by=shoal-operator"
ROOT = Path(__file__).resolve().parents[2]
STRATEGIC: dict[str, Any] = {"_content_type": "application/strategic-merge-patch+json"}
MERGE: dict[str, Any] = {"_content_type": "application/merge-patch+json"}


@dataclass
class Running:
    pod: str
    process: subprocess.Popen[bytes]
    grace: int
    readiness: str | None
    """The URL the readiness probe GETs, on the health port given to this process."""
    log: Path
    terminating_since: float | None = None
    restarts: int = 0
    ready: bool = False
    restart_at: float | None = None


class Kubelet:
    def __init__(self, namespace: str, record: Path, workdir: Path, app_dir: Path) -> None:
        self.namespace = namespace
        self.record_path = record
        self.workdir = workdir
        self.app_dir = app_dir
        self.running: dict[str, Running] = {}
        self.api: client.ApiClient | None = None
        self._next_heartbeat = 0.0

    def record(self, event: str, pod: str, **details: Any) -> None:
        line = json.dumps({"time": time.time(), "event": event, "pod": pod, **details})
        with self.record_path.open("a") as sink:
            sink.write(line + "\n")

    async def run(self, stop: asyncio.Event) -> None:
        await config.load_kube_config()
        self.api = client.ApiClient()
        core = client.CoreV1Api(self.api)
        await self._register_node(core)
        try:
            while not stop.is_set():
                if time.monotonic() >= self._next_heartbeat:
                    await self._heartbeat(core)
                await self._sync(core)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)
        finally:
            for running in self.running.values():
                _stop(running.process, 5)
            await self.api.close()

    async def _register_node(self, core: client.CoreV1Api) -> None:
        node: Any = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
        try:
            await core.create_node(node)
        except ApiException as error:
            if error.status != 409:
                raise
        await self._heartbeat(core)

    async def _heartbeat(self, core: client.CoreV1Api) -> None:
        """Keep the node Ready: without heartbeats the node lifecycle controller marks it
        NotReady after its grace period, and every pod on it unready."""
        now = _now()
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "StandIn",
            "message": "tests/e2e/kubelet.py plays this node",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        await core.patch_node_status(NODE, {"status": {"conditions": [ready]}}, **STRATEGIC)
        assert self.api is not None
        leases = client.CoordinationV1Api(self.api)
        lease: Any = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": NODE, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40, "renewTime": _micro_now()},
        }
        try:
            await leases.patch_namespaced_lease(
                NODE, "kube-node-lease", {"spec": lease["spec"]}, **MERGE
            )
        except ApiException as error:
            if error.status != 404:
                raise
            await leases.create_namespaced_lease("kube-node-lease", lease)
        self._next_heartbeat = time.monotonic() + 10

    async def _sync(self, core: client.CoreV1Api) -> None:
        pods = (await core.list_namespaced_pod(self.namespace, label_selector=SELECTOR)).items
        seen = set()
        for pod in pods:
            name = pod.metadata.name
            seen.add(name)
            if pod.spec.node_name is None:
                await self._bind(core, name)
                continue
            running = self.running.get(name)
            if pod.metadata.deletion_timestamp is not None:
                await self._terminate(core, pod, running)
            elif running is None:
                await self._start(core, pod)
            elif running.process.poll() is not None:
                await self._crashed(core, pod, running)
            elif not running.ready and await _answers(running.readiness):
                # The readiness probe: the worker's health endpoint says it is ready.
                running.ready = True
                self.record("ready", name)
                await self._report(core, pod, running, ready=True)
        for name in list(self.running.keys() - seen):  # deleted with grace 0 by someone
            running = self.running.pop(name)
            _stop(running.process, 0)
            self.record("killed", name, reason="pod vanished")

    async def _bind(self, core: client.CoreV1Api, name: str) -> None:
        binding: Any = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
        }
        try:
            await core.create_namespaced_binding(self.namespace, binding, _preload_content=False)
        except ApiException as error:
            if error.status != 409:
                raise

    async def _start(self, core: client.CoreV1Api, pod: Any, restarts: int = 0) -> None:
        name = pod.metadata.name
        [container] = pod.spec.containers
        scratch = self.workdir / name / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(self.app_dir)}
        for variable in container.env or []:
            env[variable.name] = await self._resolve(core, pod, variable)
        arguments = [
            _localise(a, scratch) for a in [*(container.command or []), *(container.args or [])]
        ]
        ports = {}
        for flag, port_name in (("--metrics-port", "metrics"), ("--health-port", "health")):
            if flag in arguments:
                ports[port_name] = free_port()
                arguments[arguments.index(flag) + 1] = str(ports[port_name])
        if arguments and arguments[0] == "shoal":
            arguments = [sys.executable, "-m", "shoal", *arguments[1:]]
        log = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: ASYNC220 (a fork: as quick as a kubelet's)
            arguments,
            cwd=self.app_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        grace = int(pod.spec.termination_grace_period_seconds or 30)
        readiness = None
        probe = container.readiness_probe
        if probe is not None and probe.http_get is not None:
            port = ports[probe.http_get.port]
            readiness = f"http://127.0.0.1:{port}{probe.http_get.path}"
        running = Running(
            name, process, grace, readiness, self.workdir / f"{name}.log", restarts=restarts
        )
        self.running[name] = running
        self.record("started", name, pid=process.pid, argv=arguments[3:], readiness=readiness)
        await self._report(core, pod, running, ready=False)

    async def _crashed(self, core: client.CoreV1Api, pod: Any, running: Running) -> None:
        """A container that exited by itself restarts after a back-off, as CrashLoopBackOff."""
        if running.restart_at is None:
            code = running.process.returncode
            self.record("exited", running.pod, code=code, on_its_own=True)
            running.restarts += 1
            running.ready = False
            running.restart_at = time.monotonic() + min(10.0, 2.0 ** (running.restarts - 1))
            tail = running.log.read_text(errors="replace").strip().splitlines()[-5:]
            terminated = {
                "exitCode": code,
                "reason": "Error" if code else "Completed",
                "message": "\n".join(tail),
                "finishedAt": _now(),
            }
            await self._report(core, pod, running, ready=False, terminated=terminated)
        elif time.monotonic() >= running.restart_at:
            await self._start(core, pod, restarts=running.restarts)

    async def _report(
        self,
        core: client.CoreV1Api,
        pod: Any,
        running: Running,
        *,
        ready: bool,
        terminated: dict[str, Any] | None = None,
    ) -> None:
        flag = "True" if ready else "False"
        container = pod.spec.containers[0]
        state = (
            {"waiting": {"reason": "CrashLoopBackOff"}}
            if terminated
            else {"running": {"startedAt": _now()}}
        )
        status = {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "hostIP": "127.0.0.1",
            "startTime": _now(),
            "conditions": [
                {"type": "Ready", "status": flag, "lastTransitionTime": _now()},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": _now()},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()},
            ],
            "containerStatuses": [
                {
                    "name": container.name,
                    "ready": ready,
                    "restartCount": running.restarts,
                    "image": container.image,
                    "imageID": "",
                    "started": not terminated,
                    "state": state,
                    "lastState": {"terminated": terminated} if terminated else {},
                }
            ],
        }
        await core.patch_namespaced_pod_status(
            pod.metadata.name, self.namespace, {"status": status}
        )

    async def _resolve(self, core: client.CoreV1Api, pod: Any, variable: Any) -> str:
        if variable.value_from is None:
            return str(variable.value or "")
        if variable.value_from.field_ref is not None:
            path = variable.value_from.field_ref.field_path
            fields = {
                "metadata.name": pod.metadata.name,
                "metadata.namespace": pod.metadata.namespace,
            }
            return str(fields.get(path, ""))
        reference = variable.value_from.secret_key_ref
        secret = await core.read_namespaced_secret(reference.name, self.namespace)
        return str(base64.b64decode(secret.data[reference.key]).decode())

    async def _terminate(self, core: client.CoreV1Api, pod: Any, running: Running | None) -> None:
        name = pod.metadata.name
        if running is not None:
            if running.terminating_since is None:
                running.terminating_since = time.monotonic()
                running.process.send_signal(signal.SIGTERM)
                self.record("sigterm", name, pid=running.process.pid)
            elif running.process.poll() is None:
                if time.monotonic() - running.terminating_since < running.grace:
                    return
                running.process.kill()
                running.process.wait(10)
                self.record("sigkill", name, pid=running.process.pid, grace=running.grace)
            if running.process.poll() is None:
                return
            self.record(
                "exited",
                name,
                code=running.process.returncode,
                after=round(time.monotonic() - running.terminating_since, 3),
            )
            self.running.pop(name)
        try:
            await core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
        except ApiException as error:
            if error.status != 404:
                raise


def _localise(argument: str, scratch: Path) -> str:
    if argument.startswith("/tmp/"):
        return str(scratch / argument.removeprefix("/tmp/"))
    return argument


async def _answers(url: str | None) -> bool:
    """One httpGet probe: a 2xx or 3xx answer within a second."""
    if url is None:
        return False

    def get() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                return 200 <= int(answer.status) < 400
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    return await asyncio.to_thread(get)


def _micro_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _stop(process: subprocess.Popen[bytes], grace: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--app-dir", type=Path, default=ROOT)
    arguments = parser.parse_args()
    kubelet = Kubelet(arguments.namespace, arguments.record, arguments.workdir, arguments.app_dir)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        await kubelet.run(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
