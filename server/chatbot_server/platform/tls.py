"""TLS on the gRPC port: the certificate and key come from files and are read again when
the files change, so certificates rotate without a restart; with a client CA, every
client must present a certificate that chains to it (mutual TLS).

gRPC asks for the configuration at each new connection's handshake; the files are only
looked at (one stat each) then, and read when one changed. A rotated pair that does not
load (a key that does not match its certificate, a file half written) is logged and the
last good pair kept.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from pathlib import Path

import grpc
import structlog

from chatbot_server.config import TlsSettings

log = structlog.get_logger(__name__)


class TlsError(RuntimeError):
    """The configured certificate, key or client CA cannot be used."""


class ServerCertificates:
    def __init__(self, settings: TlsSettings) -> None:
        assert settings.cert_file is not None and settings.key_file is not None
        self._cert = Path(settings.cert_file)
        self._key = Path(settings.key_file)
        self._client_ca = Path(settings.client_ca_file) if settings.client_ca_file else None
        self._stamp = self._files_stamp()
        self._initial = self._configuration()

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            self._fetch,
            require_client_authentication=self._client_ca is not None,
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration when a file changed since the last look; None keeps it."""
        try:
            stamp = self._files_stamp()
        except TlsError as error:
            log.warning("tls.reload_failed", error=str(error))
            return None
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            configuration = self._configuration()
        except TlsError as error:
            log.warning("tls.reload_failed", error=str(error))
            return None
        log.info("tls.reloaded", cert_file=str(self._cert))
        return configuration

    def _paths(self) -> list[Path]:
        return [self._cert, self._key, *([self._client_ca] if self._client_ca else [])]

    def _files_stamp(self) -> tuple[tuple[int, int, int], ...]:
        try:
            return tuple(
                (found.st_ino, found.st_mtime_ns, found.st_size)
                for found in map(os.stat, self._paths())
            )
        except OSError as error:
            raise TlsError(f"{error.filename}: {error.strerror}") from None

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        """The files' pair (and client CA), checked as OpenSSL loads them."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self._cert, self._key)
        except (OSError, ssl.SSLError) as error:
            raise TlsError(
                f"TLS_CERT_FILE {self._cert} with TLS_KEY_FILE {self._key} cannot be used "
                f"({error}): both must be PEM, and the key must be the certificate's"
            ) from None
        if self._client_ca is not None:
            try:
                context.load_verify_locations(self._client_ca)
            except (OSError, ssl.SSLError) as error:
                raise TlsError(
                    f"TLS_CLIENT_CA_FILE {self._client_ca} cannot be used ({error}): it must "
                    "hold PEM certificates"
                ) from None
        try:
            key, cert = self._key.read_bytes(), self._cert.read_bytes()
            client_ca = self._client_ca.read_bytes() if self._client_ca else None
        except OSError as error:
            raise TlsError(f"{error.filename}: {error.strerror}") from None
        return grpc.ssl_server_certificate_configuration([(key, cert)], client_ca)


def certificate_subject(context: grpc.aio.ServicerContext) -> str | None:
    """The subject of the client's certificate (RFC 2253), when it presented one."""
    subjects = context.auth_context().get("x509_subject")
    return subjects[0].decode() if subjects else None


def loopback(address: str) -> bool:
    """Whether host:port listens on loopback only."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
