"""The Kubernetes manifests, checked offline against the Kubernetes schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

KUSTOMIZATION = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"


def resources() -> list[dict[str, Any]]:
    listed = yaml.safe_load((KUSTOMIZATION / "kustomization.yaml").read_text())["resources"]
    found = []
    for name in listed:
        found.extend(yaml.safe_load_all((KUSTOMIZATION / name).read_text()))
    return found


@pytest.mark.parametrize(
    "resource", resources(), ids=lambda r: f"{r['kind']}/{r['metadata']['name']}"
)
def test_each_resource_is_valid_kubernetes(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_pieces_fit_together() -> None:
    by_name = {(r["kind"], r["metadata"]["name"]): r for r in resources()}
    server = by_name[("Deployment", "chatbot-server")]["spec"]["template"]["spec"]
    container = server["containers"][0]
    # Native gRPC probes: readiness on the whole server, liveness on "liveness".
    assert container["readinessProbe"]["grpc"] == {"port": 50051}
    assert container["livenessProbe"]["grpc"]["service"] == "liveness"
    edge = by_name[("Deployment", "chatbot-edge")]["spec"]["template"]["spec"]["containers"][0]
    upstream = edge["command"][edge["command"].index("--upstream") + 1]
    service = by_name[("Service", upstream.split(":")[0])]
    assert service["spec"]["clusterIP"] == "None"
    settings = by_name[("ConfigMap", "chatbot-settings")]["data"]
    assert settings["INGESTION_WORKERS"] == "0"
    grace = int(settings["SHUTDOWN_DRAIN_SECONDS"]) + int(settings["SHUTDOWN_GRACE_SECONDS"])
    assert server["terminationGracePeriodSeconds"] > grace
    hpa = by_name[("HorizontalPodAutoscaler", "chatbot-server")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "chatbot-server"
