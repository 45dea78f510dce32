"""Reading and slicing ``.tflite`` graphs.

* ``graph_ops``: the operators of the main subgraph (type, tensors).
* ``xnnpack_partitions``: which operators LiteRT's default CPU delegate (XNNPACK)
  took, read from the interpreter's execution plan (``DELEGATE`` nodes).
* ``gpu_static_check``: TFLite's own GPU-delegate compatibility checker
  (``ModelAnalyzer``), per operator.
* ``slice_model``: a model holding only some operators of another (with just the
  buffers they use), so that a single operator or partition can be placed and
  timed on its own. The Python interpreter has no per-operator profiler; timing
  slices is the method docs/methods.md names for LiteRT on a host.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from study.engines.base import captured_native_stderr

# TFLite TensorType enum -> numpy dtype (schema.fbs order)
TFLITE_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
                 9: np.int8, 10: np.float64, 12: np.uint64, 15: np.uint32, 16: np.uint16}
CONTROL_FLOW_OPS = {"WHILE", "IF", "CALL_ONCE", "CALL", "STABLEHLO_WHILE", "STABLEHLO_CASE"}


@dataclass(frozen=True)
class OpInfo:
    index: int
    op_type: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def read_model(path: str | Path):
    from ai_edge_litert.tools import flatbuffer_utils as fu

    return fu.read_model(str(path))


@lru_cache(maxsize=16)
def _cached_model(path: str, mtime: float):
    return read_model(path)


def model_object(path: str | Path):
    p = Path(path)
    return _cached_model(str(p), p.stat().st_mtime)


def op_type_name(model, opcode_index: int) -> str:
    from ai_edge_litert.tools import flatbuffer_utils as fu

    name = fu.opcode_to_name(model, opcode_index)
    if name is None or name == "CUSTOM":
        code = model.operatorCodes[opcode_index]
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        return f"CUSTOM:{custom}" if custom else "CUSTOM"
    return name


def graph_ops(path: str | Path, subgraph: int = 0) -> list[OpInfo]:
    m = model_object(path)
    sg = m.subgraphs[subgraph]
    return [OpInfo(i, op_type_name(m, op.opcodeIndex), tuple(int(t) for t in (op.inputs if op.inputs is not None else [])),
                   tuple(int(t) for t in (op.outputs if op.outputs is not None else [])))
            for i, op in enumerate(sg.operators or [])]


def is_constant(model, tensor) -> bool:
    buf = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    return buf is not None and ((buf.data is not None and len(buf.data) > 0) or bool(buf.size))


def io_signature(path: str | Path) -> tuple[list[tuple[tuple[int, ...], np.dtype]], list[tuple[tuple[int, ...], np.dtype]]]:
    m = model_object(path)
    sg = m.subgraphs[0]

    def sig(idx):
        t = sg.tensors[idx]
        return tuple(int(s) for s in t.shape), np.dtype(TFLITE_DTYPES.get(t.type, np.float32))

    return [sig(i) for i in sg.inputs], [sig(i) for i in sg.outputs]


# --------------------------------------------------------------------------- constant operators
@lru_cache(maxsize=32)
def _constant_ops(path: str, mtime: float) -> frozenset[int]:
    m = model_object(path)
    sg = m.subgraphs[0]
    const = {i for i, t in enumerate(sg.tensors) if is_constant(m, t)}
    out = set()
    for o in graph_ops(path):  # a .tflite lists its operators in execution order
        ins = [t for t in o.inputs if t >= 0]
        if ins and all(t in const for t in ins):
            out.add(o.index)
            const.update(o.outputs)
    return frozenset(out)


def constant_ops(path: str | Path) -> frozenset[int]:
    """Operators of subgraph 0 computed from constants alone, transitively (``DEQUANTIZE`` of
    fp16 weights, ``DENSIFY`` of sparse weights): evaluated once at initialisation, their
    outputs are weights of the operators they feed."""
    p = Path(path)
    return _constant_ops(str(p), p.stat().st_mtime)


def with_constant_producers(path: str | Path, op_indices: list[int]) -> list[int]:
    """``op_indices`` plus the constant operators that compute their weights (transitively).

    A single-operator slice of a convolution whose fp16 weights pass through a
    ``DEQUANTIZE`` would otherwise read its weights as a runtime input: GPU delegates
    refuse such a convolution and CPU kernels repack the weights on every run.
    """
    ops = graph_ops(path)
    const = constant_ops(path)
    producer = {t: o.index for o in ops for t in o.outputs}
    sel, stack = set(op_indices), list(op_indices)
    while stack:
        for t in ops[stack.pop()].inputs:
            p = producer.get(t)
            if p is not None and p in const and p not in sel:
                sel.add(p)
                stack.append(p)
    return sorted(sel)


# --------------------------------------------------------------------------- XNNPACK partitions
def partition_membership(ops: list[OpInfo], delegate_nodes: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> dict[int, int]:
    """Map original op index -> delegate partition number.

    A partition replaces a convex set of nodes by one DELEGATE node whose inputs are
    the tensors the set reads from outside and whose outputs are those it exports.
    Walking back from each partition's outputs through producers until its input
    tensors recovers the set.
    """
    producer = {}
    for op in ops:
        for t in op.outputs:
            producer[t] = op.index
    member: dict[int, int] = {}
    for pnum, (d_in, d_out) in enumerate(delegate_nodes):
        boundary = set(d_in)
        stack = [producer[t] for t in d_out if t in producer]
        while stack:
            i = stack.pop()
            if i in member:
                continue
            member[i] = pnum
            for t in ops[i].inputs:
                if t < 0 or t in boundary:
                    continue
                if t in producer:
                    stack.append(producer[t])
    return member


def xnnpack_partitions(path: str | Path, threads: int = 1) -> tuple[list[OpInfo], dict[int, int]]:
    """Operators of the model and, for each delegated one, its XNNPACK partition number."""
    from ai_edge_litert.interpreter import Interpreter

    with captured_native_stderr():
        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
        details = it._get_ops_details()  # noqa: SLF001 - the only view of the execution plan
    ops = graph_ops(path)
    n = len(ops)
    delegates = [(tuple(int(t) for t in d["inputs"]), tuple(int(t) for t in d["outputs"]))
                 for d in details[n:] if d["op_name"] == "DELEGATE"]
    return ops, partition_membership(ops, delegates)


# --------------------------------------------------------------------------- GPU static checker
_OP_LINE = re.compile(r"^\s*Op#(\d+)\s+([A-Za-z0-9_:]+)\(")
_NODES = re.compile(r"issues at nodes? ([\d, ]+)")


def gpu_static_check(path: str | Path) -> tuple[str, dict[int, str]]:
    """Run TFLite's GPU compatibility checker. Returns (verdict line, {op index: warning})."""
    from ai_edge_litert import _pywrap_analyzer_wrapper as aw

    with captured_native_stderr():
        text = aw.ModelAnalyzer(str(path), True, True)
    warnings: dict[int, str] = {}
    current = None
    in_main = False
    for line in text.splitlines():
        if line.startswith("Subgraph#"):
            in_main = line.startswith("Subgraph#0")
            current = None
            continue
        m = _OP_LINE.match(line)
        if m and in_main:
            current = int(m.group(1))
            continue
        if "GPU COMPATIBILITY WARNING" in line:
            msg = line.split("GPU COMPATIBILITY WARNING:", 1)[-1].strip()
            nodes = _NODES.search(line)
            if nodes and "Subgraph#0" in line:
                for n in nodes.group(1).split(","):
                    if n.strip():
                        warnings.setdefault(int(n), msg)
            elif current is not None and in_main:
                warnings.setdefault(current, msg)
    verdict = next((ln.strip() for ln in text.splitlines() if "compatib" in ln.lower() and ln.startswith("Your")),
                   "no verdict printed")
    return verdict, warnings


