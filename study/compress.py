"""Frontend compression: the variants of a model that finding 6 (``cross_level``) measures.

Quantization of existing model files (every model, trained ones included):

* LiteRT (``.tflite``) through ``ai-edge-quantizer``: ``fp16`` (weights stored as fp16,
  the ``FLOAT_CASTING`` weight-only recipe), ``int8_dynamic`` (``dynamic_wi8_afp32``:
  int8 channel-wise weights, activations quantized at run time by the kernels),
  ``int8_static`` (``static_wi8_ai8``: full-integer, int8 weights and activations,
  activation ranges calibrated on real frames). The trained MediaPipe files store their
  weights as fp16 constants behind ``DEQUANTIZE`` operators, which the quantizer does not
  see as float weights: ``densify_tflite`` first folds those into fp32 constants (the same
  numbers: fp16 -> fp32 is exact) and adds the signature the calibrator needs; that file
  is the model's ``fp32`` variant.
* ONNX Runtime (``.onnx``) through ``onnxruntime.quantization``: ``int8_dynamic``
  (``quantize_dynamic``: ConvInteger / MatMulInteger with uint8 weights, the type ONNX
  Runtime's CPU ConvInteger kernel takes), ``int8_static`` (``quantize_static``, QDQ
  format, per-channel int8 weights, activations calibrated on real frames), ``fp16``
  (``onnxruntime.transformers.float16``, float32 inputs and outputs kept).

Structural compression of the PyTorch-defined zoo models (``study.models.zoo``):

* ``prune_model``: structured channel pruning. The output channels of a layer are ranked
  by the L1 norm of their weights; the smallest ``strength`` share is removed and the
  shapes are propagated to the normalization and the consuming layer, so the model is
  genuinely smaller (fewer channels, fewer MACs). Residual streams are never pruned: only
  the inner channels of bottlenecks and inverted residuals, and the plain chains (VGG's
  convolutions and hidden FC layers, Fast Style Transfer's encoder/decoder). The kept
  count is rounded to a multiple of ``multiple`` (8: SIMD and tensor-core friendly).
* ``lowrank_model``: low-rank factorization by truncated SVD. A ``k x k`` convolution
  ``C_in -> C_out`` becomes a ``k x k`` convolution ``C_in -> r`` followed by a ``1 x 1``
  convolution ``r -> C_out``; a linear layer ``W ~ U_r S_r V_r^T`` becomes two linear
  layers. ``r = round(ratio * full rank)``; a layer is factorized only where that lowers
  its MACs (depthwise/grouped convolutions never).
* ``int8_torch_model``: PyTorch int8 on the CPU (x86/fbgemm quantized kernels): weights
  int8 per output channel, activations quantized per tensor at run time
  (``quantize_per_tensor_dynamic``); a convolution's output is requantized to the (min, max)
  range calibrated on real frames (PyTorch's quantized convolution needs one; its
  ``quantized::conv2d_dynamic``, tried first, gave outputs with a relative error near 1 in
  torch 2.13+cpu on the development host); linear layers use ``quantized::linear_dynamic``.

No fine-tuning follows pruning or factorization (the study measures the frontend as it
comes out of the transformation; the fidelity columns say what that costs).

Heavy packages (``ai_edge_quantizer``, ``litert_torch``, ``onnxruntime``) are imported
inside the functions that use them: ``litert_torch`` is absent on the lent GPU machine.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from study.paths import file_sha256 as sha256_file



class VariantError(RuntimeError):
    """A variant that cannot be built; the message says why."""


# =========================================================================== LiteRT
def _tflite_model(source: str | Path | bytes):
    from ai_edge_litert.tools import flatbuffer_utils as fu

    if isinstance(source, (bytes, bytearray)):
        return fu.read_model_from_bytearray(bytearray(source))
    return fu.read_model(str(source))


def _tflite_bytes(model) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils as fu

    return bytes(fu.convert_object_to_bytearray(model))


def _add_signature(model) -> bool:
    """Give subgraph 0 a ``serving_default`` signature (inputs/outputs by tensor name) if
    the model has none; True if one was added."""
    from ai_edge_litert import schema_py_generated as fb

    if model.signatureDefs:
        return False
    sg = model.subgraphs[0]
    sig = fb.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs, sig.outputs = [], []
    for lst, idxs, prefix in ((sig.inputs, sg.inputs, "input"), (sig.outputs, sg.outputs, "output")):
        for k, t in enumerate(idxs):
            tm = fb.TensorMapT()
            name = sg.tensors[int(t)].name
            name = name.decode() if isinstance(name, bytes) else name
            tm.name = name or f"{prefix}_{k}"
            tm.tensorIndex = int(t)
            lst.append(tm)
    model.signatureDefs = [sig]
    return True


def _compact(model) -> None:
    """Drop tensors of subgraph 0 that no operator, input or output uses, remapping every index."""
    sg = model.subgraphs[0]
    used = set(int(t) for t in list(sg.inputs) + list(sg.outputs))
    for op in sg.operators or []:
        for lst in (op.inputs, op.outputs, op.intermediates):
            if lst is not None:
                used.update(int(t) for t in lst if t >= 0)
    order = sorted(used)
    remap = {old: new for new, old in enumerate(order)}
    sg.tensors = [sg.tensors[i] for i in order]
    sg.inputs = [remap[int(t)] for t in sg.inputs]
    sg.outputs = [remap[int(t)] for t in sg.outputs]
    for op in sg.operators or []:
        op.inputs = [remap[int(t)] if t >= 0 else -1 for t in (op.inputs if op.inputs is not None else [])]
        op.outputs = [remap[int(t)] for t in (op.outputs if op.outputs is not None else [])]
        if op.intermediates is not None:
            op.intermediates = [remap[int(t)] for t in op.intermediates]
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex == 0:
            for tm in list(sig.inputs or []) + list(sig.outputs or []):
                tm.tensorIndex = remap[int(tm.tensorIndex)]
    # unused buffers are left in place (emptied by the caller); readers compact them


def densify_tflite(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Fold ``DEQUANTIZE`` operators of constant fp16 tensors into fp32 constants (the
    consumers then read fp32 weights directly) and add a signature if there is none.

    The result computes exactly what ``src`` computes (fp16 -> fp32 is exact); it is the
    fp32 form of a model shipped with fp16 weights. Returns what was done."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils as fu

    m = _tflite_model(src)
    sg = m.subgraphs[0]
    folded = 0
    keep_ops = []
    used_buffers: dict[int, int] = {}
    for op in sg.operators or []:
        for t in list(op.inputs if op.inputs is not None else []):
            if t >= 0:
                used_buffers[sg.tensors[int(t)].buffer] = used_buffers.get(sg.tensors[int(t)].buffer, 0) + 1
    for op in sg.operators or []:
        name = fu.opcode_to_name(m, op.opcodeIndex)
        ins = [int(t) for t in (op.inputs if op.inputs is not None else [])]
        if name == "DEQUANTIZE" and len(ins) == 1:
            tin = sg.tensors[ins[0]]
            buf = m.buffers[tin.buffer] if tin.buffer < len(m.buffers) else None
            if tin.type == 1 and buf is not None and buf.data is not None and len(buf.data) > 0:  # FLOAT16 constant
                data = np.frombuffer(bytes(bytearray(buf.data)), dtype=np.float16).astype(np.float32)
                tout = sg.tensors[int(op.outputs[0])]
                nb = fb.BufferT()
                nb.data = np.frombuffer(data.tobytes(), dtype=np.uint8)
                m.buffers.append(nb)
                tout.buffer = len(m.buffers) - 1
                used_buffers[tin.buffer] -= 1
                if used_buffers[tin.buffer] <= 0:
                    buf.data = None  # the fp16 copy is no longer read
                folded += 1
                continue
        keep_ops.append(op)
    sg.operators = keep_ops
    _compact(m)
    # old files leave ``builtinCode`` at 0 and hold the operator in ``deprecatedBuiltinCode``
    # (the schema's rule: the code is the larger of the two); tools that read only
    # ``builtinCode`` would see every such operator as ADD
    for code in m.operatorCodes:
        code.builtinCode = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
    signature = _add_signature(m)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_bytes(_tflite_bytes(m))
    return {"folded_dequantize": folded, "signature_added": signature}


def tflite_signature(path: str | Path) -> tuple[str, list[str]]:
    """(signature key, input names in subgraph order) of a ``.tflite`` file."""
    m = _tflite_model(path)
    if not m.signatureDefs:
        raise VariantError(f"{Path(path).name} has no signature (densify_tflite adds one)")
    sig = m.signatureDefs[0]
    key = sig.signatureKey.decode() if isinstance(sig.signatureKey, bytes) else sig.signatureKey
    by_index = {int(t.tensorIndex): (t.name.decode() if isinstance(t.name, bytes) else t.name) for t in sig.inputs}
    order = [int(t) for t in m.subgraphs[sig.subgraphIndex].inputs]
    return key, [by_index[t] for t in order if t in by_index]


class _quiet_quantizer:
    """ai-edge-quantizer's progress bars off (some ignore ``enable_progress_bar``) and its
    calibration interpreter's debugging warning silenced, for the duration of a call."""

    def __enter__(self):
        import warnings

        from ai_edge_quantizer.utils import progress_utils

        self._cls = progress_utils.ProgressBar
        self._init = self._cls.__init__
        init = self._init

        def quiet(bar, total_steps, description="", disappear_on_finish=False, enable=None):
            init(bar, total_steps, description, disappear_on_finish, False)

        self._cls.__init__ = quiet
        self._warn = warnings.catch_warnings()
        self._warn.__enter__()
        warnings.simplefilter("ignore")
        return self

    def __exit__(self, *exc):
        self._cls.__init__ = self._init
        self._warn.__exit__(*exc)
        return False


