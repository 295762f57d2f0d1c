"""Training recipe for the shipped X-ray detector (torch, CPU; the ``train`` extra).

Nothing here is imported by the runtime: the runtime reads only the exported ONNX files.

    python -m models.train.train --out models/ --seed 0 --iters 1500
    python -m models.train.quantize --model models/xray-det.onnx --out models/xray-det-int8.onnx
"""
