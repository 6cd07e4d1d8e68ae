"""`ganrt export ...` subcommands (needs ganrt[export]: torch, onnxscript, scikit-image, ...).

A plug-in of ``ganrt.runtime.cli.registry``: imported whenever the parser is built (`ganrt --help`
runs without torch), so torch and the training code are imported inside the actions.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ganrt.runtime.cli.registry import Command
from ganrt.runtime.errors import ConfigError
from ganrt.runtime.model.manifest import bundled_model_dir


def _add_export(ex: argparse.ArgumentParser) -> None:
    add_parsers(ex.add_subparsers(dest="export_command", metavar="ACTION"))


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The actions of `ganrt export`, added to ``sub``."""
    p = sub.add_parser("pipeline", help="simulate -> train teacher -> distill student -> ONNX -> quantize -> gate -> bundle")
    p.add_argument("--task", default="us-enhance")
    p.add_argument("--out", type=Path, default=None, help="bundle directory (default: the packaged model's)")
    p.add_argument("--run-dir", type=Path, default=None, help="training state, teacher, curves (default runs/TASK)")
    p.add_argument("--smoke", action="store_true", help="tiny models and data: finishes in about a minute")
    p.add_argument("--no-resume", action="store_true", help="start training from scratch")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    p.add_argument("--teacher-steps", type=int, default=None)
    p.add_argument("--student-steps", type=int, default=None)
    p.add_argument("--pretrain-steps", type=int, default=None, metavar="N",
                   help="a first student stage of N steps on the task's pretraining pairs (intraop-enhance: "
                        "sensor noise only), with the distillation's settings and no adversarial phase; off by default")
    p.add_argument("--finetune-steps", type=int, default=None, help="contrast + quantization-aware fine-tune steps")
    p.set_defaults(func=_pipeline)

    s = sub.add_parser("simulate", help="write a simulated cine of a task (input or target) as MP4/PNG/DICOM")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--task", default="us-enhance", help="whose frames: us-enhance, us-sr2x (input at half "
                   "--size), intraop-enhance (colour; mp4/png)")
    s.add_argument("--frames", type=int, default=48)
    s.add_argument("--size", type=int, default=512, help="target size; a super-resolution input is size/scale")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--fps", type=float, default=30.0)
    s.add_argument("--which", choices=("input", "target"), default="input", help="degraded input or clean target")
    s.add_argument("--format", default="mp4", help="comma list of mp4,png,dcm")
    s.set_defaults(func=_simulate)

    f = sub.add_parser("fidelity", help="calibrate a bundle's fidelity threshold on its held-out pairs and write it "
                       "into its manifest (the pipeline does this for every new bundle)")
    f.add_argument("--model", type=Path, required=True, help="bundle directory")
    f.add_argument("--frames", type=int, default=None, help="held-out pairs (default: the bundle's held-out set)")
    f.set_defaults(func=_fidelity)

    g = sub.add_parser("guard", help="calibrate a bundle's local-mean check (tone) and input domain and write them "
                       "into its manifest (the pipeline does this for every new bundle)")
    g.add_argument("--model", type=Path, required=True, help="bundle directory")
    g.set_defaults(func=_guard)

    t = sub.add_parser("triton", help="write a Triton Inference Server model repository from a bundle "
                       "(needs ganrt[triton]; no torch)")
    t.add_argument("bundle", type=Path, help="bundle directory or its manifest.json")
    t.add_argument("--out", type=Path, required=True, metavar="REPO", help="model repository to write into")
    t.add_argument("--precision", action="append", default=None, metavar="P",
                   help="artifact(s) to serve, repeatable (default: every one but int8-trt)")
    t.add_argument("--max-batch", type=int, default=8, help="the server's max_batch_size (default 8)")
    t.add_argument("--instances", default="cpu:1", metavar="cpu:N|gpu:N", help="instance_group (default cpu:1)")
    t.add_argument("--engine", type=Path, default=None, metavar="PLAN",
                   help="a TensorRT engine built from the first precision: adds a tensorrt_plan model")
    t.add_argument("--name", default=None, help="model name prefix (default: the bundle's task)")
    t.add_argument("--version", type=int, default=1, help="version directory (default 1)")
    t.set_defaults(func=_triton)


