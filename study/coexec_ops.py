"""Which operators a channel-wise CPU+GPU co-execution (muLayer style) can split.

One definition, shared by finding 1 (the share of operators that parallel execution
cannot split, claim C1) and finding 2's co-execution engine (the operators it
actually splits). muLayer (Kim et al., EuroSys'19) splits the output channels of
convolution and fully connected layers between the processors; every other
operator runs whole on one processor and is counted as unsupported for parallel
execution. Depthwise and grouped convolutions split too (by channel groups).
"""
from __future__ import annotations

# LiteRT / TFLite builtin operator names
TFLITE_SPLITTABLE = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"})
# ONNX operator types
ONNX_SPLITTABLE = frozenset({"Conv", "Gemm", "ConvTranspose", "FusedConv", "FusedGemm", "QLinearConv", "ConvInteger"})
# ONNX matrix products that are a fully connected layer when their second input is a constant
# weight (a linear layer on a 3-D input exports as MatMul + Add, not Gemm); a product of two
# activations (attention's Q K^T) has no weight to split and stays unsplittable
ONNX_WEIGHTED_MATMUL = frozenset({"MatMul", "MatMulInteger", "QLinearMatMul"})
# PyTorch aten operators (top-level calls as torch.profiler records them)
TORCH_SPLITTABLE = frozenset({"aten::conv2d", "aten::linear", "aten::addmm", "aten::convolution",
                              "aten::_convolution", "aten::mkldnn_convolution"})
# PyTorch module classes the co-execution engine splits
TORCH_MODULES = ("Conv2d", "Linear")

SPLITTABLE = {"litert": TFLITE_SPLITTABLE, "onnxruntime": ONNX_SPLITTABLE, "torch": TORCH_SPLITTABLE}


def splittable(engine: str, op_type: str, constant_weight: bool = False) -> bool:
    """True if a channel-wise split can run this operator on two processors at once.
    ``constant_weight``: the operator's weight input is a constant (ONNX MatMul as a linear layer)."""
    if engine == "onnxruntime" and constant_weight and op_type in ONNX_WEIGHTED_MATMUL:
        return True
    return op_type in SPLITTABLE.get(engine, frozenset())
