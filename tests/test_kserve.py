"""``%model_deploy REF --kserve DIR``: KServe manifests that serve the same MLflow model
directory on a cluster. No cluster runs here: the manifests' structure and model URI are
checked, and that the URI holds the very model MLflow loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_one_manifest_serves_the_version_through_mlserver(shell: Any, commit_iris: Any,
                                                          tmp_path: Path) -> None:
    import mlflow

    commit_iris(C=1.0)
    v2 = commit_iris(C=0.1)
    out = shell.run(f"%model_deploy iris/1 --kserve {tmp_path / 'k8s'}")
    assert out.files == [tmp_path / "k8s" / "iris.yaml"]
    doc = load(out.files[0])
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    assert doc["metadata"]["name"] == "iris" and doc["metadata"]["labels"]["nbmodel/version"] == "1"
    predictor = doc["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "mlflow"} and model["protocolVersion"] == "v2"
    assert model["runtime"] == "kserve-mlserver"
    # the version's own files, not another version's: the same directory MLflow loads
    client = mlflow.MlflowClient()
    assert model["storageUri"] == client.get_model_version_download_uri("iris", "1")
    assert model["storageUri"] != client.get_model_version_download_uri("iris", str(v2.version))
    local = model["storageUri"].removeprefix("file://")
    assert (Path(local) / "MLmodel").is_file()
    assert "kubectl apply -f" in str(out) and "copy that folder" in str(out)
    from nbmodel.serving import deployments

    assert not deployments(), "--kserve serves nothing here"
    assert client.get_registered_model("iris").aliases == {}, "nor moves an alias"


def test_canary_steps_one_manifest_each_the_last_promotes(shell: Any, commit_iris: Any,
                                                          tmp_path: Path) -> None:
    commit_iris(C=1.0)
    commit_iris(C=0.1)
    shell.run("%model_alias iris/1 production")
    out = shell.run(f"%model_deploy iris@production --kserve {tmp_path} --steps 10,25,50")
    assert out.ref == "iris/1"
    names = [f.name for f in out.files]
    assert names == ["iris-10.yaml", "iris-25.yaml", "iris-50.yaml", "iris-100.yaml", "iris-rollback.yaml"]
    shares = [load(f)["spec"]["predictor"].get("canaryTrafficPercent") for f in out.files]
    assert shares == [10, 25, 50, None, 0]
    uris = {load(f)["spec"]["predictor"]["model"]["storageUri"] for f in out.files}
    assert uris == {out.storage_uri}
    assert "to roll back" in str(out)


def test_steps_are_checked_and_need_kserve(shell: Any, commit_iris: Any, tmp_path: Path) -> None:
    commit_iris(C=1.0)
    for bad in ("10,abc", "50,10", "0,100", "10,150"):
        err = shell.fails(f"%model_deploy iris/1 --kserve {tmp_path / 'k8s'} --steps {bad}")
        assert "--steps" in str(err)
    assert not (tmp_path / "k8s").exists(), "nothing written on bad steps"
    assert "--kserve" in str(shell.fails("%model_deploy iris/1 --steps 10,100"))


@pytest.mark.parametrize(("model", "name"), [("Iris_Classifier.v2", "iris-classifier-v2"),
                                             ("42", "model-42"), ("a" * 80, "a" * 45)])
def test_names_are_kubernetes_names(model: str, name: str) -> None:
    from nbmodel.serving._kserve import service_name

    assert service_name(model) == name