def quantize_tflite(src: str | Path, dst: str | Path, kind: str, calibration: Sequence[list[np.ndarray]] = (),
                    threads: int = 2) -> dict[str, Any]:
    """``src`` quantized with ai-edge-quantizer into ``dst``; ``calibration``: model inputs
    (one list of arrays per sample) for ``int8_static``."""
    from ai_edge_quantizer import qtyping, quantizer, recipe

    from study.engines.base import captured_native_stderr

    q = quantizer.Quantizer(str(src))
    if kind == "fp16":
        q.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                 algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING)
        method = "ai-edge-quantizer weight-only FLOAT_CASTING (fp16 weights, fp32 compute)"
    elif kind == "int8_dynamic":
        q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        method = "ai-edge-quantizer dynamic_wi8_afp32 (int8 channel-wise weights, activations quantized at run time)"
    elif kind == "int8_static":
        q.load_quantization_recipe(recipe.static_wi8_ai8())
        # float inputs and outputs: QUANTIZE / DEQUANTIZE at the model's boundary (timed with it)
        for io_op in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
            q.update_quantization_recipe(regex=".*", operation_name=io_op, algorithm_key="no_quantize")
        method = ("ai-edge-quantizer static_wi8_ai8 (full integer: int8 weights and activations, ranges calibrated "
                  "on real frames; float input/output converted inside the model)")
    else:
        raise VariantError(f"unknown LiteRT quantization {kind!r}")
    cal = None
    with captured_native_stderr(), _quiet_quantizer():
        if q.need_calibration:
            if not calibration:
                raise VariantError("int8_static needs calibration samples")
            key, names = tflite_signature(src)
            data = [{n: np.ascontiguousarray(a, dtype=np.float32) for n, a in zip(names, sample)} for sample in calibration]
            cal = q.calibrate({key: data}, num_threads=max(1, threads))
        res = q.quantize(cal, enable_progress_bar=False, enable_progress_report=False)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_bytes(bytes(res.quantized_model))
    return {"method": method, "calibration_samples": len(calibration) if cal is not None else 0}


