"""``Detector``: an ONNX detector in the Ultralytics layout, as the pipeline's ``Analyser``.

Load once (session, layout, sha256, warm-up), then call it with frames::

    detector = Detector("models/xray.onnx", DetectorOptions(threads=2))
    for det in detector(frame):
        print(det["class_name"], det["score"], det["box"])  # box in frame pixels
"""

from __future__ import annotations

import logging
import numbers
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from models.cpu import cpu_flags, int8_saturation_risk
from models.detections import Detections
from models.errors import DetectorConfigError, ModelError, ModelLayoutError
from models.layout import ModelLayout, read_layout
from models.postprocess import class_thresholds, decode_end2end, decode_yolo, nms
from models.preprocess import letterbox, unletterbox_boxes
from models.session import open_session, resolve_providers, sha256_file
from models.tiling import downscale_needed, merge_detections, plan_tiles, shift, tile_size

log = logging.getLogger(__name__)

TILING_KEY = "tiling"  # model metadata: "never" when the model must see whole scans (see Detector._tiling_mode)


class HasImage(Protocol):
    """Anything with an ``image`` (a ``drivers.camera.base.Frame``, for one)."""

    @property
    def image(self) -> np.ndarray: ...


@dataclass(frozen=True)
class DetectorOptions:
    """How to run a model. ``class_names`` and ``imgsz`` apply only when the model lacks them."""

    conf: float = 0.25  # default score threshold
    class_conf: Mapping[str, float] = field(default_factory=dict)  # per class name, overrides conf
    iou: float = 0.5  # NMS IoU threshold (class-aware)
    max_det: int = 300
    max_candidates: int = 30000  # boxes over threshold kept for NMS, best first
    threads: int | None = None  # intra-op threads; None: onnxruntime's default (one per core)
    providers: Sequence[str] = ("cpu",)  # e.g. ("cuda", "cpu"); missing ones are skipped with a warning
    warmup_runs: int = 1
    class_names: Sequence[str] | None = None
    imgsz: tuple[int, int] | None = None  # (height, width)
    tiling: Literal["auto", "always", "never"] = "auto"
    tile_max_downscale: float = 2.0  # auto: tile when the whole frame must shrink more than this
    tile_overlap: float = 0.2
    tile_full_frame: bool = True  # also run the whole frame, for objects larger than a tile
    tile_merge_threshold: float = 0.5  # intersection over the smaller box


