
import nbformat
import pytest
import yaml

from study import cli, config, paths
from study.config import Field, ParamError, check_section


def base_params():
    return yaml.safe_load(paths.PARAMS.read_text())


def test_repository_params_are_valid():
    out = config.validate_all(base_params())
    assert "models" in out
    assert out["models"]["harness"]["min_samples"] >= 1


@pytest.mark.parametrize("key,value,msg", [
    ("device", "phone", "device"),
    ("device", "adb:bad serial", "device"),
    ("profile", "fast", "profile"),
    ("seed", "x", "seed"),
])
def test_bad_common_values(key, value, msg):
    p = base_params()
    p[key] = value
    with pytest.raises(ParamError, match=msg):
        config.resolve("models", p)


def test_bad_harness_counts():
    p = base_params()
    p["harness"][p["profile"]]["min_samples"] = -3
    with pytest.raises(ParamError, match="min_samples"):
        config.resolve("models", p)


def test_unknown_and_bad_stage_keys():
    p = base_params()
    p["models"]["zooo"] = ["resnet50"]
    with pytest.raises(ParamError, match="unknown key"):
        config.resolve("models", p)
    p = base_params()
    p["models"]["zoo"] = ["resnet51"]
    with pytest.raises(ParamError, match="resnet51"):
        config.resolve("models", p)
    p = base_params()
    p["models"]["user"] = ["data/user_models/missing.tflite"]
    with pytest.raises(ParamError, match="no such file"):
        config.resolve("models", p)


def test_profile_overrides():
    p = base_params()
    p["models"]["quick"] = {"zoo": ["mobilenet_v2"]}
    p["profile"] = "quick"
    assert config.resolve("models", p)["zoo"] == ["mobilenet_v2"]
    p["profile"] = "full"
    assert "resnet50" in config.resolve("models", p)["zoo"]


def test_field_types_and_ranges():
    schema = {"n": Field(int, 3, min=1), "r": Field(list, [0.5], item=float,
                                                    check=lambda v: None if all(0 <= x <= 1 for x in v) else "in [0,1]")}
    assert check_section("s", {}, schema) == {"n": 3, "r": [0.5]}
    with pytest.raises(ParamError):
        check_section("s", {"n": 0}, schema)
    with pytest.raises(ParamError):
        check_section("s", {"n": True}, schema)
    with pytest.raises(ParamError, match="in \\[0,1\\]"):
        check_section("s", {"r": [2]}, schema)


def test_validate_cli_writes_nothing_on_error(tmp_path, monkeypatch, capsys):
    p = base_params()
    p["profile"] = "slow"
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(p))
    monkeypatch.setattr(config, "load_params", lambda path=bad: yaml.safe_load(bad.read_text()))
    out = tmp_path / "validated"
    monkeypatch.setattr(paths, "VALIDATED", out)
    assert cli.main(["validate"]) == 2
    assert "profile" in capsys.readouterr().err
    assert not out.exists()


def test_runner_refuses_keys_the_notebook_does_not_define(tmp_path, monkeypatch, capsys):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("device = 'local'\nprofile = 'quick'\nseed = 0\nharness = {}")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setattr(paths, "source_notebook", lambda stage: path)
    assert cli.run_stage("models", base_params()) == 2
    err = capsys.readouterr().err
    assert "defines no parameter" in err and "zoo" in err
