import pytest

from study.devices import DeviceError, get_device, parse_spec
from study.devices.local import split_core_groups


def test_parse_spec():
    assert parse_spec("local") == ("local", None)
    assert parse_spec("adb:R58M123ABC") == ("adb", "R58M123ABC")
    assert parse_spec("adb:192.168.1.5:5555") == ("adb", "192.168.1.5:5555")
    for bad in ("", "gpu", "adb:a b", "adb:x;rm", "local2", None):
        with pytest.raises(DeviceError):
            parse_spec(bad)


def test_local_processors_present_or_absent_with_reason():
    d = get_device("local")
    procs = {p.name: p for p in d.processors()}
    assert set(procs) == {"cpu", "gpu", "npu"}
    assert procs["cpu"].available and procs["cpu"].info["logical_cpus"] >= 1
    for p in procs.values():
        assert p.available or p.reason, f"{p.name} absent without a reason"
        for backend, why in p.backends.items():
            assert why is None or isinstance(why, str) and why
    assert procs["npu"].backend_reason("npu")


def test_core_groups_are_disjoint_and_cover_all():
    g = get_device("local").core_groups()
    parts = [set(v) for k, v in g.items() if k != "all"]
    assert set().union(*parts) == set(g["all"]) if parts else True
    for i, a in enumerate(parts):
        for b in parts[i + 1:]:
            assert not a & b


def test_big_little_clusters_by_max_frequency():
    limits = {c: {"max_khz": "2800000" if c >= 6 else "1800000"} for c in range(8)}
    g = split_core_groups(list(range(8)), limits)
    assert g["big"] == [6, 7] and g["little"] == [0, 1, 2, 3, 4, 5] and g["all"] == list(range(8))
    assert split_core_groups([0, 1, 2, 3])["g0"] == [0, 1]


def test_sensors_explicit_when_unavailable():
    s = get_device("local").read_sensors()
    for key in ("cpu_governor", "cpu_freq", "thermal", "gpu"):
        v = s[key]
        assert isinstance(v, dict) and (v.get("status") == "unavailable" and v.get("why") or v.get("status") is None)


def test_fingerprint_has_environment():
    fp = get_device("local").fingerprint()
    for key in ("device", "device_slug", "cpu_model", "os", "python", "libraries", "date", "processors"):
        assert fp[key]
    assert "torch" in fp["libraries"] and "ai-edge-litert" in fp["libraries"]
