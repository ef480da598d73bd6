"""TLS of the hub's agent API and where agents find it (docs/hub.md §11).

The agent API serves HTTPS with a certificate from the Secret ``appflow-agent-api-tls`` in the
hub's system namespace: given by the operator (cert-manager, a corporate CA), or made here on
first start (a CA of its own and a serving certificate for the advertised host), so that every
replica serves the same one. The ConfigMap ``appflow-agent-api`` publishes the URL agents use
and the CA's pin; ``appflow cluster add`` and ``appflow cluster token create`` print both in
the agent's install command, and the agent refuses a hub whose CA does not match the pin
before it sends its token.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appflow.errors import ConfigError, NotFoundError, Where
from appflow.kube.client import KubeCluster
from appflow.model.hub import MANAGED_BY, SYSTEM_NAMESPACE
from appflow.model.registration import ca_pin
from appflow.sandbox.pki import issue_certificate, key_pem

TLS_SECRET = "appflow-agent-api-tls"
ENDPOINT_CONFIGMAP = "appflow-agent-api"
_CA_VALIDITY = dt.timedelta(days=3650)
_SERVING_VALIDITY = dt.timedelta(days=825)


@dataclass(frozen=True, kw_only=True)
class TlsMaterial:
    ca: bytes
    cert: bytes
    key: bytes = b""

    @property
    def pin(self) -> str:
        return ca_pin(self.ca)


@dataclass(frozen=True, kw_only=True)
class AgentEndpoint:
    """Where agents reach the hub: the agent API's URL and the pin of its CA."""

    url: str
    ca: bytes
    pin: str


def _sans(hosts: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            out.append(x509.DNSName(host))
    return out


def _covers(cert_pem: bytes, hosts: list[str]) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    if cert.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(days=30):
        return False
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(v) for v in names.get_values_for_type(x509.IPAddress)}
    have |= set(names.get_values_for_type(x509.DNSName))
    return all(h in have for h in hosts)


def issue(
    hosts: list[str], *, ca_key_pem: bytes | None = None, ca_pem: bytes | None = None
) -> tuple[TlsMaterial, bytes]:
    """A serving certificate for HOSTS, under the given CA or a new one; and the CA's key."""
    if ca_key_pem is not None and ca_pem is not None:
        loaded = serialization.load_pem_private_key(ca_key_pem, password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ConfigError("the agent API's CA key is not an EC key")
        ca_key = loaded
        ca_cert = x509.load_pem_x509_certificate(ca_pem)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "appflow-agent-api-ca")])
        ca_cert = issue_certificate(
            subject=name,
            key=ca_key,
            issuer=name,
            issuer_key=ca_key,
            ca=True,
            usages=[],
            sans=[],
            validity=_CA_VALIDITY,
        )
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = issue_certificate(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "appflow-agent-api")]),
        key=serving_key,
        issuer=ca_cert.subject,
        issuer_key=ca_key,
        ca=False,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        sans=_sans(hosts),
        validity=_SERVING_VALIDITY,
    )
    pem = serialization.Encoding.PEM
    material = TlsMaterial(
        ca=ca_cert.public_bytes(pem), cert=serving.public_bytes(pem), key=key_pem(serving_key)
    )
    return material, key_pem(ca_key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(data: dict[str, str], key: str) -> bytes:
    value = data.get(key)
    return base64.b64decode(value) if value else b""


async def ensure_tls(
    kube: KubeCluster, *, hosts: list[str], namespace: str = SYSTEM_NAMESPACE
) -> TlsMaterial:
    """The agent API's TLS material from its Secret, made (or re-issued for new HOSTS under the
    same CA, so agents' pins stay valid) when needed."""
    secret = await kube.get("v1", "Secret", TLS_SECRET, namespace)
    data = (secret or {}).get("data") or {}
    ca, cert, key, ca_key = (_unb64(data, k) for k in ("ca.crt", "tls.crt", "tls.key", "ca.key"))
    if ca and cert and key and _covers(cert, hosts):
        return TlsMaterial(ca=ca, cert=cert, key=key)
    if ca and not ca_key:
        raise ConfigError(
            f"Secret {namespace}/{TLS_SECRET} holds a certificate that does not cover"
            f" {', '.join(hosts)} and no CA key to issue one",
            where=Where(object=f"Secret/{namespace}/{TLS_SECRET}"),
            hint="put a certificate for these names in the Secret, or remove it to let appflow"
            " make its own",
        )
    material, new_ca_key = issue(hosts, ca_key_pem=ca_key or None, ca_pem=ca or None)
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": TLS_SECRET, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "data": {
            "ca.crt": _b64(material.ca),
            "ca.key": _b64(new_ca_key),
            "tls.crt": _b64(material.cert),
            "tls.key": _b64(material.key),
        },
    }
    await kube.apply(manifest, force=True)
    return material


async def publish_endpoint(
    kube: KubeCluster, *, url: str, ca: bytes, namespace: str = SYSTEM_NAMESPACE
) -> AgentEndpoint:
    """Say where agents reach the hub (read by the commands that print install commands)."""
    endpoint = AgentEndpoint(url=url.rstrip("/"), ca=ca, pin=ca_pin(ca))
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": ENDPOINT_CONFIGMAP,
                "namespace": namespace,
                "labels": dict(MANAGED_BY),
            },
            "data": {"url": endpoint.url, "caPin": endpoint.pin, "ca.crt": ca.decode()},
        },
        force=True,
    )
    return endpoint


async def read_endpoint(kube: KubeCluster, *, namespace: str = SYSTEM_NAMESPACE) -> AgentEndpoint:
    found = await kube.get("v1", "ConfigMap", ENDPOINT_CONFIGMAP, namespace)
    data = (found or {}).get("data") or {}
    if not data.get("url") or not data.get("ca.crt"):
        raise NotFoundError(
            "the hub's agent API has not published its address yet",
            where=Where(cluster=kube.name, object=f"ConfigMap/{namespace}/{ENDPOINT_CONFIGMAP}"),
            hint="start it (appflow hub agent-api, or the hub chart's controller), or pass"
            " --hub-url and --hub-ca-pin yourself",
        )
    ca = str(data["ca.crt"]).encode()
    return AgentEndpoint(url=str(data["url"]), ca=ca, pin=ca_pin(ca))


def host_of(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme != "https" or not parsed.hostname:
        raise ConfigError(
            f"{url!r}: the agent API's URL must be https://HOST[:PORT]",
            where=Where(field="advertise-url"),
        )
    return parsed.hostname
