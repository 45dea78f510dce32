import numpy as np
import pytest

from study.devices import get_device
from study.engines import OP_PROFILE_COLUMNS, PLACEMENT_COLUMNS, EngineUnavailable, get_engine
from study.engines import tflite_graph as tg
from study.engines.litert import open_compiled
from study.models import ModelSpec


def test_litert_cpu_runs_and_matches_onnxruntime(tiny_model):
    lit = get_engine("litert").open(tiny_model, "cpu", 1)
    ort = get_engine("onnxruntime").open(tiny_model, "cpu", 1)
    x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
    lit.set_inputs([x])
    ort.set_inputs([x])
    a, b = lit.outputs()[0], ort.outputs()[0]
    assert a.shape == (1, 4)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    lit.run()
    assert lit.info["fully_accelerated"] is True


def test_litert_cpu_placement_reports_xnnpack_partition(tiny_model):
    pl = get_engine("litert").placement(tiny_model, "cpu")
    assert list(pl.columns) == PLACEMENT_COLUMNS
    ops = tg.graph_ops(tiny_model.path("tflite"))
    assert len(pl) == len(ops) > 3
    assert pl.delegated.all() and set(pl.placed_on) == {"xnnpack"}


def test_partition_membership_walks_back_to_boundary():
    # t0 -op0-> t1 -op1-> t2 -op2-> t3 ; partition covers op1, op2 (inputs t1, outputs t3)
    ops = [tg.OpInfo(0, "A", (0,), (1,)), tg.OpInfo(1, "B", (1, 10), (2,)), tg.OpInfo(2, "C", (2,), (3,))]
    assert tg.partition_membership(ops, [((1, 10), (3,))]) == {1: 0, 2: 0}
    assert tg.partition_membership(ops, []) == {}


def test_single_operator_slices_run_and_compose(tiny_model):
    path = tiny_model.path("tflite")
    ops = tg.graph_ops(path)
    for o in ops:
        s = open_compiled(tg.slice_model(path, [o.index]), "cpu", 1)
        outs = s.outputs()
        assert len(outs) == len(o.outputs)
    # the slice of every operator is the whole model again
    whole = open_compiled(tg.slice_model(path, [o.index for o in ops]), "cpu", 1)
    ref = get_engine("litert").open(tiny_model, "cpu", 1)
    x = np.random.default_rng(1).random((1, 3, 16, 16), dtype=np.float32)
    whole.set_inputs([x]), ref.set_inputs([x])
    np.testing.assert_allclose(whole.outputs()[0], ref.outputs()[0], rtol=1e-6)


def test_litert_op_profile_times_every_operator(tiny_model):
    prof = get_engine("litert").op_profile(tiny_model, "cpu", runs=3)
    assert list(prof.columns) == OP_PROFILE_COLUMNS
    assert prof.time_ms.notna().all() and (prof.time_ms > 0).all()
    assert prof.method.str.contains("slice").all()


def test_gpu_static_checker_runs_without_gpu(tiny_model):
    df = get_engine("litert").gpu_static(tiny_model)
    assert len(df) == len(tg.graph_ops(tiny_model.path("tflite")))
    assert "compatible" in df.attrs["verdict"].lower()
    assert df.method.str.startswith("static").all()


def test_onnxruntime_placement_and_profile(tiny_model):
    e = get_engine("onnxruntime")
    pl = e.placement(tiny_model, "cpu")
    assert len(pl) >= 3 and set(pl.placed_on) == {"CPUExecutionProvider"}
    prof = e.op_profile(tiny_model, "cpu", runs=3)
    assert (prof.time_ms > 0).all() and (prof.n == 3).all()


def test_torch_engine_on_zoo_model():
    spec = ModelSpec(name="mobilenet_v2", source="zoo", task="classification", torch_zoo="mobilenet_v2")
    e = get_engine("torch")
    s = e.open(spec, "cpu", 1)
    assert s.outputs()[0].shape == (1, 1000)
    pl = e.placement(spec, "cpu")
    assert (pl.op_type == "aten::conv2d").sum() == 52
    prof = e.op_profile(spec, "cpu", runs=2)
    assert prof.time_ms.sum() > 0


def test_unavailable_processor_gives_reason(tiny_model):
    dev = get_device("local")
    for name in ("litert", "onnxruntime", "torch"):
        e = get_engine(name)
        why = e.availability(dev, "npu", tiny_model)
        assert why and isinstance(why, str)
    gpu = dev.processor("gpu")
    if not gpu.available:
        with pytest.raises(EngineUnavailable):
            get_engine("litert").check(dev, "gpu", tiny_model)
    assert "no PyTorch definition" in get_engine("torch").availability(dev, "cpu", tiny_model)


def test_unknown_engine():
    with pytest.raises(ValueError):
        get_engine("tvm")