class Detector:
    """Runs one ONNX detector; thread-safe (onnxruntime sessions are)."""

    def __init__(self, path: str | Path, options: DetectorOptions | None = None) -> None:
        self.path = Path(path)
        self.options = options or DetectorOptions()
        self.providers = resolve_providers(self.options.providers, self.path)
        self._session = open_session(self.path, self.providers, self.options.threads)
        self._buffers = threading.local()
        self.model_sha256: str | None = sha256_file(self.path)
        self.layout: ModelLayout = read_layout(self._session, self.path, self.options.class_names, self.options.imgsz)
        self.class_names = self.layout.class_names
        self._thresholds = self._class_thresholds()
        self.tiling = self._tiling_mode()
        self.int8_risk = int8_saturation_risk(self.layout.metadata, cpu_flags())
        if self.int8_risk:
            log.warning("model %s: %s; check it with `checkpoint model eval` here", self.path, self.int8_risk)
        self.warmup_ms = self._warm_up()
        log.info(
            "model %s loaded: %s output, input %dx%d (h x w), %d classes, providers %s, warm-up %.1f ms",
            self.path,
            self.layout.kind,
            self.layout.input_hw[0],
            self.layout.input_hw[1],
            self.layout.num_classes,
            ",".join(self._session.get_providers()),
            self.warmup_ms,
        )

    def _tiling_mode(self) -> str:
        """``options.tiling``, except that ``auto`` is ``never`` for a model whose metadata says ``tiling: never``.

        Such a model (the shipped one) learnt its objects at a size relative to the whole scan:
        a tile shows them larger than it ever saw them (held-out 2048 x 1024 scans, shipped
        INT8: mAP@0.5 0.50 tiled vs 0.71 whole). A model trained at a fixed pixel scale (real
        scanners, fixed mm per pixel) leaves the key out and is tiled as configured.
        """
        if self.options.tiling == "auto" and self.layout.metadata.get(TILING_KEY) == "never":
            log.info("model %s: trained on whole scans (metadata %s=never): auto tiling off", self.path, TILING_KEY)
            return "never"
        return self.options.tiling

    def _class_thresholds(self) -> np.ndarray:
        try:
            return self.thresholds_for(self.options.conf, self.options.class_conf)
        except ValueError as exc:
            raise DetectorConfigError(self.path, str(exc), f"the model's classes are {list(self.class_names)}") from exc

    def thresholds_for(self, conf: float, class_conf: Mapping[str, float]) -> np.ndarray:
        """The per-class threshold array for these settings; ``ValueError`` naming what is wrong."""
        ids = {name: i for i, name in enumerate(self.class_names)}
        unknown = sorted(set(class_conf) - set(ids))
        if unknown:
            raise ValueError(f"class_conf names unknown classes {unknown}")
        for name, value in {"conf": conf, **{f"class_conf.{k}": v for k, v in class_conf.items()}}.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
        return class_thresholds(self.layout.num_classes, conf, {ids[n]: v for n, v in class_conf.items()})

    @property
    def thresholds(self) -> dict[str, float]:
        """The score threshold in force for each class, by name."""
        return {name: round(float(v), 6) for name, v in zip(self.class_names, self._thresholds, strict=True)}

    def set_thresholds(self, conf: float, class_conf: Mapping[str, float]) -> dict[str, float]:
        """Change the score thresholds while frames are analysed (a signed downlink); returns the new ones.

        Validated first (``ValueError``, nothing changed); the swap is one reference assignment,
        so a frame is decoded with either the old set or the new one, never a mix.
        """
        self._thresholds = self.thresholds_for(conf, class_conf)
        return self.thresholds

    def _warm_up(self) -> float:
        start = time.perf_counter()
        height, width = self.layout.input_hw
        for _ in range(self.options.warmup_runs):
            self.detect(np.zeros((height, width, 3), np.uint8))
        return (time.perf_counter() - start) * 1000.0

    def __call__(self, frame: HasImage) -> list[dict[str, Any]]:
        """The ``Analyser`` protocol: detections in frame pixels, best first."""
        return self.detect(frame.image).to_dicts(self.class_names)

    def detect(self, image: np.ndarray) -> Detections:
        """Detections for one image (grey or BGR), in its pixels; tiled when it is much larger than the input."""
        frame_hw = (int(image.shape[0]), int(image.shape[1]))
        opts = self.options
        shrink = downscale_needed(frame_hw, self.layout.input_hw)
        if self.tiling == "never" or (self.tiling == "auto" and shrink <= opts.tile_max_downscale):
            return self._detect_window(image)
        tiles = plan_tiles(
            frame_hw, tile_size(frame_hw, self.layout.input_hw, opts.tile_max_downscale), opts.tile_overlap
        )
        parts = [shift(self._detect_window(tile.crop(image)), tile) for tile in tiles]
        if opts.tile_full_frame and len(tiles) > 1:
            parts.append(self._detect_window(image))
        merged = merge_detections(Detections.concat(parts), opts.tile_merge_threshold)
        return merged.take(np.argsort(-merged.scores, kind="stable")[: opts.max_det])

    def _input_buffer(self) -> np.ndarray:
        """This thread's input tensor, reused frame after frame (no 2.4 MB allocation and page faults each time)."""
        height, width = self.layout.input_hw
        shape = (1, self.layout.channels, height, width)
        buf: np.ndarray | None = getattr(self._buffers, "input", None)
        if buf is None or buf.shape != shape:
            buf = self._buffers.input = np.empty(shape, np.float32)
        return buf

    def _detect_window(self, image: np.ndarray) -> Detections:
        tensor, info = letterbox(image, self.layout.input_hw, self.layout.channels, out=self._input_buffer())
        raw = self._run(tensor.astype(self.layout.input_dtype, copy=False))
        if self.layout.kind == "end2end":
            dets = decode_end2end(raw, self._thresholds, self.layout.num_classes)
            dets = dets.take(slice(0, self.options.max_det))
        else:
            dets = nms(
                decode_yolo(raw, self._thresholds, self.options.max_candidates), self.options.iou, self.options.max_det
            )
        return Detections(unletterbox_boxes(dets.boxes, info), dets.scores, dets.class_ids)

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        try:
            raw = self._session.run([self.layout.output_name], {self.layout.input_name: tensor})[0]
        except Exception as exc:  # onnxruntime's pybind errors, translated at the adapter
            raise ModelError(self.path, f"inference failed: {str(exc).strip()[:300]}") from exc
        raw = np.asarray(raw, np.float32)
        expected_rows = 6 if self.layout.kind == "end2end" else 4 + self.layout.num_classes
        axis = 2 if self.layout.kind == "end2end" else 1
        if raw.ndim != 3 or raw.shape[0] != 1 or raw.shape[axis] != expected_rows:
            raise ModelLayoutError(
                self.path, f"output shape {list(raw.shape)} does not fit a {self.layout.kind} layout"
            )
        return raw

    def info(self) -> dict[str, Any]:
        """What ``checkpoint model info`` shows."""
        meta = self.layout.metadata
        return {
            "path": str(self.path),
            "sha256": self.model_sha256,
            "size_bytes": self.path.stat().st_size,
            "output": self.layout.kind,
            "output_shape": list(self.layout.output_shape),
            "input": self.layout.input_name,
            "input_height": self.layout.input_hw[0],
            "input_width": self.layout.input_hw[1],
            "channels": self.layout.channels,
            "input_dtype": np.dtype(self.layout.input_dtype).name,
            "classes": list(self.class_names),
            "thresholds": self.thresholds,
            "providers": list(self._session.get_providers()),
            "threads": self.options.threads,
            "tiling": self.tiling,
            "warmup_ms": round(self.warmup_ms, 1),
            "metadata": {k: meta[k] for k in sorted(meta)},
        }
