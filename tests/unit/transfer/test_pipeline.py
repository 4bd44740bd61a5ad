"""The paramiko internals the read pipeline leans on are still there."""
from __future__ import annotations

import inspect

import paramiko
from paramiko.sftp_client import SFTPClient


def test_paramiko_still_has_the_sftp_client_internals_the_pipeline_uses():
    assert list(inspect.signature(SFTPClient._async_request).parameters) == [
        "self", "fileobj", "t", "args"]
    assert "waitfor" in inspect.signature(SFTPClient._read_response).parameters
    assert hasattr(SFTPClient, "_convert_status")
    assert hasattr(paramiko.sftp_client, "int64")
    assert "transport_factory" in inspect.signature(paramiko.SSHClient.connect).parameters