def tflite_weight_types(path: str | Path) -> dict[str, int]:
    """Count of constant tensors by type name (to check what a quantizer did)."""
    from study.engines.tflite_graph import TFLITE_DTYPES, is_constant

    m = _tflite_model(path)
    out: dict[str, int] = {}
    for t in m.subgraphs[0].tensors:
        if is_constant(m, t):
            k = np.dtype(TFLITE_DTYPES.get(t.type, np.float32)).name
            out[k] = out.get(k, 0) + 1
    return out


# =========================================================================== ONNX
class _Reader:
    """``onnxruntime.quantization.CalibrationDataReader`` over in-memory samples."""

    def __init__(self, name: str, samples: Sequence[np.ndarray]):
        self._it = iter([{name: np.ascontiguousarray(s, dtype=np.float32)} for s in samples])

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - not used by the MinMax calibrator
        pass


class _no_log_warnings:
    def __enter__(self):
        import logging

        logging.disable(logging.WARNING)

    def __exit__(self, *exc):
        import logging

        logging.disable(logging.NOTSET)
        return False


def quantize_onnx(src: str | Path, dst: str | Path, kind: str, calibration: Sequence[np.ndarray] = ()) -> dict[str, Any]:
    """``src`` quantized with ONNX Runtime's tools into ``dst``."""
    import onnx
    from onnxruntime import quantization as oq

    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    if kind == "int8_dynamic":
        with _no_log_warnings():
            oq.quantize_dynamic(str(src), str(dst), weight_type=oq.QuantType.QUInt8)
        method = "onnxruntime quantize_dynamic (uint8 weights: ConvInteger/MatMulInteger, activations at run time)"
    elif kind == "int8_static":
        if not calibration:
            raise VariantError("int8_static needs calibration samples")
        name = onnx.load(str(src), load_external_data=False).graph.input[0].name

        class Reader(_Reader, oq.CalibrationDataReader):
            pass

        with _no_log_warnings():  # "consider pre-processing" advice, on every call
            oq.quantize_static(str(src), str(dst), Reader(name, calibration), quant_format=oq.QuantFormat.QDQ,
                               per_channel=True, activation_type=oq.QuantType.QUInt8, weight_type=oq.QuantType.QInt8,
                               calibrate_method=oq.CalibrationMethod.MinMax)
        method = "onnxruntime quantize_static (QDQ, int8 per-channel weights, uint8 activations calibrated on real frames)"
    elif kind == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        m = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        onnx.save(m, str(dst))
        method = "onnxruntime.transformers.float16 (fp16 weights and compute, fp32 inputs/outputs kept)"
    else:
        raise VariantError(f"unknown ONNX quantization {kind!r}")
    return {"method": method, "calibration_samples": len(calibration) if kind == "int8_static" else 0}


