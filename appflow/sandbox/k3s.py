"""What K3s adds to a bare control plane, so that sandbox clusters behave like EVE-k's base.

K3s ships two controllers that decide whether an app's Services and Ingresses become ready:

- ServiceLB (klipper-lb) serves every Service of type LoadBalancer that names no
  ``spec.loadBalancerClass``: it runs a pod on each node and writes the addresses of those
  nodes into ``status.loadBalancer.ingress`` (one ``{ip: ...}`` per node: the ExternalIPs
  when any node has one, else the InternalIPs, sorted).
- Traefik owns the IngressClass ``traefik``, marked as the cluster's default, and publishes
  the addresses of its own LoadBalancer Service (given by ServiceLB, so the same node IPs)
  into the status of every Ingress it serves: those of class ``traefik`` and those naming
  no class (Traefik's default when K3s installs it).

A sandbox cluster has no containers, so kwok plays these two controllers as it plays the
kubelets: the Stages below match such Services and Ingresses while they have no address and
patch their status with the node IPs. The IPs are written into the Stages when kwok starts
(a kwok Stage sees only the object it patches), which is exact because a sandbox cluster's
nodes are fixed when it starts. Differences from a real K3s, on purpose: no host-port
conflicts (ServiceLB leaves a second Service on the same port pending), and
``externalTrafficPolicy: Local`` still lists every node.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

INGRESS_CLASS = "traefik"
INGRESS_CONTROLLER = "traefik.io/ingress-controller"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
# Marks the objects the sandbox itself creates, so that it removes only its own.
MANAGED_BY = {"app.kubernetes.io/managed-by": "appflow-sandbox"}

INGRESS_CLASSES_PATH = "/apis/networking.k8s.io/v1/ingressclasses"


def node_addresses(nodes: Iterable[dict[str, Any]]) -> list[str]:
    """The addresses ServiceLB publishes for NODES: ExternalIPs if any node has one, else InternalIPs."""
    external: set[str] = set()
    internal: set[str] = set()
    for node in nodes:
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") == "ExternalIP":
                external.add(str(address.get("address", "")))
            elif address.get("type") == "InternalIP":
                internal.add(str(address.get("address", "")))
    return sorted((external or internal) - {""})


def ingress_class() -> dict[str, Any]:
    """The default IngressClass K3s's Traefik installs."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {
            "name": INGRESS_CLASS,
            "labels": dict(MANAGED_BY),
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
        },
        "spec": {"controller": INGRESS_CONTROLLER},
    }


def is_sandbox_ingress_class(live: dict[str, Any]) -> bool:
    labels = (live.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in MANAGED_BY.items())


def _status_patch(addresses: Sequence[str]) -> str:
    # One line (flow style), so that the stages file reads well.
    status = {"loadBalancer": {"ingress": [{"ip": ip} for ip in addresses]}}
    return yaml.safe_dump(status, default_flow_style=True).strip()


def _stage(name: str, kind: str, api_group: str, select: list[dict[str, Any]], patch: str) -> Any:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": api_group, "kind": kind},
            "selector": {
                "matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    # Only while no address is set: once patched, the stage no longer
                    # matches, so kwok does not write the status again and again.
                    {"key": ".status.loadBalancer.ingress", "operator": "DoesNotExist"},
                    *select,
                ]
            },
            "steps": [{"patch": {"subresource": "status", "root": "status", "template": patch}}],
        },
    }


def stages(addresses: Sequence[str]) -> list[dict[str, Any]]:
    """kwok Stages that give LoadBalancer Services and Traefik's Ingresses ADDRESSES."""
    patch = _status_patch(addresses)
    # Traefik serves an Ingress of its class, or one that names no class at all (neither
    # spec.ingressClassName nor the older annotation, or the annotation empty).
    traefik_serves = (
        f"has(self.spec.ingressClassName) ? self.spec.ingressClassName == '{INGRESS_CLASS}' : "
        f"!has(self.metadata.annotations) || "
        f"!('{LEGACY_CLASS_ANNOTATION}' in self.metadata.annotations) || "
        f"self.metadata.annotations['{LEGACY_CLASS_ANNOTATION}'] in ['', '{INGRESS_CLASS}']"
    )
    return [
        _stage(
            "servicelb",
            "Service",
            "v1",
            [
                {"key": ".spec.type", "operator": "In", "values": ["LoadBalancer"]},
                # A Service with a loadBalancerClass asks for another controller.
                {"key": ".spec.loadBalancerClass", "operator": "DoesNotExist"},
            ],
            patch,
        ),
        _stage(
            "traefik-ingress",
            "Ingress",
            "networking.k8s.io/v1",
            [{"cel": {"expression": traefik_serves}}],
            patch,
        ),
    ]


def write_stages(path: Path, addresses: Sequence[str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump_all(stages(addresses), sort_keys=False))
    tmp.replace(path)
