"""Secrets and tokens never reach logs, reprs, exceptions or metrics."""

from __future__ import annotations

import json
import logging

import pytest
from dynamics_emulator import connection, customer_rows, customer_spec, options

from customer360.dynamics import (
    AuthenticationError,
    DataverseConnection,
    InMemorySink,
    Principal,
    publish,
)
from customer360.emulator.launcher import run_emulator


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with run_emulator(
        tmp_path_factory.mktemp("dv-security"), config={"limits": {"enabled": False}}
    ) as handle:
        yield handle


def test_a_wrong_secret_fails_clearly_without_leaking_it(emu) -> None:
    client_id, secret = emu.principals[0]
    wrong = secret[::-1]
    bad = DataverseConnection(
        emu.api_url, emu.authority, (Principal(client_id, wrong),), ca_file=str(emu.ca_file)
    )
    assert wrong not in repr(bad) and client_id in repr(bad)
    with pytest.raises(AuthenticationError) as err:
        publish(customer_rows(3), customer_spec(), bad, options=options())
    assert client_id in str(err.value)
    assert "could not obtain a token" in str(err.value)
    assert wrong not in str(err.value) and secret not in str(err.value)


def test_logs_metrics_and_outcomes_hold_no_secret_or_token(emu, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    conn = connection(emu, 2)
    sink = InMemorySink()
    rows = list(customer_rows(50))
    rows[3] = {**rows[3], "FirstName": "x" * 500}  # one failure, so failed rows are written too
    metrics = publish(rows, customer_spec(), conn, sink=sink, options=options())
    assert (metrics.published, metrics.failed) == (49, 1)
    text = "\n".join(
        [
            caplog.text,
            json.dumps(metrics.as_dict(), default=str),
            json.dumps([f.to_record() for f in sink.failed_rows], default=str),
            json.dumps([b.to_record() for b in sink.batches], default=str),
        ]
    )
    assert "httpx" in caplog.text or "msal" in caplog.text  # the libraries did log
    for _, secret in emu.principals[:2]:
        assert secret not in text
    assert "Bearer " not in text
    assert "eyJ" not in text  # no JWT (header.payload.signature) anywhere
