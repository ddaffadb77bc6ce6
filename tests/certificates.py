"""Certificates the TLS tests make for themselves: a CA, server certificates for loopback and
client certificates, as PEM files."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Authority:
    """A CA that signs certificates into `folder`."""

    folder: Path
    name: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def cert_file(self) -> Path:
        return self.folder / f"{self.name}.pem"

    @classmethod
    def create(cls, folder: Path, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .sign(key, hashes.SHA256())
        )
        authority = cls(folder, name, key, certificate)
        authority.cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return authority

    def server(self, name: str, valid_days: int = 30) -> Issued:
        """A certificate for a server on loopback (localhost, 127.0.0.1, ::1)."""
        names = x509.SubjectAlternativeName(
            [
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]
        )
        return self._issue(name, [x509.NameAttribute(NameOID.COMMON_NAME, "localhost")],
                           ExtendedKeyUsageOID.SERVER_AUTH, names, valid_days)  # fmt: skip

    def client(self, name: str, common_name: str, valid_days: int = 30) -> Issued:
        """A client certificate whose subject is `CN=<common_name>,O=Chatbot Tests`;
        negative `valid_days` makes one that expired that many days ago."""
        subject = [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Chatbot Tests"),
        ]
        return self._issue(name, subject, ExtendedKeyUsageOID.CLIENT_AUTH, None, valid_days)

    def _issue(
        self,
        name: str,
        subject: list[x509.NameAttribute],
        usage: x509.ObjectIdentifier,
        alternative_names: x509.SubjectAlternativeName | None,
        valid_days: int,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        if valid_days > 0:
            start, end = now - timedelta(hours=1), now + timedelta(days=valid_days)
        else:
            start, end = now - timedelta(days=60), now + timedelta(days=valid_days)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if alternative_names is not None:
            builder = builder.add_extension(alternative_names, critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        issued = Issued(self.folder / f"{name}.pem", self.folder / f"{name}.key")
        issued.cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        issued.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return issued
