"""Devices: ``local`` (this host) and ``adb:SERIAL`` (an Android phone over adb).

``get_device(spec)`` is the one entry point; every finding asks it for processors,
core groups, sensors and the fingerprint that goes with each dataset.
"""
from __future__ import annotations

import re

from study.devices.base import UNAVAILABLE, Device, DeviceError, Processor, unavailable

DEVICE_SPEC = re.compile(r"^(local|adb(:[A-Za-z0-9._:-]+)?)$")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``'local'`` -> ('local', None); ``'adb:SERIAL'`` -> ('adb', 'SERIAL'); ``'adb'`` -> ('adb', None)."""
    if not isinstance(spec, str) or not DEVICE_SPEC.match(spec.strip()):
        raise DeviceError(f"unknown device {spec!r}: use 'local' or 'adb:SERIAL' (e.g. adb:R58M123ABC)")
    kind, _, serial = spec.strip().partition(":")
    return kind, (serial or None)


def get_device(spec: str = "local") -> Device:
    kind, serial = parse_spec(spec)
    if kind == "local":
        from study.devices.local import LocalDevice

        return LocalDevice(spec)
    try:
        from study.devices.adb import AdbDevice  # noqa: PLC0415 - optional until the adb device lands
    except ImportError as e:
        raise DeviceError(f"device {spec!r}: the adb device is not available in this build ({e})") from e
    return AdbDevice(spec, serial)


__all__ = ["Device", "DeviceError", "Processor", "UNAVAILABLE", "get_device", "parse_spec", "unavailable"]
