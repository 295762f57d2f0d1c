"""Camera drivers: ``sim://xray``, ``file://``, ``folder://``, ``rtsp://``, ``http://``, ``usb://N``."""

from drivers.camera.base import Camera, Frame, GroundTruth
from drivers.camera.registry import CameraContext, create_camera, redact_url, schemes

__all__ = ["Camera", "CameraContext", "Frame", "GroundTruth", "create_camera", "redact_url", "schemes"]
