"""The classic model zoo, defined here as PyTorch modules with the standard layer shapes.

torchvision and timm are not importable beside the pinned torch build, so the
architectures are written out: ResNet-50 (He et al. 2016), VGG-16 (configuration D),
MobileNetV2 (Sandler et al. 2018), Fast Style Transfer (Johnson et al. 2016, decoder
with upsample+conv as in Odena et al.'s fix, since ConvTranspose2d does not convert),
a YOLO-style anchor-free detector (YOLOv8n layout: Conv-BN-SiLU, C2f, SPPF, FPN/PAN
with upsample+concat) and a small ViT-style transformer encoder.

Weights are untrained: initialised from a seed, with batch-norm statistics set by a
few forward passes on seeded synthetic inputs so activations keep a sane scale.
Latency does not depend on weight values for dense kernels; fidelity on these models
is reported as output *agreement*, never as accuracy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F


# --------------------------------------------------------------------------- ResNet-50
class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + idt)


class ResNet50(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            stage = []
            for i in range(blocks):
                stage.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * Bottleneck.expansion
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# --------------------------------------------------------------------------- VGG-16
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers, cin = [], 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(4096, num_classes))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


# --------------------------------------------------------------------------- MobileNetV2
def _conv_bn(cin, cout, k, s, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = []
        if expand != 1:
            layers.append(_conv_bn(cin, hidden, 1, 1))
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, cout, 1, 1, act=False)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    CFG = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers, cin = [_conv_bn(3, 32, 3, 2)], 32
        for t, c, n, s in self.CFG:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_conv_bn(cin, 1280, 1, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# --------------------------------------------------------------------------- Fast Style Transfer
class ConvLayer(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        return self.conv(self.pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        y = F.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(y))


class UpsampleConv(nn.Module):
    def __init__(self, cin, cout, k, scale):
        super().__init__()
        self.scale = scale
        self.conv = ConvLayer(cin, cout, k, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


class FastStyleTransfer(nn.Module):
    """Johnson et al. 2016 image transformation network (as in PyTorch's fast_neural_style)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(3, 32, 9, 1), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.in2 = ConvLayer(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.in3 = ConvLayer(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True)
        self.res = nn.Sequential(*[ResidualBlock(128) for _ in range(5)])
        self.up1, self.in4 = UpsampleConv(128, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.up2, self.in5 = UpsampleConv(64, 32, 3, 2), nn.InstanceNorm2d(32, affine=True)
        self.conv_out = ConvLayer(32, 3, 9, 1)

    def forward(self, x):
        return self.after_conv1(self.conv1(x))

    def after_conv1(self, y):
        """The network after its first convolution (frame reuse keeps ``conv1``'s output)."""
        y = F.relu(self.in1(y))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = F.relu(self.in4(self.up1(y)))
        y = F.relu(self.in5(self.up2(y)))
        return self.conv_out(y)


# --------------------------------------------------------------------------- YOLO-style detector
class CBS(nn.Module):
    """Conv-BN-SiLU."""

    def __init__(self, cin, cout, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.silu(self.bn(self.conv(x)))


class YoloBottleneck(nn.Module):
    def __init__(self, c, shortcut=True):
        super().__init__()
        self.cv1, self.cv2 = CBS(c, c, 3), CBS(c, c, 3)
        self.add = shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, cin, cout, n=1, shortcut=True):
        super().__init__()
        self.c = cout // 2
        self.cv1 = CBS(cin, 2 * self.c, 1)
        self.cv2 = CBS((2 + n) * self.c, cout, 1)
        self.m = nn.ModuleList(YoloBottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).split((self.c, self.c), 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, cin, cout, k=5):
        super().__init__()
        hidden = cin // 2
        self.cv1, self.cv2 = CBS(cin, hidden, 1), CBS(hidden * 4, cout, 1)
        self.pool = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((x, y1, y2, self.pool(y2)), 1))


class YoloDetector(nn.Module):
    """YOLOv8n-like: backbone, FPN/PAN neck, decoupled anchor-free heads on strides 8/16/32.
    Output: [1, anchors, 4 + num_classes] (box distances and class logits per cell)."""

    def __init__(self, num_classes: int = 80):
        super().__init__()
        self.b0, self.b1 = CBS(3, 16, 3, 2), CBS(16, 32, 3, 2)
        self.b2 = C2f(32, 32, 1)
        self.b3, self.b4 = CBS(32, 64, 3, 2), C2f(64, 64, 2)
        self.b5, self.b6 = CBS(64, 128, 3, 2), C2f(128, 128, 2)
        self.b7, self.b8 = CBS(128, 256, 3, 2), C2f(256, 256, 1)
        self.sppf = SPPF(256, 256)
        self.n1 = C2f(256 + 128, 128, 1, shortcut=False)
        self.n2 = C2f(128 + 64, 64, 1, shortcut=False)
        self.d1, self.n3 = CBS(64, 64, 3, 2), C2f(64 + 128, 128, 1, shortcut=False)
        self.d2, self.n4 = CBS(128, 128, 3, 2), C2f(128 + 256, 256, 1, shortcut=False)
        self.no = 4 + num_classes
        self.heads = nn.ModuleList(
            nn.Sequential(CBS(c, 64, 3), CBS(64, 64, 3), nn.Conv2d(64, self.no, 1)) for c in (64, 128, 256))

    def top_down(self, x):
        """The backbone and the top-down half of the PAN neck: (n3, n4, p5); n3 feeds the
        stride-8 head."""
        x = self.b2(self.b1(self.b0(x)))
        p3 = self.b4(self.b3(x))
        p4 = self.b6(self.b5(p3))
        p5 = self.sppf(self.b8(self.b7(p4)))
        up = F.interpolate(p5, scale_factor=2, mode="nearest")
        n4 = self.n1(torch.cat((up, p4), 1))
        up = F.interpolate(n4, scale_factor=2, mode="nearest")
        return self.n2(torch.cat((up, p3), 1)), n4, p5

    def bottom_up(self, n3, n4, p5):
        """The bottom-up half of the neck: the inputs of the stride-16 and stride-32 heads."""
        o4 = self.n3(torch.cat((self.d1(n3), n4), 1))
        return o4, self.n4(torch.cat((self.d2(o4), p5), 1))

    def forward(self, x):
        n3, n4, p5 = self.top_down(x)
        o4, o5 = self.bottom_up(n3, n4, p5)
        outs = [h(f).flatten(2) for h, f in zip(self.heads, (n3, o4, o5))]
        return torch.cat(outs, 2).transpose(1, 2)


# --------------------------------------------------------------------------- Transformer encoder
class EncoderBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * mlp_ratio)
        self.fc2 = nn.Linear(dim * mlp_ratio, dim)

    def forward(self, x):
        b, n, d = x.shape
        h = self.heads
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // h)), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class TransformerEncoder(nn.Module):
    """ViT-style encoder: 16x16 patches of a 224x224 image, 6 blocks, width 192, 3 heads."""

    def __init__(self, img=224, patch=16, dim=192, depth=6, heads=3, num_classes=1000):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        n = (img // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[EncoderBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls.expand(x.shape[0], -1, -1), x), 1) + self.pos
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class ZooEntry:
    name: str
    builder: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    task: str
    paper_name: str
    notes: str = ""
    extra: dict = field(default_factory=dict)


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry("resnet50", ResNet50, (1, 3, 224, 224), "classification", "ResNet-50"),
        ZooEntry("vgg16", VGG16, (1, 3, 224, 224), "classification", "VGG-16"),
        ZooEntry("mobilenet_v2", MobileNetV2, (1, 3, 224, 224), "classification", "MobileNetV2"),
        ZooEntry("fast_style_transfer", FastStyleTransfer, (1, 3, 256, 256), "style_transfer",
                 "Fast Style Transfer", "decoder: nearest upsample + conv"),
        ZooEntry("yolo_det", YoloDetector, (1, 3, 320, 320), "detection", "YOLO-style detector",
                 "YOLOv8n layout, anchor-free heads, no NMS in graph"),
        ZooEntry("transformer_enc", TransformerEncoder, (1, 3, 224, 224), "classification",
                 "transformer encoder", "ViT-style, 6 blocks, width 192"),
    )
}