# =========================================================================== PyTorch: pruning
def n_keep(channels: int, strength: float, multiple: int = 8) -> int:
    """Channels kept when removing ``strength`` of ``channels``, rounded to ``multiple``
    (never 0, never more than ``channels``)."""
    k = channels * (1.0 - strength)
    if channels >= 2 * multiple and multiple > 1:
        k = max(multiple, int(round(k / multiple)) * multiple)
    else:
        k = max(1, int(round(k)))
    return int(min(channels, k))


def l1_keep(weight, keep: int):
    """Indices (ascending) of the ``keep`` output channels with the largest L1 norm."""
    import torch

    norms = weight.detach().abs().reshape(weight.shape[0], -1).sum(1)
    idx = torch.topk(norms, keep, largest=True, sorted=False).indices
    return torch.sort(idx).values


def _conv_out(conv, idx):
    """Conv2d keeping output channels ``idx`` (depthwise: the channels themselves)."""
    from torch import nn

    dw = conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels
    if conv.groups > 1 and not dw:
        raise VariantError("grouped convolutions are not pruned")
    n = len(idx)
    new = nn.Conv2d(n if dw else conv.in_channels, n, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    groups=n if dw else 1, bias=conv.bias is not None, padding_mode=conv.padding_mode)
    new.weight.data = conv.weight.data[idx].clone()
    if conv.bias is not None:
        new.bias.data = conv.bias.data[idx].clone()
    return new


def _conv_in(conv, idx):
    from torch import nn

    if conv.groups != 1:
        raise VariantError("only dense convolutions take pruned inputs")
    new = nn.Conv2d(len(idx), conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    bias=conv.bias is not None, padding_mode=conv.padding_mode)
    new.weight.data = conv.weight.data[:, idx].clone()
    if conv.bias is not None:
        new.bias.data = conv.bias.data.clone()
    return new


def _norm(norm, idx):
    """BatchNorm2d / InstanceNorm2d restricted to channels ``idx``."""
    from torch import nn

    if isinstance(norm, nn.BatchNorm2d):
        new = nn.BatchNorm2d(len(idx), eps=norm.eps, momentum=norm.momentum, affine=norm.affine,
                             track_running_stats=norm.track_running_stats)
        if norm.track_running_stats:
            new.running_mean.data = norm.running_mean.data[idx].clone()
            new.running_var.data = norm.running_var.data[idx].clone()
            new.num_batches_tracked.data = norm.num_batches_tracked.data.clone()
    elif isinstance(norm, nn.InstanceNorm2d):
        new = nn.InstanceNorm2d(len(idx), eps=norm.eps, momentum=norm.momentum, affine=norm.affine,
                                track_running_stats=norm.track_running_stats)
    else:
        raise VariantError(f"cannot prune {type(norm).__name__}")
    if norm.affine:
        new.weight.data = norm.weight.data[idx].clone()
        new.bias.data = norm.bias.data[idx].clone()
    return new.train(norm.training)


def _lin_out(lin, idx):
    from torch import nn

    new = nn.Linear(lin.in_features, len(idx), bias=lin.bias is not None)
    new.weight.data = lin.weight.data[idx].clone()
    if lin.bias is not None:
        new.bias.data = lin.bias.data[idx].clone()
    return new


def _lin_in(lin, idx):
    from torch import nn

    new = nn.Linear(len(idx), lin.out_features, bias=lin.bias is not None)
    new.weight.data = lin.weight.data[:, idx].clone()
    if lin.bias is not None:
        new.bias.data = lin.bias.data.clone()
    return new


def _chain_keep(producer, strength: float, multiple: int, kind: str):
    """Channel indices a chain keeps, ranked on ``producer``'s weights (None: keeps all)."""
    c = producer.out_channels if kind == "conv" else producer.out_features
    k = n_keep(c, strength, multiple)
    return (c, k, None) if k >= c else (c, k, l1_keep(producer.weight, k))


