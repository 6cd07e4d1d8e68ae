"""Task registry: what a model learns, its I/O contract, where its pairs come from, and its
default architectures and training budgets.

A new task is one new entry here plus its data generator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ganrt.runtime.errors import ConfigError

from .archs import StudentConfig, TeacherConfig
from .distill import DistillConfig
from .finetune import FinetuneConfig
from .train import TeacherTrainConfig

if TYPE_CHECKING:
    from .data.photo_pairs import PhotoPairConfig


@dataclass
class PairSet:
    """Paired frames with the regions the quality metrics need.

    ``inputs`` (N, h, w) or (N, h, w, 3); ``targets`` (N, H, W[, 3]) with H = scale * h; the masks
    (N, H, W) bool at target resolution. Colour frames are RGB.
    """

    inputs: np.ndarray
    targets: np.ndarray
    sector: np.ndarray
    lesion: np.ndarray
    background: np.ndarray
    homogeneous: np.ndarray

    @classmethod
    def concat(cls, *sets: PairSet) -> PairSet:
        return cls(**{k: np.concatenate([getattr(p, k) for p in sets]) for k in vars(sets[0])})


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    channels: int
    scale: int
    size_multiple: int  # of the model input (the student's pixel-unshuffle factor)
    make_pairs: Callable[[Sequence[int], tuple[int, int]], PairSet]  # (seeds, target H x W)
    # (seed, frames, target H x W, fps) -> (input, target) uint8 display frames (BGR for colour)
    make_cine: Callable[[int, int, tuple[int, int], float], Iterator[tuple[np.ndarray, np.ndarray]]] | None = None
    # the training set only, when it differs from make_pairs (calibration and held-out stay on make_pairs)
    make_train_pairs: Callable[[Sequence[int], tuple[int, int]], PairSet] | None = None
    # Pairs for an optional first student stage (same seeds and size), whose weights the distillation starts
    # from; it runs when the export config gives it a budget (ExportConfig.pretrain, `--pretrain-steps`).
    make_pretrain_pairs: Callable[[Sequence[int], tuple[int, int]], PairSet] | None = None
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    color_order: str = "gray"
    # Default training budgets (an ExportConfig field left None takes these).
    teacher_train: TeacherTrainConfig = field(default_factory=TeacherTrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    data_note: str = ("Trained only on simulated pseudo-B-mode ultrasound (ganrt's physics simulator); not validated "
                      "on patient data and not a diagnostic device.")

    def check_hw(self, hw: tuple[int, int]) -> None:
        """Target sizes must give whole input frames the student can take."""
        m = self.scale * self.size_multiple
        if hw[0] % m or hw[1] % m:
            raise ConfigError(f"task {self.name}: target size {hw[0]}x{hw[1]} must be a multiple of {m} "
                              f"(scale {self.scale} x input multiple {self.size_multiple})")


def _stack(samples, name: str, dtype) -> np.ndarray:
    return np.stack([getattr(s, name) for s in samples]).astype(dtype)


def pair_set(samples) -> PairSet:
    """Samples (input, target and the four masks as attributes) stacked into one PairSet."""
    return PairSet(
        inputs=_stack(samples, "input", np.float32),
        targets=_stack(samples, "target", np.float32),
        sector=_stack(samples, "sector", bool),
        lesion=_stack(samples, "lesion", bool),
        background=_stack(samples, "background", bool),
        homogeneous=_stack(samples, "homogeneous", bool),
    )


def _us_pairs(seeds: Sequence[int], hw: tuple[int, int], factor: int = 1) -> PairSet:
    """Tone-neutral pairs, each from a randomly drawn scanner (data/us_domain.py)."""
    from .data.simulator import SimConfig
    from .data.us_domain import render_domain_pair

    cfg = SimConfig(out_hw=hw)
    return pair_set([render_domain_pair(int(s), cfg, factor) for s in seeds])


def _us_sr2x_pairs(seeds: Sequence[int], hw: tuple[int, int]) -> PairSet:
    """Resolution-only pairs: the simulated frame and its 2x area reduction (what the real-reference
    2x check asks of the model). Speckle and noise are us-enhance's job: pairs that also asked for
    them taught a student that lost 2-3 dB to bicubic on real scans (benchmarks/results/sr_real_probe.md)."""
    from .data.simulator import SimConfig
    from .data.us_domain import render_domain_pair

    TASKS["us-sr2x"].check_hw(hw)
    cfg = SimConfig(out_hw=hw)
    return pair_set([render_domain_pair(int(s), cfg, factor=2, resolution_only=True) for s in seeds])


REAL_SR_SHARE = 2  # every 2nd training pair of us-sr2x is a tile of a real tuning scan


def _us_sr2x_train_pairs(seeds: Sequence[int], hw: tuple[int, int]) -> PairSet:
    """Simulated resolution-only pairs (odd seeds) and tiles of the real tuning cine with their 2x
    reduction (even seeds, data/real_sr_pairs.py), simulated first (training samples at random)."""
    from .data.real_sr_pairs import RealSrConfig, render_real_sr_pair
    from .realscans import SR_TUNE, tuning_luma

    frames = tuning_luma(SR_TUNE)
    if not frames:
        raise ConfigError("us-sr2x training needs pydicom's bundled echo cine (ganrt[dicom])")
    cfg = RealSrConfig(out_hw=hw)
    return _interleaved(seeds, REAL_SR_SHARE, lambda ss: _us_sr2x_pairs(ss, hw),
                        lambda s: render_real_sr_pair(s, frames, cfg))


def _interleaved(seeds: Sequence[int], share: int, simulated: Callable[[list[int]], PairSet],
                 render_real: Callable[[int], object]) -> PairSet:
    """Simulated pairs for the seeds not divisible by ``share``, real ones for the rest; simulated first."""
    sim = simulated([int(s) for s in seeds if s % share])
    real = pair_set([render_real(int(s)) for s in seeds if not s % share])
    return PairSet.concat(sim, real)


def _endoscopy_pairs(seeds: Sequence[int], hw: tuple[int, int]) -> PairSet:
    from .data.endoscopy import EndoConfig, render_pair

    cfg = EndoConfig(out_hw=hw)
    return pair_set([render_pair(int(s), cfg) for s in seeds])


PHOTO_SHARE = 2  # every 2nd training pair of intraop-enhance is a real photograph


def _tuning_photos() -> list[np.ndarray]:
    from .realphotos import TUNE, load_all

    photos = list(load_all(TUNE).values())
    if not photos:
        raise ConfigError("intraop-enhance training needs scikit-image's bundled photographs (ganrt[export])")
    return photos


def _intraop_pretrain_pairs(seeds: Sequence[int], hw: tuple[int, int]) -> PairSet:
    """Tuning-photograph pairs whose only harm is heavy sensor noise (data/photo_pairs.NOISE_ONLY): the
    stage that teaches the student to denoise. Trained on the full mix from the start it did not learn
    to (it left a low-light photograph's noise, chroma noise above all, as it came)."""
    from .data.photo_pairs import NOISE_ONLY, render_photo_pair

    photos, cfg = _tuning_photos(), replace(NOISE_ONLY, out_hw=hw)
    return pair_set([render_photo_pair(int(s), photos, cfg) for s in seeds])


def _intraop_train_pairs(seeds: Sequence[int], hw: tuple[int, int]) -> PairSet:
    """Procedural endoscopy (odd seeds) and real-photograph pairs (even seeds, data/photo_pairs.py),
    endoscopy first (training samples at random)."""
    from .data.photo_pairs import PhotoPairConfig, render_photo_pair

    photos = _tuning_photos()
    cfg = PhotoPairConfig(out_hw=hw)
    return _interleaved(seeds, PHOTO_SHARE, lambda ss: _recoloured(_endoscopy_pairs(ss, hw), ss, cfg),
                        lambda s: render_photo_pair(s, photos, cfg))


def _recoloured(pairs: PairSet, seeds: Sequence[int], cfg: PhotoPairConfig) -> PairSet:
    """The procedural endoscopy frames through the photographs' colour randomisation, one draw per pair
    applied to input and target alike. Left in their one mucosa palette, they taught the student to add
    red wherever it brightened a dark frame (+6 a* on a low-light cat photograph)."""
    from .data.photo_pairs import Recolour

    for i, s in enumerate(seeds):
        rc = Recolour.draw(np.random.default_rng([int(s), 0xC01]), cfg.wb_gain, cfg.hue_deg)
        pairs.inputs[i], pairs.targets[i] = rc(pairs.inputs[i]), rc(pairs.targets[i])
    return pairs


def _us_cine(seed: int, n: int, hw: tuple[int, int], fps: float, factor: int = 1):
    from .data.simulator import SimConfig, cine, to_uint8
    from .data.us_sr import downsample

    for s in cine(seed, n, SimConfig(out_hw=hw), fps=fps):
        yield to_uint8(s.input if factor == 1 else downsample(s.input, factor)), to_uint8(s.target)


def _us_sr2x_cine(seed: int, n: int, hw: tuple[int, int], fps: float):
    return _us_cine(seed, n, hw, fps, factor=2)


def _endoscopy_cine(seed: int, n: int, hw: tuple[int, int], fps: float):
    import cv2

    from .data.endoscopy import EndoConfig, cine
    from .data.simulator import to_uint8

    for s in cine(seed, n, EndoConfig(out_hw=hw), fps=fps):
        yield (cv2.cvtColor(to_uint8(s.input), cv2.COLOR_RGB2BGR), cv2.cvtColor(to_uint8(s.target), cv2.COLOR_RGB2BGR))


# Every task's budget fits 2 CPU cores: a whole export takes 10-15 min (us-sr2x 12, intraop-enhance 11; the latter on
# a 2-core AVX2 machine: data 2-3 min, teacher 2.5, distillation 3.5, fine-tune 2, export and gates 3).
# The ultrasound models are structure-preserving (output = input + residual without its local mean) and
# upsample without checkerboards; the low-pass is the one the pairs' targets are matched with.
_US_LOWPASS = 7
_US_TEACHER = TeacherConfig(upsample="resize", lowpass=_US_LOWPASS)

TASKS: dict[str, Task] = {
    "us-enhance": Task(
        name="us-enhance",
        description="Ultrasound B-mode despeckle + detail restoration at the same size "
        "(point-of-care probe -> cart-quality image)",
        channels=1,
        scale=1,
        size_multiple=4,
        make_pairs=_us_pairs,
        make_cine=_us_cine,
        teacher=_US_TEACHER,
        student=StudentConfig(lowpass=_US_LOWPASS),
        # Budgets cut to fit a rebuild on 2 cores shared with several other jobs (the 800 / 600 / 500-step
        # defaults took ~35 min with the cores to themselves; a teacher step here took 4-9 s instead of
        # ~1.3). The teacher stops at the end of its L1 warm-up: an L1 teacher of a structure-preserving
        # model, no adversarial texture.
        teacher_train=TeacherTrainConfig(steps=100, batch=2, patch=96, checkpoint_every=50),
        # lr 2e-3 (the default) collapsed this student in its first step: dead ReLUs in the last block and a
        # zero residual (output = input); 5e-4 without the adversarial phase (slowest, least needed here)
        distill=DistillConfig(steps=120, adv_steps=0, lr=5e-4, checkpoint_every=40),
        finetune=FinetuneConfig(steps=40, qat_start=15, checkpoint_every=40),
    ),
    "us-sr2x": Task(
        name="us-sr2x",
        description="Ultrasound B-mode 2x super-resolution (a frame at half resolution -> the same frame at "
        "full resolution; speckle and noise are left to us-enhance)",
        channels=1,
        scale=2,
        size_multiple=2,
        make_pairs=_us_sr2x_pairs,
        make_train_pairs=_us_sr2x_train_pairs,
        make_cine=_us_sr2x_cine,
        # bicubic bases: bilinear started the models ~2 dB below bicubic on real scans
        teacher=replace(_US_TEACHER, scale=2, base="bicubic"),
        # body at 1/2 of the input = 1/4 of the output, like us-enhance's: 1.6 GMAC per 512^2 output
        student=StudentConfig(width=32, n_blocks=5, down=2, scale=2, lowpass=_US_LOWPASS, base="bicubic"),
        teacher_train=TeacherTrainConfig(steps=100, batch=2, patch=48, checkpoint_every=50),
        data_note=("Trained on simulated pseudo-B-mode ultrasound (ganrt's physics simulator) and on tiles of one real "
                   "echo cine that ships with pydicom (examples_ybr_color.dcm), each with its own 2x reduction; not "
                   "validated on patient data and not a diagnostic device."),
        # The student learns from the targets alone: the 100-step teacher ends level with bicubic, so it
        # has nothing to teach a correction on top of bicubic (and is not run). L1 + MSE, no SSIM term:
        # the check is PSNR, and with SSIM (whose loss is ~5x the others here) the student only tied
        # bicubic on the real GE frame. Without the teacher a step is cheap (batch 16 of 48^2), so
        # distillation runs long; no adversarial phase (texture losses invent speckle).
        distill=DistillConfig(steps=3000, adv_steps=0, batch=16, patch=48, lr=3e-4, w_teacher=0.0, w_feat=0.0,
                              w_ssim=0.0, w_mse=10.0, checkpoint_every=500),
        finetune=FinetuneConfig(steps=300, qat_start=100, batch=16, patch=48, lesion_batch=6, lr=1e-4,
                                w_teacher=0.0, w_ssim=0.0, w_mse=10.0, checkpoint_every=100),
    ),
    "intraop-enhance": Task(
        name="intraop-enhance",
        description="Endoscopic / laparoscopic RGB video: denoise, brighten, dehaze and restore detail "
        "(low light and surgical smoke -> clean, well-exposed frame) at the same size",
        channels=3,
        scale=1,
        size_multiple=2,
        make_pairs=_endoscopy_pairs,
        make_train_pairs=_intraop_train_pairs,
        make_cine=_endoscopy_cine,
        color_order="rgb",
        teacher=TeacherConfig(channels=3, ngf=48),
        # Body at 1/2 resolution (2.4 GMAC at 512^2 with 3 blocks). At 1/4 a 4x4 RGB block is 48 values squeezed into
        # 32 channels, too few for per-pixel denoising: trained alike for 250 steps on 24 held-out
        # scenes, width 32 at 1/4 reached SSIM 0.678, width 48 at 1/4 0.722, width 24 at 1/2 0.738.
        # The context branch (frame-level pooling): without it the student could not tell a bright grey
        # background from a veil and darkened it even in clean frames (motorcycle local L* p95 13.4; with it
        # 1-3 on the tuning photographs). Two coarse blocks as well lifted low light by 0.45-0.6 dB there but
        # cost 12-16 % at 512^2 and gave the report's stained-tissue photograph a warm cast: not used.
        # The gated chroma smoothing (smooth): without it the student left low light's colour noise as it came
        # (chelsea 20.2 dB / CIEDE2000 13.8, behind CLAHE + NLM's 12.8); with it, 24.7 / 5.7 once bundled,
        # smoke and clean frames still within the targets on the tuning photographs. On the body's grid it
        # costs 7-11 % at 512^2 (14-18 % on the output grid), and 3 body blocks instead of 4 pay for it and
        # the context branch: 0.97x fp32 / 1.01x int8-cpu against the bundle before the colour work. Trained
        # alike on the tuning photographs, 3 and 4 blocks both won 12 of 12 degraded cases; 16 channels x 5
        # blocks (0.87x) fell behind on low light. A luma gate as well opened on the clean dusk rocket
        # photograph and erased its launch towers' lattice; chroma only still softens it (the student reads a
        # dark clean scene as low light). Width 48 at 1/4 (the same time) did not denoise, with or without a
        # first stage.
        student=StudentConfig(channels=3, width=24, n_blocks=3, down=2, context=16, smooth=3, smooth_grid="body"),
        # The student learns from the targets alone, long, without an adversarial phase: distilled from the
        # 600-step teacher (L1 x 0.25, its features and discriminator) it darkened bright grey backgrounds
        # and shadows of real photographs and lost to the input itself on blur + noise; target-only it does
        # not (benchmarks/results/realscan/realphoto.md). The teacher, which it no longer needs, is kept
        # short (150 steps) for the student-vs-teacher report.
        teacher_train=TeacherTrainConfig(steps=150, batch=2, patch=128),
        # 4000 steps: at 2000 the loss was still falling; on the tuning photographs' low light the longer run
        # reached 20.3 / 18.8 dB (chelsea, motorcycle) against 19.2 / 18.3 (same branches and pairs).
        # A noise-only first stage (make_pretrain_pairs, `--pretrain-steps 1000`) makes the student denoise low
        # light (ahead of CLAHE + NLM there on all four tuning photographs and three of four report ones) but
        # moves clean frames' chroma (retina median 3.2) and weakens smoke: not the default
        # (benchmarks/results/intraop_pretrain_candidate).
        distill=DistillConfig(steps=4000, adv_steps=0, batch=8, patch=96, lr=5e-4, w_teacher=0.0, w_feat=0.0,
                              checkpoint_every=500),
        make_pretrain_pairs=_intraop_pretrain_pairs,
        finetune=FinetuneConfig(steps=300, qat_start=100, batch=8, patch=96, lesion_batch=6, w_teacher=0.0,
                                checkpoint_every=100),
        data_note="Trained on procedurally synthesised endoscopic frames (ganrt's tissue generator: "
        "noise-field mucosa, vessels, a polyp, highlights, scope circle; degraded by low light, smoke, blur, "
        "sensor noise and JPEG) and, for every second pair, a crop of one of scikit-image's tuning photographs "
        "(export/realphotos.py), 40% of them clean, the rest degraded alike (export/data/photo_pairs.py); every "
        "training pair colour-randomised (white balance, hue), input and target alike; not validated on patient "
        "video and not a diagnostic device.",
    ),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r} (available: {', '.join(sorted(TASKS))})") from None
