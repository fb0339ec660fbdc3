"""Collections delivery over TLS against a real local SMTP server (aiosmtpd): STARTTLS and implicit
TLS with a certificate from a private CA made in the test, verified by the client through
AR_SMTP_CA_FILE; an untrusted certificate is refused with a clear error and nothing is logged as
sent; the SMTP password never appears in output, the log table or errors."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from ar_pipeline.lib.collections.send import SmtpTransport, Transports, send_queue
from ar_pipeline.lib.collections.store import read_log
from tests.conftest import INGEST_CONFIGS
from tests.test_collections_send import make_warehouse, queue_for

USER, PASSWORD = "ar-robot", "pw-Zq8!never-print-me"


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    server_cert: Path
    server_key: Path
    rogue_cert: Path  # same names, signed by a CA the client does not trust
    rogue_key: Path


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject_cn: str, key, issuer_cn: str, issuer_key, *, ca: bool):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert=None, key=None) -> Path:
    from cryptography.hazmat.primitives import serialization

    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, rogue_ca_key, server_key, rogue_key = _key(), _key(), _key(), _key()
    ca = _cert("AR test private CA", ca_key, "AR test private CA", ca_key, ca=True)
    server = _cert("localhost", server_key, "AR test private CA", ca_key, ca=False)
    rogue = _cert("localhost", rogue_key, "Somebody else's CA", rogue_ca_key, ca=False)
    return Pki(ca_file=_write(folder / "ca.pem", cert=ca), server_cert=_write(folder / "server.pem", cert=server),
               server_key=_write(folder / "server.key", key=server_key),
               rogue_cert=_write(folder / "rogue.pem", cert=rogue),
               rogue_key=_write(folder / "rogue.key", key=rogue_key))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """aiosmtpd with TLS (STARTTLS required, or implicit) and AUTH that checks USER / PASSWORD."""

    def __init__(self, mode: str, cert: Path, key: Path) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Message
        from aiosmtpd.smtp import AuthResult

        received, logins = [], []
        self.received, self.logins = received, logins

        class Collect(Message):
            def handle_message(self, message) -> None:
                received.append(message)

        def authenticator(server, session, envelope, mechanism, auth_data):
            logins.append(auth_data.login.decode())
            ok = auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 235 / 535

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.port = _free_port()
        common = {"hostname": "127.0.0.1", "port": self.port, "authenticator": authenticator}
        if mode == "starttls":  # AUTH is offered only after STARTTLS
            self.controller = Controller(Collect(), tls_context=context, require_starttls=True,
                                         auth_require_tls=True, **common)
        else:  # the whole connection is TLS (aiosmtpd's auth_require_tls only knows STARTTLS)
            self.controller = Controller(Collect(), ssl_context=context, auth_require_tls=False, **common)

    def __enter__(self) -> Server:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


def transport(mode: str, port: int, ca_file: Path | None, password: str = PASSWORD) -> SmtpTransport:
    return SmtpTransport(host="127.0.0.1", port=port, sender="ar@example.test", user=USER, password=password,
                         security=mode, ca_file=str(ca_file) if ca_file else None, timeout=10)  # type: ignore[arg-type]


def everything_written(conn: duckdb.DuckDBPyConnection, report) -> str:
    log = read_log(conn)
    return "\n".join([*report.lines, log.write_csv(), repr(report)])


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_delivery_verifies_the_server_against_the_private_ca(pki: Pki, mode: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    queue = queue_for([("c1", "Acme Ltd", "ap@acme.test")])
    with Server(mode, pki.server_cert, pki.server_key) as server:
        conn = duckdb.connect()
        report = send_queue(conn, queue, Transports(email=transport(mode, server.port, pki.ca_file)), dry_run=False)
    assert report.failed == [] and len(report.delivered) == 1, report.lines
    assert len(server.received) == 1 and server.received[0]["To"] == "ap@acme.test"
    assert server.logins == [USER]  # logged in, over TLS (the server refuses AUTH in clear text)
    assert read_log(conn)["status"].to_list() == ["queued", "sending", "sent"]
    assert PASSWORD not in everything_written(conn, report) and PASSWORD not in caplog.text


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
@pytest.mark.parametrize("trust", ["private_ca", "system_cas"])
def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(pki: Pki, mode: str, trust: str) -> None:
    """The rogue server's certificate names the right host but is signed by another CA; with the
    system's CAs even our private CA's certificate is untrusted."""
    queue = queue_for([("c1", "Acme Ltd", "ap@acme.test")])
    cert, key = (pki.rogue_cert, pki.rogue_key) if trust == "private_ca" else (pki.server_cert, pki.server_key)
    with Server(mode, cert, key) as server:
        conn = duckdb.connect()
        smtp = transport(mode, server.port, pki.ca_file if trust == "private_ca" else None)
        report = send_queue(conn, queue, Transports(email=smtp), dry_run=False)
    assert server.received == [] and server.logins == []  # no password was offered to it either
    assert report.delivered == [] and len(report.failed) == 1
    log = read_log(conn)
    assert log["status"].to_list() == ["queued", "sending", "failed"]
    outcome = log["outcome"][-1]
    assert "TLS certificate is not trusted" in outcome and "Nothing was sent" in outcome
    assert ("AR_SMTP_CA_FILE (" in outcome) == (trust == "private_ca") and "AR_SMTP_CA_FILE" in outcome
    assert PASSWORD not in everything_written(conn, report)


def test_a_wrong_password_fails_without_showing_it(pki: Pki) -> None:
    queue = queue_for([("c1", "Acme Ltd", "ap@acme.test")])
    with Server("starttls", pki.server_cert, pki.server_key) as server:
        conn = duckdb.connect()
        report = send_queue(conn, queue, Transports(email=transport("starttls", server.port, pki.ca_file,
                                                                    password="wrong-" + PASSWORD)), dry_run=False)
    assert server.received == [] and len(report.failed) == 1
    outcome = read_log(conn)["outcome"][-1]
    assert f"login as '{USER}' refused" in outcome
    assert PASSWORD not in everything_written(conn, report)


def test_cli_sends_over_starttls_with_the_ca_file_and_never_prints_the_password(
        pki: Pki, tmp_path: Path, monkeypatch, caplog) -> None:
    from ar_pipeline.cli import main

    caplog.set_level(logging.DEBUG)
    db = tmp_path / "ar.duckdb"
    make_warehouse(db)
    with Server("starttls", pki.server_cert, pki.server_key) as server:
        for key, value in {"AR_DUCKDB_PATH": str(db), "AR_INGEST_CONFIG_DIR": str(INGEST_CONFIGS),
                           "AR_SMTP_HOST": "127.0.0.1", "AR_SMTP_PORT": str(server.port), "AR_SMTP_USER": USER,
                           "AR_SMTP_PASSWORD": PASSWORD, "AR_SMTP_FROM": "ar@example.test",
                           "AR_SMTP_SECURITY": "starttls", "AR_SMTP_CA_FILE": str(pki.ca_file)}.items():
            monkeypatch.setenv(key, value)
        runner = CliRunner()
        outputs = [runner.invoke(main, ["reminders", *args]) for args in
                   (["build"], ["send"], ["send", "--send"], ["log"])]
    assert all(r.exit_code == 0 for r in outputs), [r.output for r in outputs]
    assert "1 sent" in outputs[2].output and len(server.received) == 1
    with duckdb.connect(str(db)) as conn:
        table = conn.sql("SELECT * FROM analytics.reminder_log").pl()
    assert PASSWORD not in "".join(r.output for r in outputs) + table.write_csv() + caplog.text
    assert table.filter(pl.col("status") == "sent").height == 1
    missing = runner.invoke(main, ["reminders", "send"], env={"AR_SMTP_CA_FILE": str(tmp_path / "nope.pem")})
    assert missing.exit_code != 0 and "AR_SMTP_CA_FILE" in missing.output and "is not a file" in missing.output