def _apply_chain(idx, producer_get, producer_set, norm_get, norm_set, consumer_get, consumer_set, kind="conv",
                 extra=()) -> None:
    """Keep output channels ``idx`` of one producer (conv or linear): the producer, its
    normalization (optional), channel-wise layers in between (``extra``: (get, set) of
    depthwise convolutions and their norms), and the consumer's inputs."""
    from torch import nn

    prod = producer_get()
    producer_set(_conv_out(prod, idx) if kind == "conv" else _lin_out(prod, idx))
    if norm_get is not None:
        norm_set(_norm(norm_get(), idx))
    for get, set_ in extra:
        m = get()
        set_(_conv_out(m, idx) if isinstance(m, nn.Conv2d) else _norm(m, idx))
    cons = consumer_get()
    consumer_set(_conv_in(cons, idx) if kind == "conv" else _lin_in(cons, idx))


def _attr(obj, name):
    return (lambda: getattr(obj, name)), (lambda v: setattr(obj, name, v))


def _item(seq, i):
    return (lambda: seq[i]), (lambda v: seq.__setitem__(i, v))


def prune_model(module, strength: float, multiple: int = 8):
    """A structurally pruned copy of a zoo model; returns (model, info)."""
    from torch import nn

    from study.models import zoo

    if not 0 <= strength < 1:
        raise VariantError(f"pruning strength {strength} outside [0, 1)")
    m = copy.deepcopy(module).eval()
    chains: list[tuple] = []

    def chain(p, n, c, kind="conv", extra=()):
        chains.append((p, n, c, kind, extra))

    if isinstance(m, zoo.MobileNetV2):
        for blk in m.features:
            if isinstance(blk, zoo.InvertedResidual) and len(blk.conv) == 3:   # expand != 1: hidden channels
                e, d, p = blk.conv[0], blk.conv[1], blk.conv[2]
                chain(_item(e, 0), _item(e, 1), _item(p, 0), extra=(_item(d, 0), _item(d, 1)))
    elif isinstance(m, zoo.ResNet50):
        for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
            for b in layer:
                chain(_attr(b, "conv1"), _attr(b, "bn1"), _attr(b, "conv2"))
                chain(_attr(b, "conv2"), _attr(b, "bn2"), _attr(b, "conv3"))
    elif isinstance(m, zoo.VGG16):
        convs = [i for i, l in enumerate(m.features) if isinstance(l, nn.Conv2d)]
        for a, b in zip(convs[:-1], convs[1:]):   # the last convolution feeds the classifier: kept
            chain(_item(m.features, a), None, _item(m.features, b))
        lins = [i for i, l in enumerate(m.classifier) if isinstance(l, nn.Linear)]
        for a, b in zip(lins[:-1], lins[1:]):
            chain(_item(m.classifier, a), None, _item(m.classifier, b), kind="linear")
    elif isinstance(m, zoo.FastStyleTransfer):
        chain(_attr(m.conv1, "conv"), _attr(m, "in1"), _attr(m.conv2, "conv"))
        chain(_attr(m.conv2, "conv"), _attr(m, "in2"), _attr(m.conv3, "conv"))
        for r in m.res:  # conv3's output is the residual stream: only the blocks' inner channels
            chain(_attr(r.conv1, "conv"), _attr(r, "in1"), _attr(r.conv2, "conv"))
        chain(_attr(m.up1.conv, "conv"), _attr(m, "in4"), _attr(m.up2.conv, "conv"))
        chain(_attr(m.up2.conv, "conv"), _attr(m, "in5"), _attr(m.conv_out, "conv"))
    elif isinstance(m, zoo.YoloDetector):
        for mod in m.modules():
            if isinstance(mod, zoo.YoloBottleneck):
                chain(_attr(mod.cv1, "conv"), _attr(mod.cv1, "bn"), _attr(mod.cv2, "conv"))
        for h in m.heads:
            chain(_attr(h[0], "conv"), _attr(h[0], "bn"), _attr(h[1], "conv"))
            chain(_attr(h[1], "conv"), _attr(h[1], "bn"), _item(h, 2))
    elif isinstance(m, zoo.TransformerEncoder):
        for b in m.blocks:
            chain(_attr(b, "fc1"), None, _attr(b, "fc2"), kind="linear")
    else:
        raise VariantError(f"no pruning rule for {type(m).__name__}")
    # importance of every chain ranked on the original weights first, then the chains applied
    # (a module can be one chain's consumer and the next one's producer)
    keeps = [_chain_keep(p[0](), strength, multiple, kind) for p, _, _, kind, _ in chains]
    for (p, n, c, kind, extra), (_, _, idx) in zip(chains, keeps):
        if idx is not None:
            _apply_chain(idx, p[0], p[1], n[0] if n else None, n[1] if n else None, c[0], c[1], kind, extra)
    before = sum(c for c, _, _ in keeps)
    after = sum(k for _, k, _ in keeps)
    return m.eval(), {"pruned_layers": sum(idx is not None for _, _, idx in keeps), "channels_before": before,
                      "channels_after": after,
                      "method": f"L1-norm structured channel pruning, strength {strength:g} (importance ranked on the "
                                f"original weights), kept channels rounded to a multiple of {multiple}; residual "
                                "streams kept"}


