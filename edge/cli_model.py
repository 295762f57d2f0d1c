"""``checkpoint model ...``: inspect and evaluate ONNX detector models (runtime code, no torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from models.evaluate import HELD_OUT_SEEDS


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, sort_keys=True, default=str))


def _finite(obj: Any) -> Any:
    """NaN (a class without ground truth in these scenes) as null, so the JSON is strict."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


@click.group()
def model() -> None:
    """ONNX detector models: metadata, SHA-256 and held-out accuracy."""


@model.command("info")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def model_info(file: Path) -> None:
    """Load FILE as the runtime would and print its metadata, layout and SHA-256 as JSON.

    \b
    Example:
      checkpoint model info models/xray-det.onnx
    """
    from models.detector import Detector

    _echo_json(Detector(file).info())


@model.command("eval")
@click.option(
    "--model",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="ONNX detector (Ultralytics YOLOv8/YOLO11 layout).",
)
@click.option(
    "--scenes",
    type=click.IntRange(1, 100_000),
    default=300,
    show_default=True,
    help="Held-out synthetic scans to render and score.",
)
@click.option(
    "--seed",
    type=int,
    default=HELD_OUT_SEEDS.start,
    show_default=True,
    help=f"First scene seed, in the held-out range {HELD_OUT_SEEDS.start}..{HELD_OUT_SEEDS.stop - 1}.",
)
@click.option("--threads", type=click.IntRange(1, 64), default=2, show_default=True, help="Inference threads.")
@click.option("--width", type=click.IntRange(64, 8192), default=1024, show_default=True, help="Scan width.")
@click.option("--height", type=click.IntRange(64, 8192), default=512, show_default=True, help="Scan height.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
def model_eval(file: Path, scenes: int, seed: int, threads: int, width: int, height: int, as_json: bool) -> None:
    """Score FILE on fresh held-out synthetic scans with the runtime's own detector.

    Prints per-class AP@0.5 and AP@0.5:0.95 and their means over classes (COCO-style,
    101-point interpolation, score threshold 0.001). The scenes come from seeds the
    training recipe never draws from.

    \b
    Example:
      checkpoint model eval --model models/xray-det-int8.onnx --scenes 300
    """
    from models.evaluate import check_held_out, evaluate_model, format_report

    try:
        check_held_out(scenes, seed)  # before the model loads: the same rule the evaluation enforces
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--seed") from None
    report = evaluate_model(file, scenes=scenes, seed=seed, width=width, height=height, threads=threads)
    if as_json:
        _echo_json(_finite(report))
    else:
        click.echo(format_report(report))
        click.echo(f"sha256 {report['sha256']}")


@click.command("detect")
@click.option(
    "--model",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="ONNX detector (default: the shipped INT8 model).",
)
@click.option(
    "--cameras",
    type=click.IntRange(1, 64),
    multiple=True,
    default=(1, 4),
    show_default=True,
    help="Simulated cameras; repeat for several runs.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(0.5, 600),
    default=10.0,
    show_default=True,
    help="Measuring time of each raw configuration, and of the pipeline and the raw baseline per camera count.",
)
@click.option(
    "--rounds",
    type=click.IntRange(1, 100),
    default=4,
    show_default=True,
    help="Turns the pipeline and the raw baseline take (the ratio holds on a machine whose speed drifts).",
)
@click.option("--width", type=click.IntRange(64, 8192), default=1024, show_default=True, help="Scan width.")
@click.option("--height", type=click.IntRange(64, 8192), default=512, show_default=True, help="Scan height.")
@click.option(
    "--opencv-threads",
    type=click.IntRange(1, 64),
    default=None,
    help="OpenCV's pool, as detector.opencv_threads in the config (default 1).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
def bench_detect_cmd(
    file: Path | None,
    cameras: tuple[int, ...],
    seconds: float,
    rounds: int,
    width: int,
    height: int,
    opencv_threads: int | None,
    as_json: bool,
) -> None:
    """Bare ONNX session throughput vs the whole pipeline (cameras to store), their ratio and latency.

    \b
    Example:
      checkpoint bench detect --cameras 1 --cameras 4 --seconds 10
    """
    import logging

    from edge.bench_detect import DEFAULT_MODEL, bench_detect, format_bench_detect

    logging.getLogger().setLevel(logging.WARNING)
    say = (lambda _m: None) if as_json else (lambda m: click.echo(m, err=True))
    report = bench_detect(
        file or DEFAULT_MODEL,
        tuple(sorted(set(cameras))),
        seconds,
        rounds=rounds,
        width=width,
        height=height,
        opencv_threads=opencv_threads,
        progress=say,
    )
    if as_json:
        _echo_json(report)
    else:
        click.echo(format_bench_detect(report))
