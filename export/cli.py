"""`ganrt export ...` subcommands (needs ganrt[export]: torch, onnxscript, scikit-image, ...)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ganrt.runtime.errors import ConfigError
from ganrt.runtime.manifest import bundled_model_dir


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="simulate -> train teacher -> distill student -> ONNX -> quantize -> gate -> bundle")
    p.add_argument("--task", default="us-enhance")
    p.add_argument("--out", type=Path, default=None, help="bundle directory (default: the packaged model's)")
    p.add_argument("--run-dir", type=Path, default=None, help="training state, teacher, curves (default runs/TASK)")
    p.add_argument("--smoke", action="store_true", help="tiny models and data: finishes in about a minute")
    p.add_argument("--no-resume", action="store_true", help="start training from scratch")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    p.add_argument("--teacher-steps", type=int, default=None)
    p.add_argument("--student-steps", type=int, default=None)
    p.set_defaults(func=_pipeline)

    s = sub.add_parser("simulate", help="write a simulated ultrasound cine (input or target) as MP4/PNG/DICOM")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--frames", type=int, default=48)
    s.add_argument("--size", type=int, default=512)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--fps", type=float, default=30.0)
    s.add_argument("--which", choices=("input", "target"), default="input", help="point-of-care input or cart target")
    s.add_argument("--format", default="mp4", help="comma list of mp4,png,dcm")
    s.set_defaults(func=_simulate)


def _pipeline(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .tasks import get_task

    get_task(args.task)  # unknown task: one clear line before anything heavy starts
    from .pipeline import ExportConfig, run_export, smoke_config
    cfg = smoke_config(args.task) if args.smoke else ExportConfig(task=args.task)
    if args.teacher_steps is not None:
        cfg = replace(cfg, teacher_train=replace(cfg.teacher_train, steps=args.teacher_steps))
    if args.student_steps is not None:
        cfg = replace(cfg, distill=replace(cfg.distill, steps=args.student_steps,
                                           adv_steps=min(cfg.distill.adv_steps, args.student_steps // 4)))
    cfg = replace(cfg, threads=args.threads)
    out = args.out or bundled_model_dir(args.task)
    run_dir = args.run_dir or Path("runs") / (args.task + ("-smoke" if args.smoke else ""))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    m = run_export(cfg, out, run_dir, resume=not args.no_resume)
    q = m["metrics"]["held_out"]
    print(f"bundle written: {out}")
    for k in ("input", "teacher", "student_fp32", "student_int8-cpu", "student_int8-trt"):
        print(f"  {k:18s} PSNR {q[k]['psnr']:6.2f} dB  SSIM {q[k]['ssim']:.4f}  gCNR {q[k]['gcnr']:.3f}")
    print("  gates: " + json.dumps({k: round(v["psnr_vs_fp32"], 1) for k, v in m["metrics"]["gates"].items()}))
    print(f"  wall time {m['wall_seconds']:.0f} s; report {run_dir / 'export_report.json'}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .data.cine_io import write_cine
    from .data.simulator import SimConfig, cine, to_uint8

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("mp4", "png", "dcm")]
    if bad or args.frames < 1 or args.size < 32:
        raise ConfigError(f"simulate: bad options (formats {bad or formats}, frames {args.frames}, size {args.size})")
    cfg = SimConfig(out_hw=(args.size, args.size))
    frames = [to_uint8(getattr(s, args.which)) for s in cine(args.seed, args.frames, cfg, fps=args.fps)]
    for p in write_cine(args.out, frames, args.fps, formats, stem=f"sim_{args.which}"):
        print(p)
    return 0