# =========================================================================== PyTorch: low rank
def conv_rank(conv, ratio: float) -> int:
    full = min(conv.out_channels, conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1])
    return max(1, int(round(ratio * full)))


def lowrank_saves(cin_k: int, cout: int, r: int) -> bool:
    """Does rank ``r`` lower the MACs of a ``cin_k -> cout`` map (r (cin_k + cout) < cin_k cout)?"""
    return r * (cin_k + cout) < cin_k * cout


def factorize_conv(conv, r: int):
    """``conv`` as a k x k conv to ``r`` channels followed by a 1 x 1 conv (truncated SVD)."""
    import torch
    from torch import nn

    if conv.groups != 1:
        raise VariantError("grouped convolutions are not factorized")
    cout, cin, kh, kw = conv.weight.shape
    W = conv.weight.detach().double().reshape(cout, cin * kh * kw)
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    r = min(r, S.numel())
    s = S[:r].sqrt()
    first = nn.Conv2d(cin, r, (kh, kw), conv.stride, conv.padding, conv.dilation, bias=False,
                      padding_mode=conv.padding_mode)
    second = nn.Conv2d(r, cout, 1, bias=conv.bias is not None)
    first.weight.data = (s[:, None] * Vh[:r]).reshape(r, cin, kh, kw).to(conv.weight.dtype).contiguous()
    second.weight.data = (U[:, :r] * s[None, :]).reshape(cout, r, 1, 1).to(conv.weight.dtype).contiguous()
    if conv.bias is not None:
        second.bias.data = conv.bias.data.clone()
    return nn.Sequential(first, second)


def factorize_linear(lin, r: int):
    import torch
    from torch import nn

    W = lin.weight.detach().double()
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    r = min(r, S.numel())
    s = S[:r].sqrt()
    first = nn.Linear(lin.in_features, r, bias=False)
    second = nn.Linear(r, lin.out_features, bias=lin.bias is not None)
    first.weight.data = (s[:, None] * Vh[:r]).to(lin.weight.dtype).contiguous()
    second.weight.data = (U[:, :r] * s[None, :]).to(lin.weight.dtype).contiguous()
    if lin.bias is not None:
        second.bias.data = lin.bias.data.clone()
    return nn.Sequential(first, second)


def lowrank_model(module, ratio: float):
    """A copy of ``module`` whose dense convolutions and linear layers are factorized at
    rank ``ratio`` x full rank wherever that lowers their MACs; returns (model, info)."""
    from torch import nn

    if not 0 < ratio <= 1:
        raise VariantError(f"rank ratio {ratio} outside (0, 1]")
    m = copy.deepcopy(module).eval()
    targets = [(n, l) for n, l in m.named_modules() if isinstance(l, (nn.Conv2d, nn.Linear)) and n]
    done = skipped = 0
    for name, layer in targets:
        if isinstance(layer, nn.Conv2d):
            if layer.groups != 1:
                skipped += 1
                continue
            r = conv_rank(layer, ratio)
            cin_k = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
            if not lowrank_saves(cin_k, layer.out_channels, r):
                skipped += 1
                continue
            new = factorize_conv(layer, r)
        else:
            r = max(1, int(round(ratio * min(layer.in_features, layer.out_features))))
            if not lowrank_saves(layer.in_features, layer.out_features, r):
                skipped += 1
                continue
            new = factorize_linear(layer, r)
        parent_name, _, child = name.rpartition(".")
        parent = m.get_submodule(parent_name) if parent_name else m
        setattr(parent, child, new)
        done += 1
    return m.eval(), {"factorized_layers": done, "kept_layers": skipped,
                      "method": f"truncated SVD, rank = round({ratio:g} x full rank); k x k conv -> k x k conv (r) + "
                                "1 x 1 conv; linear -> two linear; only where it lowers the MACs"}


