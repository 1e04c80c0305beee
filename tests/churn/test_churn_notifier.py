"""Alert channels against real local servers: SMTP (aiosmtpd, STARTTLS + AUTH) and HTTP."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from customer360.churn.notifier import (
    FileQueueNotifier,
    NotificationError,
    Notifier,
    SmtpNotifier,
    WebhookNotifier,
    build_alert,
)
from customer360.churn.targeting import RetentionEconomics
from tests.free_ports import free_port

USER, PASSWORD = "churn-bot", "s3cret-Pa55"


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Inbox:
    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(),
        auth_data.password.decode(),
    ) == (USER, PASSWORD)
    return AuthResult(success=ok, handled=False)  # handled=False: the server sends 535


@pytest.fixture
def smtp_server(tmp_path):
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    inbox = _Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticate,
    )
    controller.start()
    yield inbox, port, cert
    controller.stop()


def _alert(tmp_path):
    dashboard = tmp_path / "churn-2017-03.html"
    dashboard.write_text(
        "<!DOCTYPE html><html><body><p>p ≥ 0.25 — 預測</p><svg><path/></svg></body></html>",
        encoding="utf-8",
    )
    predictions = pd.DataFrame({"msno": ["a", "b", "c"], "churn_probability": [0.9, 0.3, 0.05]})
    return build_alert(
        "2017-03",
        predictions,
        threshold=0.25,
        expected_profit=1234.5,
        economics=RetentionEconomics(),
        dashboard_path=dashboard,
    )


def test_alert_summary(tmp_path):
    alert = _alert(tmp_path)
    assert alert.subject == "Churn risk 2017-03: 2 predicted churners"
    assert alert.summary["predicted_churners"] == 2
    assert alert.summary["members_scored"] == 3
    assert alert.summary["expected_profit"] == 1234.5
    assert alert.payload()["dashboard_file"] == "churn-2017-03.html"


def test_smtp_sends_the_dashboard_over_starttls_with_login(smtp_server, tmp_path, monkeypatch):
    inbox, port, cert = smtp_server
    monkeypatch.setenv("CHURN_SMTP_USER", USER)
    monkeypatch.setenv("CHURN_SMTP_PASSWORD", PASSWORD)
    notifier = SmtpNotifier(
        "127.0.0.1",
        port,
        "churn@customer360.test",
        ["retention@customer360.test", "lead@customer360.test"],
        username_env="CHURN_SMTP_USER",
        password_env="CHURN_SMTP_PASSWORD",
        use_starttls=True,
        ca_file=str(cert),  # verification stays on: the test CA is trusted explicitly
    )
    assert isinstance(notifier, Notifier)
    alert = _alert(tmp_path)
    notifier.send(alert)

    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "churn@customer360.test"
    assert envelope.rcpt_tos == ["retention@customer360.test", "lead@customer360.test"]
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert message["Subject"] == "Churn risk 2017-03: 2 predicted churners"
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == alert.text
    attachments = list(message.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["churn-2017-03.html"]
    assert attachments[0].get_content_type() == "text/html"
    assert attachments[0].get_content() == alert.dashboard_path.read_text(encoding="utf-8")


def test_smtp_errors_name_the_problem_but_never_the_secret(smtp_server, tmp_path, monkeypatch):
    inbox, port, cert = smtp_server
    monkeypatch.setenv("CHURN_SMTP_USER", USER)
    monkeypatch.setenv("CHURN_SMTP_PASSWORD", "wrong-password")
    notifier = SmtpNotifier(
        "127.0.0.1", port, "a@b.test", ["c@d.test"], "CHURN_SMTP_USER", "CHURN_SMTP_PASSWORD",
        use_starttls=True, ca_file=str(cert),
    )  # fmt: skip
    with pytest.raises(NotificationError) as failure:
        notifier.send(_alert(tmp_path))
    assert "SMTPAuthenticationError 535" in str(failure.value)
    assert "wrong-password" not in str(failure.value)
    assert inbox.envelopes == []
    # Without the CA the self-signed certificate is refused (verification is on).
    strict = SmtpNotifier(
        "127.0.0.1", port, "a@b.test", ["c@d.test"], "CHURN_SMTP_USER", "CHURN_SMTP_PASSWORD",
        use_starttls=True,
    )  # fmt: skip
    with pytest.raises(NotificationError, match="SSLCertVerificationError"):
        strict.send(_alert(tmp_path))
    monkeypatch.delenv("CHURN_SMTP_PASSWORD")
    with pytest.raises(NotificationError, match=r"\['CHURN_SMTP_PASSWORD'\] unset"):
        notifier.send(_alert(tmp_path))


@pytest.fixture
def http_server():
    received: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(500 if self.path.startswith("/broken") else 204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_webhook_posts_the_alert_as_json(http_server, tmp_path):
    base, received = http_server
    alert = _alert(tmp_path)
    WebhookNotifier(f"{base}/hooks/churn").send(alert)
    assert received == [("/hooks/churn", alert.payload())]
    with pytest.raises(NotificationError) as failure:
        WebhookNotifier(f"{base}/broken?token=abc123").send(alert)
    assert str(failure.value) == "webhook POST failed: HTTP 500"  # the URL token stays out


def test_file_queue_writes_one_message_file_per_alert(tmp_path):
    queue = FileQueueNotifier(tmp_path / "queue")
    first, second = _alert(tmp_path), _alert(tmp_path)
    queue.send(first)
    queue.send(second)
    files = queue.messages()
    assert len(files) == 2
    message = json.loads(files[0].read_text())
    assert message["subject"] == first.subject
    assert message["summary"]["predicted_churners"] == 2
    assert message["dashboard_path"] == str(first.dashboard_path)
    assert not list((tmp_path / "queue").glob(".*.tmp"))
