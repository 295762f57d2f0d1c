# mypy: ignore-errors
"""Start training from an exported ONNX model (BatchNorm folded) instead of a torch checkpoint.

The export folds every BatchNorm into its conv, so the ONNX initializers are the torch names
(``s2.0.conv.weight``, ``s2.0.conv.bias``, ...) of the folded network. To train again the
BatchNorms are unfolded so that, in training mode, the network computes what the ONNX model
computes: on a few synthetic scans, each conv's output (without bias) has per-channel mean ``m``
and variance ``v``; BatchNorm with running stats ``(m, v)``, weight ``sqrt(v + eps)`` and bias
``b + m`` (``b`` the folded bias) gives back the folded output, with batch statistics or running ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from models.train.net import Conv


def load_folded(model: torch.nn.Module, path: Path) -> None:
    """Copy the folded weights of ``path`` into ``model`` (BatchNorms left as identities)."""
    graph = onnx.load(str(path)).graph
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    used = set()
    for name, module in model.named_modules():
        if isinstance(module, Conv):
            w, b = weights[f"{name}.conv.weight"], weights[f"{name}.conv.bias"]
            module.conv.weight.data.copy_(w)
            bn = module.bn
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            bn.weight.data.fill_(1.0)
            bn.bias.data.copy_(b)
            used |= {f"{name}.conv.weight", f"{name}.conv.bias"}
    for name, param in model.named_parameters():  # the plain convs (head outputs) keep their names
        if name in weights and name not in used:
            param.data.copy_(weights[name])
            used.add(name)
    missing = [n for n, p in model.named_parameters() if not n.endswith(("bn.weight", "bn.bias")) and n not in used]
    if missing:
        raise ValueError(f"{path}: no weights for {missing[:5]}")


@torch.no_grad()
def unfold_batchnorms(model: torch.nn.Module, images: torch.Tensor) -> None:
    """Give each identity BatchNorm the statistics of its conv's output on ``images`` (see module doc)."""
    model.eval()
    stats: dict[Conv, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = []
    for module in model.modules():
        if isinstance(module, Conv):

            def hook(mod, _inputs, out, key=module):
                stats[key] = (out.mean(dim=(0, 2, 3)), out.var(dim=(0, 2, 3), unbiased=False))

            hooks.append(module.conv.register_forward_hook(hook))
    model(images)
    for h in hooks:
        h.remove()
    for module, (mean, var) in stats.items():
        bn = module.bn
        folded_bias = bn.bias.data.clone()
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.data.copy_(torch.sqrt(var + bn.eps))
        bn.bias.data.copy_(folded_bias + mean)


def warm_start(model: torch.nn.Module, path: Path, images: torch.Tensor) -> float:
    """Load ``path`` into ``model`` and unfold its BatchNorms; returns the largest output difference on ``images``."""
    load_folded(model, path)
    model.eval()
    model.export = True
    with torch.no_grad():
        before = model(images)
    unfold_batchnorms(model, images)
    model.eval()
    with torch.no_grad():
        after = model(images)
    model.export = False
    return float(np.abs((after - before).numpy()).max())
