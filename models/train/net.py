# mypy: ignore-errors
"""A small YOLOv8-style anchor-free detector: conv-bn-silu backbone with C2f blocks, FPN/PAN neck,
decoupled head at strides 8, 16 and 32.

Training mode returns the raw per-level maps; export mode (``model.export = True``) returns the
Ultralytics layout ``[1, 4 + nc, N]``: ``cx, cy, w, h`` in input pixels, then sigmoid class
scores, no objectness. Boxes are distances from each anchor centre to the four sides, in
strides (softplus), so the decode is a handful of element-wise ops.
"""

from __future__ import annotations

import math

import torch
from torch import nn

STRIDES = (8, 16, 32)


class Conv(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1, self.cv2 = Conv(c, c, 3), Conv(c, c, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """Split, ``n`` bottlenecks on one half, concatenate every intermediate, fuse (YOLOv8)."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.c = c_out // 2
        self.cv1 = Conv(c_in, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c_out, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        c = c_in // 2
        self.cv1, self.cv2 = Conv(c_in, c, 1), Conv(c * 4, c_out, 1)
        self.m = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Head(nn.Module):
    """Decoupled: a box branch (4 distances) and a class branch (nc logits) per level."""

    def __init__(self, nc: int, channels: tuple[int, int, int], c_box: int = 48, c_cls: int = 64) -> None:
        super().__init__()
        self.nc = nc
        self.box = nn.ModuleList(
            nn.Sequential(Conv(c, c_box, 3), Conv(c_box, c_box, 3), nn.Conv2d(c_box, 4, 1)) for c in channels
        )
        self.cls = nn.ModuleList(
            nn.Sequential(Conv(c, c_cls, 3), Conv(c_cls, c_cls, 3), nn.Conv2d(c_cls, nc, 1)) for c in channels
        )

    def init_biases(self, input_hw: tuple[int, int]) -> None:
        for box, cls, s in zip(self.box, self.cls, STRIDES, strict=True):
            nn.init.constant_(box[-1].bias, 0.5)  # softplus(0.5) ~ 1 stride each side
            prior = 5 / self.nc / (input_hw[0] * input_hw[1] / s**2)  # ~5 objects per image (YOLOv8)
            nn.init.constant_(cls[-1].bias, math.log(prior / (1 - prior)))


class Detector(nn.Module):
    def __init__(self, nc: int = 6, widths: tuple[int, ...] = (16, 32, 64, 96, 128)) -> None:
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.nc = nc
        self.export = False
        self.stem = Conv(3, w0, 3, 2)
        self.s2 = nn.Sequential(Conv(w0, w1, 3, 2), C2f(w1, w1, 1))
        self.s3 = nn.Sequential(Conv(w1, w2, 3, 2), C2f(w2, w2, 2))  # P3, stride 8
        self.s4 = nn.Sequential(Conv(w2, w3, 3, 2), C2f(w3, w3, 2))  # P4, stride 16
        self.s5 = nn.Sequential(Conv(w3, w4, 3, 2), C2f(w4, w4, 1), SPPF(w4, w4))  # P5, stride 32
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.td4 = C2f(w4 + w3, w3, 1, shortcut=False)
        self.td3 = C2f(w3 + w2, w2, 1, shortcut=False)
        self.down3 = Conv(w2, w2, 3, 2)
        self.bu4 = C2f(w2 + w3, w3, 1, shortcut=False)
        self.down4 = Conv(w3, w3, 3, 2)
        self.bu5 = C2f(w3 + w4, w4, 1, shortcut=False)
        self.head = Head(nc, (w2, w3, w4))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.s3(self.s2(self.stem(x)))
        p4 = self.s4(p3)
        p5 = self.s5(p4)
        t4 = self.td4(torch.cat((self.up(p5), p4), 1))
        n3 = self.td3(torch.cat((self.up(t4), p3), 1))
        n4 = self.bu4(torch.cat((self.down3(n3), t4), 1))
        n5 = self.bu5(torch.cat((self.down4(n4), p5), 1))
        return [n3, n4, n5]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[tuple[torch.Tensor, torch.Tensor]]:
        feats = self.features(x)
        raw = [(box(f), cls(f)) for f, box, cls in zip(feats, self.head.box, self.head.cls, strict=True)]
        if not self.export:
            return raw
        return decode(raw, export=True)


def anchor_grid(shapes: list[tuple[int, int]], device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres ``(N, 2)`` in input pixels and their strides ``(N, 1)``, level by level, row-major."""
    points, strides = [], []
    for (h, w), s in zip(shapes, STRIDES, strict=True):
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        points.append((torch.stack((xs, ys), -1).reshape(-1, 2).float() + 0.5) * s)
        strides.append(torch.full((h * w, 1), float(s), device=device))
    return torch.cat(points), torch.cat(strides)


def decode(raw: list[tuple[torch.Tensor, torch.Tensor]], export: bool = False) -> torch.Tensor:
    """Per-level ``(box, cls)`` maps to boxes and scores.

    Training: ``(B, N, 4 + nc)`` with ``x1, y1, x2, y2`` and class *logits*. Export:
    ``(B, 4 + nc, N)`` with ``cx, cy, w, h`` and sigmoid scores (the Ultralytics layout).
    """
    shapes = [(int(b.shape[2]), int(b.shape[3])) for b, _ in raw]
    box = torch.cat([b.flatten(2) for b, _ in raw], 2)  # (B, 4, N)
    cls = torch.cat([c.flatten(2) for _, c in raw], 2)  # (B, nc, N)
    points, strides = anchor_grid(shapes, box.device)
    dist = nn.functional.softplus(box) * strides.T  # (B, 4, N): left, top, right, bottom
    if export:
        lt, rb = dist[:, :2], dist[:, 2:]
        centre = points.T + (rb - lt) / 2
        return torch.cat((centre, lt + rb, cls.sigmoid()), 1)
    xy1 = points.T - dist[:, :2]
    xy2 = points.T + dist[:, 2:]
    return torch.cat((xy1, xy2, cls), 1).transpose(1, 2)


def build(nc: int = 6, input_hw: tuple[int, int] = (320, 640)) -> Detector:
    model = Detector(nc)
    model.head.init_biases(input_hw)
    return model


def fuse(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm into its conv (for export)."""
    for m in model.modules():
        if isinstance(m, Conv) and isinstance(m.bn, nn.BatchNorm2d):
            conv, bn = m.conv, m.bn
            w = conv.weight
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True
            )
            fused.weight.data = w.data * scale[:, None, None, None]
            fused.bias.data = bn.bias.data - bn.running_mean * scale
            m.conv, m.bn = fused, nn.Identity()
    return model
