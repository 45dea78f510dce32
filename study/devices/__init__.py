"""Devices: ``local`` (this host) and ``adb:SERIAL`` (an Android phone over adb).

``get_device(spec)`` is the one entry point; every finding asks it for processors,
core groups, sensors and the fingerprint that goes with each dataset.
"""
from __future__ import annotations

import re

from study.devices.base import BENCHMARK_MODEL, PYTHON, UNAVAILABLE, Device, DeviceError, Processor, unavailable

DEVICE_SPEC = re.compile(r"^(local|adb(:[A-Za-z0-9._:-]+)?)$")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``'local'`` -> ('local', None); ``'adb:SERIAL'`` -> ('adb', 'SERIAL'); ``'adb'`` -> ('adb', None)."""
    if not isinstance(spec, str) or not DEVICE_SPEC.match(spec.strip()):
        raise DeviceError(f"unknown device {spec!r}: use 'local' or 'adb:SERIAL' (e.g. adb:R58M123ABC)")
    kind, _, serial = spec.strip().partition(":")
    return kind, (serial or None)


def device_class(spec: str) -> type[Device]:
    """The class of the device ``spec`` names (its ``capabilities`` without connecting)."""
    kind, _ = parse_spec(spec)
    if kind == "local":
        from study.devices.local import LocalDevice

        return LocalDevice
    try:
        from study.devices.adb import AdbDevice  # noqa: PLC0415 - optional until the adb device lands
    except ImportError as e:
        raise DeviceError(f"device {spec!r}: the adb device is not available in this build ({e})") from e
    return AdbDevice


def supports(spec: str, capability: str) -> bool:
    """Whether the device ``spec`` names can run ``capability`` (``PYTHON``, ``BENCHMARK_MODEL``, a
    stage's runner): its class's ``capabilities``, without connecting, so a finding's analysis
    and plots of a phone's data can ask too. What a finding asks instead of the kind of device."""
    return capability in device_class(spec).capabilities


def get_device(spec: str = "local") -> Device:
    kind, serial = parse_spec(spec)
    cls = device_class(spec)
    return cls(spec) if kind == "local" else cls(spec, serial)


__all__ = ["BENCHMARK_MODEL", "Device", "DeviceError", "PYTHON", "Processor", "UNAVAILABLE", "device_class", "get_device",
           "parse_spec", "supports", "unavailable"]
