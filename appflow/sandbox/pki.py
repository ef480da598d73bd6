"""Certificates and keys for one sandbox cluster.

A sandbox cluster is a real Kubernetes control plane, so it gets what a real one
has: a cluster CA, a serving certificate for the API server on 127.0.0.1, an
admin client certificate in the system:masters group (what kubeconfigs of
kubeadm and k3s carry), and a key pair that signs service-account tokens.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class ClusterPki:
    """Paths of the PEM files of one sandbox cluster."""

    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.folder / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.folder / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.folder / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.folder / "admin.key"

    @property
    def sa_key(self) -> Path:
        return self.folder / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.folder / "sa.pub"

    def complete(self) -> bool:
        files = [self.ca_cert, self.ca_key, self.serving_cert, self.serving_key]
        files += [self.admin_cert, self.admin_key, self.sa_key, self.sa_pub]
        return all(f.is_file() for f in files)


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o600 if secret else 0o644)


def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def issue_certificate(
    *,
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool,
    usages: list[x509.ObjectIdentifier],
    sans: list[x509.GeneralName],
    validity: dt.timedelta = _VALIDITY,
) -> x509.Certificate:
    """A certificate for KEY's public key signed by ISSUER_KEY (the hub's agent API uses it
    too, for its own CA and serving certificate)."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def create_pki(folder: Path, *, cluster: str) -> ClusterPki:
    """Create every certificate and key of a cluster in FOLDER (kept if complete)."""
    pki = ClusterPki(folder)
    if pki.complete():
        return pki
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"appflow-sandbox-{cluster}-ca")])
    ca_cert = issue_certificate(
        subject=ca_name, key=ca_key, issuer=ca_name, issuer_key=ca_key, ca=True, usages=[], sans=[]
    )

    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving_cert = issue_certificate(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        key=serving_key,
        issuer=ca_name,
        issuer_key=ca_key,
        ca=False,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        sans=[
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
            x509.IPAddress(ipaddress.IPv4Address("10.96.0.1")),
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
        ],
    )

    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin_cert = issue_certificate(
        subject=x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, "appflow-sandbox-admin"),
            ]
        ),
        key=admin_key,
        issuer=ca_name,
        issuer_key=ca_key,
        ca=False,
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
        sans=[],
    )

    # Service-account tokens are signed with RSA, the algorithm every
    # Kubernetes version accepts for --service-account-signing-key-file.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = serialization.Encoding.PEM
    _write(pki.ca_cert, ca_cert.public_bytes(pem), secret=False)
    _write(pki.ca_key, key_pem(ca_key), secret=True)
    _write(pki.serving_cert, serving_cert.public_bytes(pem), secret=False)
    _write(pki.serving_key, key_pem(serving_key), secret=True)
    _write(pki.admin_cert, admin_cert.public_bytes(pem), secret=False)
    _write(pki.admin_key, key_pem(admin_key), secret=True)
    _write(pki.sa_key, key_pem(sa_key), secret=True)
    _write(
        pki.sa_pub,
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
        secret=False,
    )
    return pki