# =========================================================================== PyTorch: int8 (CPU)
def output_ranges(module, inputs: Iterable) -> dict[str, tuple[Any, Any]]:
    """Per-output-channel (min, max) of the output of every Conv2d / Linear of ``module``
    over ``inputs`` (calibration): name -> (1-D tensor, 1-D tensor)."""
    import torch
    from torch import nn

    stats: dict[str, tuple[Any, Any]] = {}
    hooks = []

    def hook(name):
        def f(_m, _inp, out):
            o = out.detach().float()
            ch = 1 if isinstance(_m, nn.Conv2d) else o.dim() - 1
            o = o.movedim(ch, 0).reshape(o.shape[ch], -1)
            lo, hi = o.amin(1), o.amax(1)
            if name in stats:
                lo, hi = torch.minimum(stats[name][0], lo), torch.maximum(stats[name][1], hi)
            stats[name] = (lo, hi)
        return f

    for n, l in module.named_modules():
        if isinstance(l, (nn.Conv2d, nn.Linear)):
            hooks.append(l.register_forward_hook(hook(n)))
    try:
        with torch.inference_mode():
            for x in inputs:
                module(x)
    finally:
        for h in hooks:
            h.remove()
    return stats


def out_qparams(out_range) -> tuple[float, int]:
    """(scale, zero point) of a quint8 output covering ``out_range`` = (min, max) (0 included);
    a single number r means (-r, r)."""
    if isinstance(out_range, (int, float)):
        lo, hi = -abs(float(out_range)), abs(float(out_range))
    else:
        lo, hi = float(out_range[0]), float(out_range[1])
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-8) / 255.0
    return scale, int(min(255, max(0, round(-lo / scale))))


def _qweight(w):
    import torch

    int8_classes()  # installs the deprecation-warning filter

    co = w.shape[0]
    scale = (w.detach().float().abs().reshape(co, -1).amax(1) / 127.0).clamp_min(1e-12).double()
    return torch.quantize_per_channel(w.detach().float(), scale, torch.zeros(co, dtype=torch.long), 0, torch.qint8)


class Int8Conv2d:
    """Marker base for isinstance checks (the real class is built lazily with torch)."""


def _int8_classes():
    import warnings

    import torch
    from torch import nn

    # torch >= 2.13 deprecates quantized tensor creation (still the only int8 CPU path here)
    warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")

    class _Int8Conv2d(nn.Module, Int8Conv2d):
        """int8 convolution on the CPU: weights int8 per channel, input quantized per tensor
        at run time, output requantized with a calibrated per-tensor scale."""

        def __init__(self, weight, bias, stride, padding, dilation, groups, out_range,
                     reduce_range: bool = True):
            super().__init__()
            self.packed = torch.ops.quantized.conv2d_prepack(
                _qweight(weight), None if bias is None else bias.detach().float(), list(stride), list(padding),
                list(dilation), int(groups))
            self.out_scale, self.out_zero_point = out_qparams(out_range)
            self.reduce_range = reduce_range
            self.out_channels = weight.shape[0]
            # int8 weights + fp32 bias + per-channel scale (fp64) and zero point (int64)
            self.nbytes = int(weight.numel() + (0 if bias is None else bias.numel() * 4) + weight.shape[0] * 16)

        @classmethod
        def from_conv(cls, conv, out_range, lo: int = 0, hi: int | None = None, reduce_range: bool = True):
            """Output channels [lo, hi) of ``conv`` (grouped: those groups' channels); ``out_range``:
            the calibrated (min, max) of those channels' outputs (or one number r: (-r, r))."""
            hi = conv.out_channels if hi is None else hi
            if conv.padding_mode != "zeros":
                raise VariantError("int8 convolution needs zero padding")
            groups = conv.groups
            if groups > 1:
                opg = conv.out_channels // groups
                if lo % opg or hi % opg:
                    raise VariantError("a grouped convolution's part must hold whole groups")
                groups = (hi - lo) // opg
            w = conv.weight[lo:hi]
            b = None if conv.bias is None else conv.bias[lo:hi]
            pad = conv.padding if isinstance(conv.padding, tuple) else (conv.padding, conv.padding)
            return cls(w, b, conv.stride, pad, conv.dilation, groups, out_range, reduce_range)

        def forward(self, x):
            qx = torch.quantize_per_tensor_dynamic(x.float().contiguous(), torch.quint8, self.reduce_range)
            return torch.ops.quantized.conv2d(qx, self.packed, self.out_scale, self.out_zero_point).dequantize()

    class _Int8Linear(nn.Module):
        """int8 linear layer on the CPU: ``quantized::linear_dynamic`` (fp32 output)."""

        def __init__(self, weight, bias, reduce_range: bool = True):
            super().__init__()
            self.packed = torch.ops.quantized.linear_prepack(_qweight(weight),
                                                              None if bias is None else bias.detach().float())
            self.reduce_range = reduce_range
            self.nbytes = int(weight.numel() + (0 if bias is None else bias.numel() * 4) + weight.shape[0] * 16)

        @classmethod
        def from_linear(cls, lin, lo: int = 0, hi: int | None = None, reduce_range: bool = True):
            hi = lin.out_features if hi is None else hi
            return cls(lin.weight[lo:hi], None if lin.bias is None else lin.bias[lo:hi], reduce_range)

        def forward(self, x):
            return torch.ops.quantized.linear_dynamic(x.float().contiguous(), self.packed, self.reduce_range)

    return _Int8Conv2d, _Int8Linear


