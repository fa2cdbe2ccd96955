"""k8s/: render base and overlays, validate against the Kubernetes 1.30 schemas.

``render`` implements the kustomize features the manifests use (``resources``,
strategic-merge ``patches`` by kind and name, ``images``), so no kustomize binary is
needed; keep the kustomizations to those features.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from fraudflow.config.settings import FIELDS, load_settings
from fraudflow.connectors.kafka import client_config

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "k8s"
TARGETS = {"base": K8S / "base", "dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
EXTRA_NAMES = {"FRAUDFLOW_CONFIG"}
Doc = dict[str, Any]


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for the fields we patch.

    Maps merge recursively; lists of maps with a ``name`` merge item by name (env,
    containers, volumes, volumeMounts); any other list is replaced.
    """
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    named = isinstance(base, list) and isinstance(patch, list)
    if named and all(isinstance(x, dict) and "name" in x for x in [*base, *patch]):
        out_list = [dict(x) for x in base]
        index = {x["name"]: i for i, x in enumerate(out_list)}
        for item in patch:
            if item["name"] in index:
                out_list[index[item["name"]]] = _merge(out_list[index[item["name"]]], item)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(patch)


def _containers(doc: Doc) -> list[Doc]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def render(directory: Path) -> list[Doc]:
    """The documents ``kubectl kustomize directory`` gives (for the features we use)."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(kust) <= {"apiVersion", "kind", "resources", "patches", "images"}, set(kust)
    docs: list[Doc] = []
    for res in kust.get("resources", []):
        path = directory / res
        if path.is_dir():
            docs += render(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for p in kust.get("patches", []):
        assert set(p) == {"path"}, p
        patch = yaml.safe_load((directory / p["path"]).read_text())
        key = (patch["kind"], patch["metadata"]["name"])
        hits = [i for i, d in enumerate(docs) if (d["kind"], d["metadata"]["name"]) == key]
        assert len(hits) == 1, f"patch {p['path']} matches {len(hits)} documents"
        docs[hits[0]] = _merge(docs[hits[0]], patch)
    for img in kust.get("images", []):
        for doc in docs:
            for c in _containers(doc):
                name, _, tag = c["image"].partition(":")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', tag)}".rstrip(":")
    return docs


def _statefulset(docs: list[Doc]) -> Doc:
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    return sts


def _env(sts: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_document_is_valid_kubernetes_1_30(target: str) -> None:
    docs = render(TARGETS[target])
    kinds = sorted(d["kind"] for d in docs)
    assert {"StatefulSet", "Service", "PodDisruptionBudget", "ConfigMap"} <= set(kinds)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)


@pytest.mark.parametrize(
    ("target", "replicas", "image"),
    [("base", 2, "fraudflow:0.1.0"), ("dev", 1, "fraudflow:dev"),
     ("prod", 4, "registry.example.com/fraudflow:0.1.0")],
)  # fmt: skip
def test_replicas_env_and_image(target: str, replicas: int, image: str) -> None:
    sts = _statefulset(render(TARGETS[target]))
    assert sts["spec"]["replicas"] == replicas
    env = _env(sts)
    assert env["CLUSTER_REPLICAS"]["value"] == str(replicas)  # entrypoint's address list
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]


def test_statefulset_security_storage_and_secrets() -> None:
    docs = render(TARGETS["base"])
    sts = _statefulset(docs)
    pod = sts["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    env = _env(sts)
    assert mounts[env["FRAUDFLOW_RECOVERY_DIR"]["value"]] == "recovery"
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["recovery"]
    assert mounts[env["FRAUDFLOW_RULES"]["value"]] == "rules"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    for name in ("FRAUDFLOW_POSTGRES_DSN", "FRAUDFLOW_REDIS_URL", "FRAUDFLOW_SASL_PASSWORD"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "fraudflow-secrets"
    assert env["FRAUDFLOW_METRICS_PORT"]["value"] == "9100"
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    headless = services[sts["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in headless["spec"]["ports"]] == [2101]
    assert (
        services["fraudflow-metrics"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    )


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rules_configmap_and_volume_items_match_the_bundled_rules() -> None:
    rc = _load("rules_configmap")
    rules_dir = ROOT / "fraudflow" / "rules" / "default"
    docs = render(TARGETS["base"])
    (cm,) = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "fraudflow-rules"
    ]
    assert cm == rc.configmap(rules_dir), "regenerate k8s/base/rules-configmap.yaml"
    pod = _statefulset(docs)["spec"]["template"]["spec"]
    (vol,) = [v for v in pod["volumes"] if v["name"] == "rules"]
    assert vol["configMap"]["items"] == rc.volume_items(rules_dir)


def test_every_fraudflow_variable_is_a_setting() -> None:
    known = {f"FRAUDFLOW_{name.upper()}" for name in FIELDS} | EXTRA_NAMES
    used: set[str] = set()
    for folder in (K8S, ROOT / "deploy"):
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix in {".yaml", ".yml", ".sh", ".py"}:
                used |= set(re.findall(r"FRAUDFLOW_[A-Z0-9_]+", path.read_text()))
    assert used, "no FRAUDFLOW_* names found"
    assert used <= known, sorted(used - known)


def test_prod_kafka_config_reaches_librdkafka_and_the_password_stays_hidden() -> None:
    cm = next(d for d in render(TARGETS["prod"]) if d["metadata"]["name"] == "fraudflow-config")
    env = {**cm["data"], "FRAUDFLOW_SASL_PASSWORD": "s3cr3t-pw"}
    settings = load_settings(environ=env)
    conf = client_config(settings.kafka)
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "fraudflow"
    assert conf["ssl.ca.location"] == "/etc/fraudflow/kafka-ca/ca.crt"
    assert conf["sasl.password"] == "s3cr3t-pw"
    assert conf["bootstrap.servers"].count(",") == 2
    assert "s3cr3t-pw" not in repr(settings)
    assert "s3cr3t-pw" not in str(settings)
