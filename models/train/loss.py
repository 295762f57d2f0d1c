# mypy: ignore-errors
"""Detection loss: a task-aligned assigner (TAL-lite, as in YOLOv8), CIoU box loss and BCE class loss.

For each ground-truth box, candidate anchors are those whose centre lies inside the box (or
within one stride of its centre, so tiny objects always get some). Among them the ``topk`` with
the best alignment ``score**alpha * iou**beta`` become positives; an anchor claimed by several
boxes goes to the one it overlaps most. Class targets are the alignment, normalised so each
box's best anchor gets that anchor's IoU (soft labels), and weight the box loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.train.net import anchor_grid, decode


def box_iou(a: torch.Tensor, b: torch.Tensor, ciou: bool = False, eps: float = 1e-7) -> torch.Tensor:
    """IoU (or CIoU) of broadcastable ``(..., 4)`` ``x1, y1, x2, y2`` boxes."""
    w1, h1 = (a[..., 2] - a[..., 0]).clamp(min=eps), (a[..., 3] - a[..., 1]).clamp(min=eps)
    w2, h2 = (b[..., 2] - b[..., 0]).clamp(min=eps), (b[..., 3] - b[..., 1]).clamp(min=eps)
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = iw * ih
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    if not ciou:
        return iou
    cw = torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])
    ch = torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])
    c2 = cw**2 + ch**2 + eps
    rho2 = (
        (b[..., 0] + b[..., 2] - a[..., 0] - a[..., 2]) ** 2 + (b[..., 1] + b[..., 3] - a[..., 1] - a[..., 3]) ** 2
    ) / 4
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@torch.no_grad()
def assign(
    pred_boxes: torch.Tensor,
    pred_scores: torch.Tensor,
    points: torch.Tensor,
    strides: torch.Tensor,
    labels: torch.Tensor,
    topk: int = 10,
    alpha: float = 1.0,
    beta: float = 6.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets for one batch.

    ``pred_boxes`` ``(B, N, 4)``, ``pred_scores`` ``(B, N, nc)`` (probabilities), ``points`` ``(N, 2)``,
    ``strides`` ``(N, 1)``, ``labels`` ``(B, G, 5)`` (class, x1, y1, x2, y2; class -1 pads).
    Returns target boxes ``(B, N, 4)``, soft class targets ``(B, N, nc)`` and the positive mask ``(B, N)``.
    """
    b, n, nc = pred_scores.shape
    g = labels.shape[1]
    valid = labels[..., 0] >= 0  # (B, G)
    cls = labels[..., 0].clamp(min=0).long()
    gt = labels[..., 1:]  # (B, G, 4)
    px, py = points[:, 0].view(1, 1, n), points[:, 1].view(1, 1, n)
    inside = (px > gt[..., 0:1]) & (px < gt[..., 2:3]) & (py > gt[..., 1:2]) & (py < gt[..., 3:4])
    cx, cy = (gt[..., 0:1] + gt[..., 2:3]) / 2, (gt[..., 1:2] + gt[..., 3:4]) / 2
    s = strides.view(1, 1, n)
    near = ((px - cx).abs() < s) & ((py - cy).abs() < s)
    cand = (inside | near) & valid[..., None]  # (B, G, N)

    iou = box_iou(gt[:, :, None, :], pred_boxes[:, None, :, :]).clamp(min=0)  # (B, G, N)
    score = pred_scores.gather(2, cls[:, None, :].expand(b, n, g)).permute(0, 2, 1)  # (B, G, N)
    metric = score.pow(alpha) * iou.pow(beta) * cand
    k = min(topk, n)
    top = metric.topk(k, dim=2).indices
    chosen = torch.zeros_like(cand)
    chosen.scatter_(2, top, True)
    pos = chosen & cand & (metric > 0)
    # guarantee at least the best candidate (by IoU, then centre distance) when all metrics are 0
    none = cand.any(2) & ~pos.any(2)
    if none.any():
        dist = (px - cx) ** 2 + (py - cy) ** 2
        fallback = torch.where(cand, dist, torch.full_like(dist, float("inf"))).argmin(2)
        pos[none] = torch.nn.functional.one_hot(fallback[none], n).bool()
    # an anchor claimed by several boxes goes to the one it overlaps most
    multi = pos.sum(1) > 1  # (B, N)
    if multi.any():
        best = torch.where(pos, iou, torch.full_like(iou, -1.0)).argmax(1)  # (B, N)
        keep = torch.nn.functional.one_hot(best, g).permute(0, 2, 1).bool()
        pos = torch.where(multi[:, None, :], pos & keep, pos)
    fg = pos.any(1)  # (B, N)
    owner = pos.float().argmax(1)  # (B, N)
    t_boxes = gt.gather(1, owner[..., None].expand(b, n, 4))
    t_cls = cls.gather(1, owner)
    metric = metric * pos
    norm = (metric * (iou * pos).amax(2, keepdim=True) / (metric.amax(2, keepdim=True) + 1e-9)).amax(1)  # (B, N)
    t_scores = torch.nn.functional.one_hot(t_cls, nc).float() * (norm * fg)[..., None]
    return t_boxes, t_scores, fg


class DetectionLoss(nn.Module):
    def __init__(self, box_gain: float = 7.5, cls_gain: float = 1.0) -> None:
        super().__init__()
        self.box_gain, self.cls_gain = box_gain, cls_gain
        self.bce = nn.BCEWithLogitsLoss(reduction="none")

    def forward(self, raw: list[tuple[torch.Tensor, torch.Tensor]], labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
        pred = decode(raw)  # (B, N, 4 + nc): boxes and logits
        boxes, logits = pred[..., :4], pred[..., 4:]
        points, strides = anchor_grid([(int(b.shape[2]), int(b.shape[3])) for b, _ in raw], pred.device)
        t_boxes, t_scores, fg = assign(boxes.detach(), logits.detach().sigmoid(), points, strides, labels)
        total = t_scores.sum().clamp(min=1.0)
        loss_cls = self.bce(logits, t_scores).sum() / total
        if fg.any():
            weight = t_scores.sum(-1)[fg]
            loss_box = ((1.0 - box_iou(boxes[fg], t_boxes[fg], ciou=True)) * weight).sum() / total
        else:
            loss_box = boxes.sum() * 0.0
        loss = self.box_gain * loss_box + self.cls_gain * loss_cls
        return loss, {"box": float(loss_box), "cls": float(loss_cls), "pos": int(fg.sum())}
