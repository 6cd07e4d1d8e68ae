"""The RGB section of the real-scan benchmark: intraop-enhance on real colour photographs.

    ganrt bench realscan --task intraop-enhance --out benchmarks/results/realscan

No real endoscopy video installs offline; scikit-image's bundled photographs are real camera
images with real colour statistics. Only ``export.realphotos.REPORT`` is used here (the tuning
photographs set the colour guard and the training pairs). Two questions:

- clean: a well-exposed, sharp photograph must pass nearly unchanged. Measured against the input:
  local L* and chroma shift, CIEDE2000 (``realphoto_metrics.colour_shift``), and the fine detail kept
  (``detail_kept``: a softened structure keeps its local colour);
- degraded: the same photographs through ``photo_degrade.PRESETS`` (low light, smoke, blur with
  noise and JPEG; fixed seeds); restored output against the original: PSNR, SSIM, CIEDE2000.

Methods: the input; CLAHE (on L*, clip 2, 8x8 tiles) after colour non-local means (OpenCV,
h = hColor = 10); a guided filter (self-guided, r = 4, eps = 0.01; cv2.ximgproc when OpenCV's
contrib module is installed, else He et al.'s box-filter form written out here, since
opencv-python-headless ships without ximgproc); the bundle bare (fp32, int8-cpu) on the whole
frame; the bundle through `ganrt run` with its defaults (guard included), one frame per run.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from . import realscan_rows as rr
from .realphoto_metrics import colour_shift, detail_kept, restoration

BUNDLE = "intraop-enhance"
PRECISIONS = ("fp32", "int8-cpu")
PIPELINE = f"{BUNDLE} pipeline (defaults)"
SEED = 4242
NLM_H = 10.0
CLAHE_CLIP, CLAHE_TILES = 2.0, 8
GUIDED_R, GUIDED_EPS = 4, 0.01


def clahe_nlm(bgr: np.ndarray) -> np.ndarray:
    den = cv2.fastNlMeansDenoisingColored(bgr, None, NLM_H, NLM_H, 7, 21)
    lab = cv2.cvtColor(den, cv2.COLOR_BGR2Lab)
    clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=(CLAHE_TILES, CLAHE_TILES))
    lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_Lab2BGR)


def guided(bgr: np.ndarray) -> np.ndarray:
    """Self-guided filter per channel (edge-preserving smoothing)."""
    img = bgr.astype(np.float32) / 255.0
    if hasattr(cv2, "ximgproc"):
        out = cv2.ximgproc.guidedFilter(img, img, GUIDED_R, GUIDED_EPS)
    else:
        k = (2 * GUIDED_R + 1, 2 * GUIDED_R + 1)

        def box(x: np.ndarray) -> np.ndarray:
            return cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REFLECT)

        mean = box(img)
        var = box(img * img) - mean * mean
        a = var / (var + GUIDED_EPS)
        out = box(a) * img + box(mean - a * mean)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _bare(frames: list[np.ndarray], precision: str, profile: str) -> list[np.ndarray]:
    outs: list[np.ndarray] = [np.empty(0)] * len(frames)

    def keep(i: int, _inp: np.ndarray, out: np.ndarray) -> None:
        outs[i] = out

    rr.run_frames(rr.Row(f"{BUNDLE} bare {precision}", rr.RowKind.BARE, BUNDLE, precision), frames, keep, profile)
    return outs


def _pipeline(frame: np.ndarray, budget_ms: float) -> tuple[np.ndarray, str]:
    """One frame through `ganrt run` (an image folder of one frame): what it shows and why."""
    shown: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(prefix="ganrt-realphoto-") as tmp:
        cv2.imwrite(str(Path(tmp) / "frame_0000.png"), frame)
        extra = rr.run_pipeline(rr.Row(PIPELINE, rr.RowKind.PIPELINE, BUNDLE), Path(tmp), 1, budget_ms,
                                lambda _i, _inp, out: shown.append(out))
    rec = extra["record"][0] if extra["record"] else {"outcome": "none", "reason": ""}
    label = rec["outcome"] + (f" ({rec['reason']})" if rec.get("reason") else "")
    return (shown[0] if shown else frame), label


def _methods(frames: list[np.ndarray], profile: str, budget_ms: float) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    out = {"input": list(frames), "clahe+nlm": [clahe_nlm(f) for f in frames], "guided filter": [guided(f) for f in frames]}
    for p in PRECISIONS:
        out[f"{BUNDLE} bare {p}"] = _bare(frames, p, profile)
    piped = [_pipeline(f, budget_ms) for f in frames]
    out[PIPELINE] = [s for s, _ in piped]
    return out, [lab for _, lab in piped]


def report_cases() -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(image, condition, original, input) for every report photograph, clean and through each
    degradation preset (fixed seed), BGR uint8."""
    from ganrt.export.data.photo_degrade import PRESETS, degrade
    from ganrt.export.realphotos import REPORT, load_all

    rng = np.random.default_rng(SEED)
    cases = []
    for name, rgb in load_all(REPORT).items():
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        cases.append((name, "clean", bgr, bgr))
        for cond, d in PRESETS.items():
            deg = degrade(rgb.astype(np.float32) / 255.0, d, rng)
            cases.append((name, cond, bgr, cv2.cvtColor(np.clip(deg * 255 + 0.5, 0, 255).astype(np.uint8),
                                                         cv2.COLOR_RGB2BGR)))
    return cases