def _pipeline(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .tasks import get_task

    get_task(args.task)  # unknown task: one clear line before anything heavy starts
    from .pipeline import ExportConfig, run_export, smoke_config
    cfg = (smoke_config(args.task) if args.smoke else ExportConfig(task=args.task)).resolved()  # the task's budgets
    if args.teacher_steps is not None:
        cfg = replace(cfg, teacher_train=replace(cfg.teacher_train, steps=args.teacher_steps))
    if args.student_steps is not None:
        cfg = replace(cfg, distill=replace(cfg.distill, steps=args.student_steps,
                                           adv_steps=min(cfg.distill.adv_steps, args.student_steps // 4)))
    if args.pretrain_steps:
        cfg = replace(cfg, pretrain=replace(cfg.distill, steps=args.pretrain_steps, adv_steps=0,
                                            checkpoint_every=min(cfg.distill.checkpoint_every, args.pretrain_steps)))
    if args.finetune_steps is not None:  # keep the contrast phase's share of the stage
        share = cfg.finetune.qat_start / max(cfg.finetune.steps, 1)
        cfg = replace(cfg, finetune=replace(cfg.finetune, steps=args.finetune_steps,
                                            qat_start=int(args.finetune_steps * share)))
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
    from .tasks import get_task

    task = get_task(args.task)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("mp4", "png", "dcm")]
    if bad or args.frames < 1 or args.size < 32 or args.size % task.scale:
        raise ConfigError(f"simulate: bad options (formats {bad or formats}, frames {args.frames}, size {args.size})")
    if task.make_cine is None:
        raise ConfigError(f"simulate: task {task.name} has no cine generator")
    k = 0 if args.which == "input" else 1
    frames = [pair[k] for pair in task.make_cine(args.seed, args.frames, (args.size, args.size), args.fps)]
    stem = f"sim_{args.which}" if task.name == "us-enhance" else f"sim_{task.name}_{args.which}"
    for p in write_cine(args.out, frames, args.fps, formats, stem=stem):
        print(p)
    return 0


def _guard(args: argparse.Namespace) -> int:
    from .guard_cal import calibrate_bundle

    cal = calibrate_bundle(args.model)
    tone = cal["tone"]
    chosen = tone.get("chosen")
    if chosen:
        print(f"{args.model}: tone tiles {chosen['tile_frac']:g} of the shorter side, frame raw above "
              f"{chosen['max_failed']:g} failed; catches {chosen['catch_rate']} of {tone['model_output_negatives']} "
              f"harmful model outputs on real tuning scans + {tone['synthetic_negatives']} synthetic harms "
              f"(model outputs: {chosen['model_output_catch_rate']}); keeps {chosen['positives_kept']} of "
              f"{tone['positives']} tone-neutral edits")
    else:
        print(f"{args.model}: no real tuning scans for this task: default tone settings")
    print(f"{args.model}: input domain from {cal['input_domain']}")
    return 0


def _triton(args: argparse.Namespace) -> int:
    from ganrt.runtime.cli.common import parse_precision
    from ganrt.runtime.model.manifest import Manifest

    from .triton_repo import Instances, RepoConfig, write_repository

    cfg = RepoConfig(precisions=tuple(parse_precision(p) for p in args.precision or ()), max_batch=args.max_batch,
                     instances=Instances.parse(args.instances), version=args.version, engine=args.engine,
                     name=args.name)
    for model_dir in write_repository(Manifest.load(args.bundle), args.out, cfg):
        print(model_dir / "config.pbtxt")
    return 0


def _fidelity(args: argparse.Namespace) -> int:
    from .fidelity_cal import calibrate_bundle

    if args.frames is not None and args.frames < 1:
        raise ConfigError("fidelity: --frames must be >= 1")
    cal = calibrate_bundle(args.model, args.frames).to_dict()
    how = (f"detrend {cal['detrend_cells']:g} cells" if cal["method"] == "residual"
           else f"window {cal['window_cells']:g} cells")
    print(f"{args.model}: fidelity min_db {cal['min_db']} ({cal['method']}, {how}, {cal['degrade']}); "
          f"lowest score {cal['floor_db']} dB, median {cal['median_db']} dB over {cal['frames']} held-out frames x "
          f"{len(cal['floor_by_artifact'])} artifacts; catches {100 * cal['blob_catch_rate']:.0f}% of synthetic blobs")
    return 0


COMMANDS = (Command("export", "train, distill, export, quantize, gate (needs ganrt[export])", build=_add_export),)