def _calibrate_norm_stats(model: nn.Module, shape: tuple[int, ...], seed: int, batches: int = 2) -> None:
    """Set batch-norm running statistics from seeded synthetic inputs (cumulative average)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    g = torch.Generator().manual_seed(seed + 1)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.rand((2,) + tuple(shape[1:]), generator=g))
    model.eval()


def build(name: str, seed: int = 0) -> nn.Module:
    """The zoo model ``name`` in eval mode, its weights a pure function of ``seed``."""
    if name not in ZOO:
        raise KeyError(f"unknown zoo model {name!r}; known: {sorted(ZOO)}")
    entry = ZOO[name]
    torch.manual_seed(seed)
    model = entry.builder()
    _calibrate_norm_stats(model, entry.input_shape, seed)
    return model.eval()


def example_input(name: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 2)
    return torch.rand(ZOO[name].input_shape, generator=g)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_hooked(model: nn.Module, x: torch.Tensor, hook_for: Callable[[nn.Module], Callable | None]) -> None:
    """One forward pass of ``model`` on ``x`` (inference mode) with the forward hook
    ``hook_for(m)`` on every module ``m`` for which it returns one; the hooks are removed
    afterwards, also when the pass fails."""
    hooks = [m.register_forward_hook(h) for m in model.modules() if (h := hook_for(m)) is not None]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in hooks:
            h.remove()


def count_macs(model: nn.Module, x: torch.Tensor, attention: bool = True) -> int:
    """Multiply-accumulates of conv and linear layers (plus, with ``attention``, the
    attention matmuls of each ``EncoderBlock``), by forward hooks."""
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        total += out.numel() * m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)

    def lin_hook(m, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    def att_hook(m, inp, out):
        nonlocal total
        b, n, d = inp[0].shape
        total += 2 * b * n * n * d

    def hook_for(m):
        if isinstance(m, nn.Conv2d):
            return conv_hook
        if isinstance(m, nn.Linear):
            return lin_hook
        return att_hook if attention and isinstance(m, EncoderBlock) else None

    forward_hooked(model, x, hook_for)
    return int(total)
