"""The phone device against the real adb server (Debian's ``adb``), started by the test on a
free port: with no phone attached every entry point fails with one clear error."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from study.paths import ROOT
from study.devices import DeviceError, get_device
from study.devices import adb as A

pytestmark = pytest.mark.skipif(shutil.which("adb") is None,
                                reason="needs Debian's adb package (scripts/setup.sh --test installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from adb_standin import AdbServer

    srv = AdbServer(tmp_path_factory.mktemp("adbhome"))
    yield srv
    srv.stop()


def test_server_is_real_and_empty(server):
    r = server.adb("version")
    assert r.returncode == 0 and "Android Debug Bridge" in r.stdout
    assert server.adb("devices").stdout.strip() == "List of devices attached"


def test_no_device_gives_a_clear_error(server, monkeypatch):
    monkeypatch.setenv("HETERO_ADB_SERVER", server.address)
    with pytest.raises(DeviceError, match=r"'adb:NOPE': no such phone on the adb server 127\.0\.0\.1:\d+; attached: none"):
        get_device("adb:NOPE")
    with pytest.raises(DeviceError, match=r"no phone attached to the adb server"):
        get_device("adb")
    df = A.list_devices(A.AdbSettings(server=server.address))
    assert df.empty and list(df.columns) == ["serial", "state", "model", "soc", "android", "sdk", "abi", "note"]


def test_no_server_gives_a_clear_error(monkeypatch):
    from adb_standin import free_port

    port = free_port()  # nothing listens there
    monkeypatch.setenv("HETERO_ADB_SERVER", f"127.0.0.1:{port}")
    with pytest.raises(DeviceError, match=rf"no adb server at 127\.0\.0\.1:{port}.*adb -P {port} start-server"):
        get_device("adb:R58M123ABC")


def test_cli_reports_the_missing_phone(server):
    env = dict(os.environ, HETERO_ADB_SERVER=server.address)
    r = subprocess.run([sys.executable, "-m", "study", "devices", "--device", "adb:NOPE"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "error: device 'adb:NOPE': no such phone" in r.stderr and "Traceback" not in r.stderr