_CLASSES: tuple | None = None


def int8_classes():
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _int8_classes()
    return _CLASSES


def int8_torch_model(module, calibration: Iterable, reduce_range: bool = True):
    """A CPU int8 copy of ``module``: every Conv2d and Linear replaced (see the module doc);
    ``calibration``: input tensors for the convolutions' output scales. Returns (model, info)."""
    from torch import nn

    Conv8, Lin8 = int8_classes()
    m = copy.deepcopy(module).cpu().float().eval()
    ranges = output_ranges(m, calibration)
    n = 0
    for name, layer in list(m.named_modules()):
        if not name or not isinstance(layer, (nn.Conv2d, nn.Linear)):
            continue
        if isinstance(layer, nn.Conv2d):
            if name not in ranges:
                continue  # never ran on the calibration inputs
            lo_, hi_ = ranges[name]
            new = Conv8.from_conv(layer, (float(lo_.min()), float(hi_.max())), reduce_range=reduce_range)
        else:
            new = Lin8.from_linear(layer, reduce_range=reduce_range)
        parent_name, _, child = name.rpartition(".")
        setattr(m.get_submodule(parent_name) if parent_name else m, child, new)
        n += 1
    return m.eval(), {"quantized_layers": n,
                      "method": "PyTorch x86 quantized kernels: int8 per-channel weights, activations per tensor "
                                "at run time, conv outputs requantized with a range calibrated on real frames; "
                                f"reduce_range={reduce_range}"}


# =========================================================================== PyTorch: helpers
class _Cast:
    pass


def cast_model(module, dtype_name: str):
    """``module`` computing in ``dtype_name`` ('fp16'/'fp32') with float32 inputs and outputs."""
    import torch
    from torch import nn

    dtype = {"fp16": torch.float16, "fp32": torch.float32}[dtype_name]

    class Cast(nn.Module, _Cast):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner.to(dtype)

        def forward(self, x):
            y = self.inner(x.to(dtype))
            return y.float() if isinstance(y, torch.Tensor) else type(y)(t.float() for t in y)

    return Cast(copy.deepcopy(module)).eval()


def param_bytes(module) -> int:
    """Bytes of parameters, buffers and packed int8 weights (in-memory model size)."""
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        total += t.numel() * t.element_size()
    for mod in module.modules():
        nb = getattr(mod, "nbytes", 0)
        total += int(nb) if isinstance(nb, int) else 0
    return int(total)


def count_macs(module, x) -> int:
    """MACs of Conv2d / Linear layers (``zoo.count_macs`` without the attention matmuls)."""
    from study.models.zoo import count_macs as zoo_macs

    return zoo_macs(module, x, attention=False)


def export_tflite(module, x, path: str | Path) -> dict[str, Any]:
    """Convert a PyTorch model to ``.tflite`` with litert-torch (raises VariantError where
    litert-torch is not installed)."""
    try:
        import litert_torch
    except ImportError as e:
        raise VariantError("not converted: litert-torch not installed") from e
    import warnings

    from study.engines.base import captured_native_stderr

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), captured_native_stderr():
        warnings.simplefilter("ignore")
        litert_torch.convert(module.eval(), (x,)).export(str(path))
    return {"method": "litert-torch conversion (fp32)"}


def export_onnx(module, x, path: str | Path) -> dict[str, Any]:
    """Export a PyTorch model to ONNX (TorchScript exporter, opset 17, as the models stage does)."""
    import warnings

    import torch

    from study.engines.base import captured_native_stderr

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), captured_native_stderr():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["output"])
    return {"method": "torch.onnx.export (TorchScript exporter, opset 17)"}


__all__ = ["VariantError", "cast_model", "count_macs", "densify_tflite",
           "export_onnx", "export_tflite", "factorize_conv", "factorize_linear", "int8_classes", "int8_torch_model",
           "l1_keep", "lowrank_model", "lowrank_saves", "n_keep", "out_qparams", "output_ranges", "param_bytes", "prune_model",
           "quantize_onnx", "quantize_tflite", "sha256_file", "tflite_signature", "tflite_weight_types"]