def run(profile: str = "cpu-x86-2core", budget_ms: float = 1000.0, out_dir: Path | None = None) -> dict:
    from ganrt.export.data.photo_degrade import PRESETS
    from ganrt.export.realphotos import TUNE

    from .env import environment

    t0 = time.perf_counter()
    cases = report_cases()
    photos = list(dict.fromkeys(c[0] for c in cases))
    outs, labels = _methods([c[3] for c in cases], profile, budget_ms)
    images: dict[str, dict] = {}
    for k, (name, cond, orig, inp) in enumerate(cases):
        entry = images.setdefault(name, {"hw": list(orig.shape[:2]), "conditions": {}})
        measure = (lambda o, inp=inp: {**colour_shift(inp, o), **detail_kept(inp, o)}) if cond == "clean" else (
            lambda o, orig=orig: restoration(orig, o))
        entry["conditions"][cond] = {"methods": {m: measure(v[k]) for m, v in outs.items()},
                                     "pipeline_outcome": labels[k]}
    result = {"benchmark": "realscan-rgb", "bundle": BUNDLE, "report_images": list(photos),
              "tuning_images_not_reported": list(TUNE), "degradations": {k: vars(v) for k, v in PRESETS.items()},
              "baselines": {"clahe+nlm": {"nlm_h": NLM_H, "clahe_clip": CLAHE_CLIP, "clahe_tiles": CLAHE_TILES},
                            "guided filter": {"r": GUIDED_R, "eps": GUIDED_EPS,
                                              "impl": "cv2.ximgproc" if hasattr(cv2, "ximgproc") else "box-filter fallback"}},
              "images": images, "seconds": round(time.perf_counter() - t0, 1), "environment": environment()}
    if out_dir is not None:
        from .realphoto_report import montage

        out_dir.mkdir(parents=True, exist_ok=True)
        for name in photos:
            rows = [(c[1], c[2], [(m, outs[m][k]) for m in outs]) for k, c in enumerate(cases) if c[0] == name]
            images[name]["montage"] = montage(name, rows, out_dir).name
    return result


NOTES = Path(__file__).with_name("realphoto_notes.md")  # hand-written: what the montages show


def write(out: Path, profile: str = "cpu-x86-2core", budget_ms: float = 1000.0) -> tuple[dict, str]:
    from .realphoto_report import to_markdown

    result = run(profile, budget_ms, out)
    md = to_markdown(result) + ("\n" + NOTES.read_text() if NOTES.exists() else "")
    (out / "realphoto.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "realphoto.md").write_text(md)
    return result, md
