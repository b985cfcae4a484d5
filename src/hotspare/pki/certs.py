"""Certificates built with `cryptography`, in memory: a site CA and the leaves it signs.

Every key is ECDSA P-256: etcd (Go's TLS stack as etcd configures it) and OpenSSL both accept it,
which Ed25519 certificates are not everywhere. What a leaf may do is fixed by its kind, so a
certificate made for an operator's CLI cannot serve as an etcd member, and the kinds are named
in one table instead of being chosen per call.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLOCK_SKEW = dt.timedelta(minutes=5)
"""Certificates start this long before now, so a machine whose clock is a little behind accepts
a certificate issued a moment ago on another."""


class CertKind(StrEnum):
    """What a certificate is for; also the folder it is kept in (`hotspare.pki.store`)."""

    ETCD = "etcd"  # an etcd member: serves clients and peers, and is a client of its peers
    NODE = "nodes"  # a hotspare node: serves its HTTPS API, is a client of etcd and other nodes
    CLIENT = "clients"  # an operator or tool: client of etcd and of nodes only


_USAGES: dict[CertKind, tuple[x509.ObjectIdentifier, ...]] = {
    CertKind.ETCD: (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    CertKind.NODE: (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    CertKind.CLIENT: (ExtendedKeyUsageOID.CLIENT_AUTH,),
}


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key, both still in memory."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def subject_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """Each host as the SAN entry a TLS client matches it against: an IP address or a DNS name."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        text = host.strip().strip("[]")
        if not text:
            raise ValueError("an empty host name cannot go into a certificate")
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(text)))
        except ValueError:
            names.append(x509.DNSName(text))
    return names


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca,
                         content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False,
                         encipher_only=False, decipher_only=False)


def new_ca(name: str, days: float) -> Issued:
    """A self-signed CA that may sign leaves only (path length 0)."""
    if days <= 0:
        raise ValueError("validity days must be positive")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(ca: Issued, kind: CertKind, name: str, hosts: Sequence[str], days: float) -> Issued:
    """A leaf of `kind` whose subject CN is `name` (a node's or member's name, which is how the
    other side tells who connected) and whose SANs are `hosts`. A server kind needs hosts: a
    client verifying it matches the address it dialled against them."""
    if days <= 0:
        raise ValueError("validity days must be positive")
    if not name.strip():
        raise ValueError("a certificate needs a name")
    if kind is not CertKind.CLIENT and not hosts:
        raise ValueError(f"a {kind.value} certificate needs at least one --host (the address "
                         "clients connect to)")
    if ca.cert.not_valid_after_utc <= dt.datetime.now(dt.UTC) + dt.timedelta(days=days):
        days = (ca.cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).total_seconds() / 86400
        if days <= 0:
            raise ValueError(f"the CA expired on {ca.cert.not_valid_after_utc:%Y-%m-%d}; make a "
                             "new CA (docs/site-config.md, certificate renewal)")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(_USAGES[kind])), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(subject_names(hosts)),
                                        critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def common_name(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def hosts_of(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n.value) for n in san]
