"""Opening a user's model file before anything is built or measured with it.

``check_user_model`` parses a ``.tflite`` (the flatbuffer: subgraphs, tensors, inputs and
outputs) or an ``.onnx`` (the protobuf: graph, nodes, inputs and outputs) and raises
``ParamError`` with one line naming the file and the problem: an empty file, a truncated or
corrupt one, a text file with a model's name, a graph without inputs or outputs. It runs in
``validate`` (and again at the start of the ``models`` stage), in well under a second for
the models of this study.
"""
from __future__ import annotations

from pathlib import Path

from study import paths
from study.schema import ParamError

TFLITE_ID = b"TFL3"   # the flatbuffer file identifier of TFLite's schema (bytes 4..8)


def _first_line(e: BaseException) -> str:
    kind = type(e).__name__
    if kind == "error":                       # struct.error, zlib.error, ...
        kind = f"{type(e).__module__}.{kind}"
    text = str(e).strip().splitlines()
    return f"{kind}: {text[0][:160]}" if text else kind


def check_user_model(rel: str, key: str = "models.user") -> dict[str, list]:
    """The file ``rel`` (relative to the repository) opened and parsed; returns its inputs and
    outputs as ``{"inputs": [(name, shape)], "outputs": [...]}``."""
    p = paths.ROOT / rel
    where = f"{key}: {rel}"
    if p.suffix not in (".tflite", ".onnx"):
        raise ParamError(f"{where}: a .tflite or .onnx file is expected")
    try:
        p.resolve().relative_to(paths.USER_MODELS.resolve())
    except ValueError:
        raise ParamError(f"{where}: user models live under {paths.USER_MODELS.relative_to(paths.ROOT)}/ "
                         "(a DVC dependency)") from None
    if not p.is_file():
        raise ParamError(f"{where}: no such file")
    size = p.stat().st_size
    if size == 0:
        raise ParamError(f"{where}: empty file (0 bytes)")
    return _check_tflite(p, where, size) if p.suffix == ".tflite" else _check_onnx(p, where)


def _check_tflite(p: Path, where: str, size: int) -> dict[str, list]:
    with open(p, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_ID:
        kind = "a text file" if _looks_like_text(p) else f"its bytes 4..8 are {head[4:8]!r}"
        raise ParamError(f"{where}: not a TFLite flatbuffer (no '{TFLITE_ID.decode()}' identifier: {kind})")
    try:
        from ai_edge_litert.tools import flatbuffer_utils as fu

        model = fu.read_model(str(p))
        sg = model.subgraphs[0]
        ins = [(_name(sg.tensors[i].name), [int(s) for s in sg.tensors[i].shape]) for i in sg.inputs]
        outs = [(_name(sg.tensors[i].name), [int(s) for s in sg.tensors[i].shape]) for i in sg.outputs]
        n_ops = len(sg.operators or [])
        for b in model.buffers or []:
            if getattr(b, "offset", 0) and b.offset + b.size > size:
                raise ValueError(f"a buffer ends at byte {b.offset + b.size} of a {size}-byte file")
    except ParamError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure is the file's problem
        raise ParamError(f"{where}: truncated or corrupt TFLite flatbuffer ({size} bytes; {_first_line(e)})") from None
    if not ins or not outs:
        raise ParamError(f"{where}: the TFLite graph has no {'inputs' if not ins else 'outputs'}")
    if n_ops == 0:
        raise ParamError(f"{where}: the TFLite graph has no operators")
    return {"inputs": ins, "outputs": outs}


def _check_onnx(p: Path, where: str) -> dict[str, list]:
    try:
        import onnx

        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # noqa: BLE001
        kind = "a text file, " if _looks_like_text(p) else ""
        raise ParamError(f"{where}: not an ONNX model ({kind}{_first_line(e)})") from None
    g = model.graph
    if not g.node:
        raise ParamError(f"{where}: not an ONNX model (no graph nodes: empty, truncated or another format)")
    inits = {i.name for i in g.initializer}
    ins = [(i.name, _onnx_shape(i)) for i in g.input if i.name not in inits]
    outs = [(o.name, _onnx_shape(o)) for o in g.output]
    if not ins or not outs:
        raise ParamError(f"{where}: the ONNX graph has no {'inputs' if not ins else 'outputs'}")
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001
        raise ParamError(f"{where}: invalid ONNX model ({_first_line(e)})") from None
    return {"inputs": ins, "outputs": outs}


def _onnx_shape(value_info) -> list:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]


def _name(v) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def _looks_like_text(p: Path) -> bool:
    with open(p, "rb") as f:
        head = f.read(512)
    if not head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c >= 9 for c in head)