# --------------------------------------------------------------------------- slicing
def slice_model(path: str | Path, op_indices: list[int]) -> bytes:
    """A standalone model of the given operators of subgraph 0.

    Inputs: the non-constant tensors the slice reads and does not produce.
    Outputs: tensors the slice produces that the rest of the graph (or the graph's
    outputs) reads; for a single operator, all its outputs. Only the buffers of the
    slice's constant tensors are kept.
    """
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils as fu

    m = model_object(path)
    sg = m.subgraphs[0]
    sel = sorted(set(op_indices))
    chosen = [sg.operators[i] for i in sel]
    names = [op_type_name(m, op.opcodeIndex) for op in chosen]
    if any(n in CONTROL_FLOW_OPS for n in names):
        raise ValueError(f"cannot slice control-flow operators {names}")
    produced = {int(t) for op in chosen for t in (op.outputs if op.outputs is not None else [])}
    read_inside = [int(t) for op in chosen for t in (op.inputs if op.inputs is not None else []) if t >= 0]
    sel_set = set(sel)
    read_outside = {int(t) for i, op in enumerate(sg.operators) if i not in sel_set
                    for t in (op.inputs if op.inputs is not None else []) if t >= 0}
    graph_outputs = {int(t) for t in sg.outputs}

    tmap: dict[int, int] = {}
    tensors, buffers = [], [fb.BufferT()]

    def add_tensor(t: int) -> int:
        if t in tmap:
            return tmap[t]
        src = sg.tensors[t]
        nt = copy.copy(src)
        if is_constant(m, src):
            buffers.append(m.buffers[src.buffer])
            nt.buffer = len(buffers) - 1
        else:
            nt.buffer = 0
        tensors.append(nt)
        tmap[t] = len(tensors) - 1
        return tmap[t]

    inputs = []
    for t in read_inside:
        if t not in produced and not is_constant(m, sg.tensors[t]) and t not in inputs:
            inputs.append(t)
    if len(sel) == 1:
        outputs = sorted(produced)
    else:
        outputs = sorted(t for t in produced if t in read_outside or t in graph_outputs) or sorted(produced)
    new_ops = []
    for op in chosen:
        nop = copy.copy(op)
        nop.inputs = [add_tensor(int(t)) if t >= 0 else -1 for t in (op.inputs if op.inputs is not None else [])]
        nop.outputs = [add_tensor(int(t)) for t in (op.outputs if op.outputs is not None else [])]
        nop.intermediates = None
        new_ops.append(nop)
    for t in inputs + outputs:
        add_tensor(t)

    nsg = fb.SubGraphT()
    nsg.tensors = tensors
    nsg.operators = new_ops
    nsg.inputs = [tmap[t] for t in inputs]
    nsg.outputs = [tmap[t] for t in outputs]
    nsg.name = "slice"
    sig = fb.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs, sig.outputs = [], []
    for k, t in enumerate(nsg.inputs):
        tm = fb.TensorMapT()
        tm.name, tm.tensorIndex = f"in{k}", t
        sig.inputs.append(tm)
    for k, t in enumerate(nsg.outputs):
        tm = fb.TensorMapT()
        tm.name, tm.tensorIndex = f"out{k}", t
        sig.outputs.append(tm)

    nm = fb.ModelT()
    nm.version = m.version
    nm.operatorCodes = m.operatorCodes
    nm.subgraphs = [nsg]
    nm.buffers = buffers
    nm.description = f"slice of {Path(path).name}: ops {sel[0]}..{sel[-1]}"
    nm.signatureDefs = [sig]
    return bytes(fu.convert_object_to_bytearray(nm))
