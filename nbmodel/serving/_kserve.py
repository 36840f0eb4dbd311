"""KServe manifests: the step from the notebook's server to a cluster.

``%model_deploy iris/3 --kserve DIR`` writes a KServe ``InferenceService`` that serves the
same MLflow model directory the notebook's server loads, in MLflow format through KServe's
MLServer runtime (``modelFormat: mlflow``, V2 inference protocol). With ``--steps 10,50,100``
it writes one manifest per step of a canary rollout, as ``%model_canary`` walks it on one
machine: each sets ``canaryTrafficPercent`` (KServe sends that share to the newest revision),
the last one (100) leaves it out, which promotes the revision, and ``*-rollback.yaml`` sets it
to 0. Nothing runs here: ``kubectl apply -f`` the files in order.

The model's ``storageUri`` is where the store keeps the version's files: on a team server
with an object store (``s3://``, ``gs://``) the cluster reads it directly; a local path is
written as it is, and the README says how to move it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..display import Shown
from ..errors import DeployError

#: KServe's group and version of the InferenceService resource.
API_VERSION = "serving.kserve.io/v1beta1"
#: The serving runtime KServe ships for MLflow's format.
RUNTIME = "kserve-mlserver"


def service_name(model: str) -> str:
    """A Kubernetes name for a model: lower case letters, digits and ``-``, starting with a
    letter, at most 45 characters (KServe adds suffixes of its own to the 63 allowed).

    Example:
        >>> service_name("Iris_Classifier.v2")
        'iris-classifier-v2'
    """
    name = re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = "model-" + name
    return name[:45].rstrip("-")


def parse_steps(steps: str | list[int] | None) -> list[int]:
    """The canary's traffic shares, rising, each 1 to 100 (``"10,50,100"``).

    Raises:
        DeployError: a share that is no whole percentage, or shares that do not rise.

    Example:
        >>> parse_steps("10, 50,100")
        [10, 50, 100]
    """
    if steps is None or steps == "":
        return []
    try:
        shares = [int(s) for s in steps.split(",")] if isinstance(steps, str) else [int(s) for s in steps]
    except ValueError:
        raise DeployError(f"--steps takes percentages such as 10,50,100, not {steps!r}") from None
    if any(not 1 <= s <= 100 for s in shares) or shares != sorted(set(shares)):
        raise DeployError(f"--steps takes rising percentages from 1 to 100, such as 10,50,100, not {steps!r}")
    return shares


def manifest(name: str, storage_uri: str, *, canary: int | None = None, namespace: str | None = None,
             labels: dict[str, str] | None = None) -> dict[str, Any]:
    """An ``InferenceService`` serving the MLflow model at ``storage_uri`` through MLServer.

    Args:
        name: the service's name (see :func:`service_name`).
        storage_uri: where the MLflow model directory is (``s3://...``, ``gs://...``, ``pvc://...``).
        canary: the share of traffic for this revision while a rollout runs; ``None``: all.
        namespace: the Kubernetes namespace (default: the one ``kubectl`` uses).
        labels: labels of the resource.

    Returns:
        The manifest, a plain dict for ``yaml.safe_dump``.

    Example:
        >>> manifest("iris", "s3://models/iris", canary=10)["spec"]["predictor"]["canaryTrafficPercent"]
        10
    """
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    predictor: dict[str, Any] = {}
    if canary is not None and canary < 100:
        predictor["canaryTrafficPercent"] = canary
    predictor["model"] = {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2",
                          "runtime": RUNTIME, "storageUri": storage_uri}
    return {"apiVersion": API_VERSION, "kind": "InferenceService", "metadata": metadata,
            "spec": {"predictor": predictor}}


@dataclass
class Manifests(Shown):
    """The manifests :func:`kserve` wrote; its text says how to apply them.

    Example:
        >>> print(Manifests("iris/3", "s3://m/iris", [Path("k8s/iris.yaml")]))
        wrote k8s/iris.yaml for iris/3 (storageUri s3://m/iris)
          kubectl apply -f k8s/iris.yaml
    """

    ref: str
    storage_uri: str
    files: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        files = ", ".join(str(f) for f in self.files)
        lines = [f"wrote {files} for {self.ref} (storageUri {self.storage_uri})"]
        rollout = [f for f in self.files if not f.stem.endswith("-rollback")]
        if len(rollout) > 1:
            lines.append("  a canary: apply each in turn while its checks hold (the last promotes):")
        lines += [f"  kubectl apply -f {f}" for f in rollout]
        if len(rollout) < len(self.files):
            lines.append(f"  to roll back: kubectl apply -f {self.files[-1]}")
        if local_storage(self.storage_uri):
            lines.append("  the model's files are on this machine: copy that folder to storage the cluster "
                         "reads (s3://, gs://, a PVC) and set storageUri, or use a store whose artifacts "
                         "live there")
        return "\n".join(lines)


def kserve(ref: str, directory: str | os.PathLike[str], *, steps: str | list[int] | None = None,
           namespace: str | None = None) -> Manifests:
    """Write KServe ``InferenceService`` manifests serving a version on a cluster.

    Args:
        ref: the version (``iris/3``, ``iris@production``).
        directory: the folder to write (made if missing).
        steps: a canary's traffic shares (``"10,50,100"``): one manifest per step and one that
            rolls back; none: one manifest that serves the version alone.
        namespace: the Kubernetes namespace to name in the manifests.

    Returns:
        The files written, in the order to apply them (the rollback last), and the model's
        storage URI.

    Raises:
        DeployError: bad steps, or the store does not say where the version's files are.

    Example:
        >>> nbmodel.serving.kserve("iris/3", "k8s", steps="10,50,100")  # doctest: +SKIP
        wrote k8s/iris-10.yaml, k8s/iris-50.yaml, ... for iris/3 (storageUri s3://...)
    """
    import yaml

    from ..store import get_store
    from ..versions import resolve

    shares = parse_steps(steps)
    v = resolve(ref)
    try:
        uri = get_store().gateway.version_download_uri(v.name, v.version)
    except Exception as exc:  # noqa: BLE001 - said in one line
        raise DeployError(f"the store does not say where the files of {v.ref} are: {exc}") from None
    name = service_name(v.name)
    labels = {"app.kubernetes.io/managed-by": "nbmodel", "nbmodel/model": name,
              "nbmodel/version": str(v.version)}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    plan: list[tuple[str, int | None]] = [(f"{name}.yaml", None)]
    if shares:
        plan = [(f"{name}-{s}.yaml", s) for s in shares]
        if shares[-1] != 100:
            plan.append((f"{name}-100.yaml", 100))
        plan.append((f"{name}-rollback.yaml", 0))
    written = []
    for filename, canary in plan:
        doc = manifest(name, uri, canary=canary, namespace=namespace, labels=labels)
        path = out / filename
        path.write_text(f"# {v.ref}: kubectl apply -f {filename}\n"
                        + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        written.append(path)
    return Manifests(v.ref, uri, written)


def local_storage(uri: str) -> bool:
    """Whether a storage URI is a path on this machine, which a cluster cannot read as it is.

    Example:
        >>> local_storage("file:///tmp/mlruns/1/x"), local_storage("s3://bucket/x")
        (True, False)
    """
    return uri.startswith(("file:", "/")) or "://" not in uri and ":" not in uri.split("/", 1)[0]
