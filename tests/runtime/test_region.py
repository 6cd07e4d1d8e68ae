"""The imaging region: detected on simulated scanner video with burned-in UI, or configured; and the
pipeline's promise that nothing outside it changes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from bundles import blur_model
from fakes import FakeRunner, FakeSource, ManualClock
from scenes import MS, KeepSink, bundle, stream, ui_cine

from ganrt.runtime.errors import ConfigError
from ganrt.runtime.frames import Frame, Outcome, Reason
from ganrt.runtime.model.manifest import Artifact, Manifest, Precision, TensorSpec
from ganrt.runtime.model.ops import Enhancer, to_uint8
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.serve.policy import PolicyConfig
from ganrt.runtime.trust.guard import GuardConfig
from ganrt.runtime.trust.region import (
    Box,
    Region,
    RegionConfig,
    RegionMode,
    RegionOutside,
    RegionTracker,
    detect_still,
    luma_u8,
)

AUTO = RegionConfig(RegionMode.AUTO)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float((a & b).sum()) / float((a | b).sum())


def detect(frames, config=AUTO) -> Region:
    tracker = RegionTracker(config)
    regions = [tracker.region_for(i, f) for i, f in enumerate(frames)]
    assert all(r is None for r in regions[:config.frames - 1])  # still collecting
    return regions[config.frames - 1]


@pytest.mark.parametrize("colour", [False, True])
def test_sector_found_from_motion_text_and_scale_excluded_calipers_carved(colour):
    frames, sector, ui = ui_cine(16, colour=colour)
    region = detect(frames)
    assert region.source == "auto-motion" and region.hw == (256, 256)
    assert iou(region.mask, sector) > 0.9
    for box in (*ui.text, ui.scale):
        assert not region.mask[box.slices].any(), box  # no UI pixel may be enhanced
    for x, y in ui.calipers:  # burned-in marks inside the sector stay raw too
        assert region.mask[y, x] == 0 and region.mask[y, x - 2] == 0
    assert region.carved_px > 0


def test_clean_cine_region_matches_sector_and_carves_little():
    frames, sector, _ = ui_cine(16)
    clean = [f.copy() for f in frames]
    for f in clean:  # same cine, UI removed: the sector alone
        f[~sector] = 0
    region = detect(clean)
    assert iou(region.mask, sector) > 0.9
    assert region.carved_px < 0.005 * sector.sum()  # only a few static bright points, if any


def test_single_still_frame_uses_intensity_and_shape():
    frames, sector, ui = ui_cine(1)
    hull = detect_still(luma_u8(frames[0]))
    assert hull is not None and iou(hull, sector) > 0.85
    for box in ui.text:
        assert not hull[box.slices].any()
    region = detect(frames[:1], RegionConfig(RegionMode.AUTO, frames=1))  # `--region auto:1`
    assert region.source == "auto-still"


def test_blank_stream_falls_back_to_the_whole_frame():
    region = detect([np.zeros((64, 80), np.uint8)] * 3, RegionConfig(RegionMode.AUTO, frames=3))
    assert region.full and region.source == "auto-none"


def test_tracker_collects_only_what_a_short_file_has_and_restarts_on_a_new_size():
    frames, _, _ = ui_cine(4)
    tracker = RegionTracker(AUTO, expected_frames=4)
    got = [tracker.region_for(i, f) for i, f in enumerate(frames)]
    assert got[:3] == [None] * 3 and got[3] is not None  # 4 frames, not 15
    small = cv2.resize(frames[0], (128, 128))
    assert tracker.region_for(10, small).source == "auto-still"  # past the file's end (a loop): one frame
    tracker2 = RegionTracker(RegionConfig(RegionMode.AUTO, frames=2))
    assert tracker2.region_for(0, frames[0]) is None and tracker2.region_for(1, frames[1]).hw == (256, 256)
    assert tracker2.region_for(2, small) is None and tracker2.region_for(3, small).hw == (128, 128)
    assert [r.hw for r in tracker2.history] == [(256, 256), (128, 128)]


def test_fixed_regions(tmp_path):
    img = np.zeros((40, 60), np.uint8)
    rect = RegionTracker(RegionConfig.parse("10,5,20,30")).region_for(0, img)
    assert rect.box == Box(10, 5, 20, 30) and int(rect.mask.sum() // 255) == 600
    poly = RegionTracker(RegionConfig(RegionMode.POLYGON, polygon=((0, 0), (59, 0), (0, 39)))).region_for(0, img)
    assert poly.mask[1, 1] and not poly.mask[38, 58]
    mask_file = tmp_path / "sector.png"
    m = np.zeros((40, 60), np.uint8)
    m[10:20, 10:50] = 255
    cv2.imwrite(str(mask_file), m)
    tr = RegionTracker(RegionConfig(RegionMode.MASK, mask=mask_file))
    assert np.array_equal(tr.region_for(0, img).mask, m)
    with pytest.raises(RegionOutside):
        tr.region_for(1, np.zeros((50, 60), np.uint8))  # a mask drawn for another frame size
    with pytest.raises(RegionOutside):
        RegionTracker(RegionConfig.parse("100,100,5,5")).region_for(0, img)
    assert RegionTracker(RegionConfig.parse("full")).region_for(0, img).full


@pytest.mark.parametrize("text, message", [("0,0,10", "X,Y,W,H"), ("auto:x", "auto:FRAMES"), ("1,2,0,4", "positive"),
                                           ("auto:0", ">= 1"), ("sector", "X,Y,W,H")])
def test_bad_region_options(text, message):
    with pytest.raises(ConfigError, match=message):
        RegionConfig.parse(text)


def test_region_options_parse():
    assert RegionConfig.parse("auto").mode is RegionMode.AUTO
    assert RegionConfig.parse("auto:5").frames == 5
    assert RegionConfig.parse("FULL").mode is RegionMode.FULL
    with pytest.raises(ConfigError, match="does not exist"):
        RegionConfig(RegionMode.MASK, mask=Path("/nonexistent/mask.png"))


def test_crop_box_is_a_multiple_inside_the_frame_around_the_region():
    m = np.zeros((50, 70), np.uint8)
    m[3:20, 61:70] = 255
    r = Region.from_mask(m, "test")
    for k in (1, 4, 8):
        x, y, w, h = r.crop_box(k)
        assert w % k == 0 and h % k == 0 and x >= 0 and y >= 0 and x + w <= 70 and y + h <= 50
        assert x <= 61 and y <= 3 and x + w >= 70 and y + h >= 20


@pytest.mark.parametrize("colour", [False, True])
def test_outside_the_region_output_is_bit_identical_through_the_pipeline(tmp_path, colour):
    frames, _, ui = ui_cine(20, colour=colour)
    man = bundle(tmp_path / "b", blur_model(1, offset=0.1))  # changes every pixel it is given
    report, rec, keep = stream(frames, man, GuardConfig(region=AUTO))
    outcomes = [(r.outcome, r.reason) for r in rec.rows]
    assert outcomes[:14] == [(Outcome.PASSTHROUGH, Reason.REGION_PENDING)] * 14
    assert outcomes[14:] == [(Outcome.ENHANCED, Reason.NONE)] * 6
    region = RegionTracker(AUTO).region_for  # same detection as the run's
    mask = [r for r in (region(i, f) for i, f in enumerate(frames[:15])) if r is not None][0].mask
    for i in range(14, 20):
        shown, raw = keep.shown[i], frames[i]
        outside = mask == 0
        assert np.array_equal(shown[outside], raw[outside])  # every UI pixel, bit for bit
        for box in ui.text:
            assert np.array_equal(shown[box.slices], raw[box.slices])
        assert np.count_nonzero(shown[~outside] != raw[~outside]) > 0.5 * np.count_nonzero(~outside)
    for i in range(14):
        assert np.array_equal(keep.shown[i], frames[i])  # pending frames are the raw frames
    assert report.guard["regions"][0]["source"] == "auto-motion"
    assert report.to_dict()["imaging_region"][0]["bbox"] == list(Region.from_mask(mask, "x").box)


def test_model_sees_only_the_region_box():
    frames, _, _ = ui_cine(16)
    clock = ManualClock()
    shapes = []
    runner = FakeRunner(latency_ms=1.0, clock=clock, fn=lambda x: shapes.append(x.shape) or x.copy())
    src = FakeSource(frames, clock=clock, interval_ns=33 * MS)
    cfg = PipelineConfig(policy=PolicyConfig(budget_ms=100.0), warmup=0, guard=GuardConfig(region=AUTO))
    from fakes import fake_manifest

    with runner:
        enh = Enhancer(runner, fake_manifest(1), clock=clock)
        run(src, enh, [], cfg, clock=clock)
    assert len(shapes) == 2  # frames 14 and 15
    h, w = shapes[0][2:]
    assert h % 4 == 0 and w % 4 == 0 and h * w < 0.9 * 256 * 256  # the sector's box, not the frame


def test_super_resolution_outside_is_the_enlarged_raw_frame():
    frames, _, _ = ui_cine(16)
    frames16 = [f.astype(np.uint16) * 257 for f in frames]  # 16-bit input too
    clock = ManualClock()
    up2 = lambda x: np.clip(np.repeat(np.repeat(x, 2, axis=2), 2, axis=3) * 0.8 + 0.1, 0, 1)  # noqa: E731
    runner = FakeRunner(latency_ms=1.0, clock=clock, fn=up2)
    spec = TensorSpec("input", 1)
    man = Manifest(root=Path("."), task="us-sr2x", input=spec, output=TensorSpec("output", 1), size_multiple=4,
                   scale=2, artifacts={"fp32": Artifact("fp32", Path("x.onnx"), Precision.FP32, "0" * 64)}, raw={})
    keep = KeepSink()
    src = FakeSource(frames16, clock=clock, interval_ns=33 * MS)
    cfg = PipelineConfig(policy=PolicyConfig(budget_ms=100.0), warmup=0, guard=GuardConfig(region=AUTO))
    with runner:
        enh = Enhancer(runner, man, clock=clock)
        report = run(src, enh, [keep], cfg, clock=clock)
    assert report.enhanced == 2
    tracker = RegionTracker(AUTO)
    mask = [r for r in (tracker.region_for(i, f) for i, f in enumerate(frames16[:15])) if r is not None][0].mask
    raw_big = enh.passthrough(Frame(15, 0, frames16[15]))
    shown = keep.shown[15]
    assert shown.shape == (512, 512)
    outside = cv2.resize(mask, (512, 512), interpolation=cv2.INTER_NEAREST) == 0
    assert np.array_equal(shown[outside], raw_big[outside])  # the enlarged raw frame, exactly
    assert np.count_nonzero(shown[~outside] != raw_big[~outside]) > 0.5 * np.count_nonzero(~outside)
    assert np.array_equal(keep.shown[0], cv2.resize(to_uint8(frames16[0]), (512, 512), interpolation=cv2.INTER_LINEAR))


def test_frames_read_ahead_give_the_first_frame_its_region():
    frames, _, _ = ui_cine(20)
    collected = RegionTracker(AUTO)
    found = [r for r in (collected.region_for(i, f) for i, f in enumerate(frames)) if r is not None][0]
    ahead = RegionTracker(AUTO)
    primed = ahead.prime(frames[:AUTO.frames])
    assert ahead.region_for(0, frames[0]) is primed  # no frame waits
    assert primed.source == "auto-motion-lookahead" and np.array_equal(primed.mask, found.mask)
    assert RegionTracker(RegionConfig()).prime(frames) is None  # only auto mode reads ahead
    assert RegionTracker(AUTO).prime([]) is None


def test_read_ahead_reopens_files_but_never_a_camera():
    from types import SimpleNamespace

    from ganrt.runtime.serve.stream import StreamSpec, read_ahead

    frames, _, _ = ui_cine(20)
    opened = []

    def opener(spec, clock):
        opened.append(spec)
        return FakeSource(frames, n=len(frames), clock=clock)

    setup = SimpleNamespace(guard=GuardConfig(region=AUTO))
    spec = StreamSpec("scan.mp4", Path("out"), realtime=True, loop=True, max_frames=500)
    file_src, camera = SimpleNamespace(replayable=True), SimpleNamespace(replayable=False, live=True)
    assert read_ahead(spec, setup, camera, opener, ManualClock()) == [] and opened == []
    got = read_ahead(spec, setup, file_src, opener, ManualClock())
    assert len(got) == AUTO.frames and np.array_equal(got[0], frames[0])
    assert opened[0].realtime is False and opened[0].loop is False and opened[0].max_frames == AUTO.frames
    assert read_ahead(spec, SimpleNamespace(guard=GuardConfig()), file_src, opener, ManualClock()) == []  # not auto
