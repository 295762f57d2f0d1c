# mypy: ignore-errors
"""Train the X-ray detector on synthetic scans, on CPU, for a fixed number of iterations.

    python -m models.train.train --out models/ --seed 0 --iters 1600

Reproducible from ``--seed`` (same thread count): the model init, the sample order and every
sample (``models.train.data.render_sample(seed, index)``) derive from it. Writes the checkpoint
(``--ckpt``, EMA weights) and exports ``<out>/xray-det.onnx`` at the end.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from drivers.sim.xray import CLASSES
from models.train.data import SyntheticScans, collate
from models.train.export import export
from models.train.loss import DetectionLoss
from models.train.net import build
from models.train.warmstart import warm_start


class EMA:
    """Exponential moving average of the weights, ramped up over the first iterations (YOLOv5/v8)."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.9995, tau: float = 500.0) -> None:
        self.model = deepcopy(model).eval()
        self.decay, self.tau, self.updates = decay, tau, 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
            else:
                v.copy_(msd[k])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("models"), help="folder for xray-det.onnx")
    ap.add_argument("--ckpt", type=Path, default=Path("build/train/xray-det.pt"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iters", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--imgsz", type=int, nargs=2, default=(320, 640), metavar=("H", "W"))
    ap.add_argument("--crop", type=int, default=320, help="train on crops this wide (0: whole input)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="loader processes rendering scenes")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--init", type=Path, default=None, help="start from this checkpoint's EMA weights (fine-tuning)")
    ap.add_argument("--init-onnx", type=Path, default=None,
                    help="start from an exported ONNX model of this architecture (BatchNorms unfolded, see warmstart)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    input_hw = (args.imgsz[0], args.imgsz[1])
    model = build(len(CLASSES), input_hw)
    if args.init is not None:
        model.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=False)["ema"])
    if args.init_onnx is not None:  # statistics from scans of another seed stream than the training samples
        calib = SyntheticScans(args.seed + 7_919, 16, input_hw, None)
        images, _ = collate([calib[i] for i in range(len(calib))])
        print(f"warm start from {args.init_onnx}: max output change {warm_start(model, args.init_onnx, images):.2e}")
    model = model.to(memory_format=torch.channels_last)
    ema = EMA(model)
    criterion = DetectionLoss()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.999),
    )
    warmup = min(150, args.iters // 10)

    def lr_at(i: int) -> float:
        if i < warmup:
            return args.lr * (i + 1) / warmup
        t = (i - warmup) / max(1, args.iters - warmup)
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))

    data = SyntheticScans(args.seed, args.iters * args.batch, input_hw, args.crop or None)
    loader = DataLoader(
        data, batch_size=args.batch, shuffle=False, num_workers=args.workers, collate_fn=collate,
        persistent_workers=args.workers > 0, prefetch_factor=4 if args.workers else None,
    )  # fmt: skip
    print(
        f"training {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params, {args.iters} iters x {args.batch}, "
        f"input {input_hw}, crop {args.crop}, seed {args.seed}, {args.threads} threads",
        flush=True,
    )
    start = time.perf_counter()
    model.train()
    running: dict[str, float] = {}
    for i, (images, labels) in enumerate(loader):
        for g in opt.param_groups:
            g["lr"] = lr_at(i)
        raw = model(images.to(memory_format=torch.channels_last))
        loss, parts = criterion(raw, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        ema.update(model)
        for k, v in {"loss": float(loss), **parts}.items():
            running[k] = running.get(k, 0.0) + v
        if (i + 1) % args.log_every == 0 or i + 1 == args.iters:
            n = args.log_every if (i + 1) % args.log_every == 0 else (i + 1) % args.log_every
            avg = " ".join(f"{k} {v / n:.3f}" for k, v in running.items())
            print(f"iter {i + 1}/{args.iters} lr {lr_at(i):.5f} {avg} {time.perf_counter() - start:.0f}s", flush=True)
            running = {}
    elapsed = time.perf_counter() - start
    args.ckpt.parent.mkdir(parents=True, exist_ok=True)
    description = (
        f"Checkpoint Edge X-ray detector, synthetic scans (drivers.sim.xray), seed {args.seed}, "
        f"{args.iters} iters x {args.batch}" + (f" from {args.init.name}" if args.init else "")
        + (f" from {args.init_onnx.name}" if args.init_onnx else "")
    )
    ema_model = ema.model.to(memory_format=torch.contiguous_format)
    torch.save(
        {"ema": ema_model.state_dict(), "names": list(CLASSES), "input_hw": list(input_hw), "args": vars(args) | {
            "out": str(args.out), "ckpt": str(args.ckpt)}, "train_seconds": elapsed, "description": description},
        args.ckpt,
    )  # fmt: skip
    path = export(ema_model, args.out / "xray-det.onnx", input_hw, tuple(CLASSES), description)
    print(f"trained in {elapsed:.0f}s; checkpoint {args.ckpt}; exported {path}", flush=True)


if __name__ == "__main__":
    main()
