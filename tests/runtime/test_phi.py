"""PHI masking: burned-in text outside the imaging region never reaches a sink, in any frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from bundles import blur_model
from scenes import bright_outside, bundle, stream, ui_cine

from ganrt.runtime.cli import main
from ganrt.runtime.errors import ConfigError
from ganrt.runtime.frames import Frame, FrameResult, Outcome, Reason
from ganrt.runtime.sinks.files import PngSink
from ganrt.runtime.trust.guard import GuardConfig
from ganrt.runtime.trust.phi import PhiConfig, PhiMasker
from ganrt.runtime.trust.region import Region, RegionConfig, RegionMode, RegionTracker

AUTO = RegionConfig(RegionMode.AUTO)


def _final_mask(frames) -> np.ndarray:
    tracker = RegionTracker(AUTO)
    return [r for r in (tracker.region_for(i, f) for i, f in enumerate(frames[:15])) if r is not None][0].mask


@pytest.mark.parametrize("colour", [False, True])
def test_text_never_leaves_pending_or_enhanced_frames(tmp_path, colour):
    frames, sector, ui = ui_cine(18, colour=colour)
    mask = _final_mask(frames)
    assert all(bright_outside(f, mask) > 100 for f in frames)  # the UI is there to begin with
    man = bundle(tmp_path / "b", blur_model(1))
    png = PngSink(tmp_path / "png", inputs=True)
    report, rec, keep = stream(frames, man, GuardConfig(region=AUTO, phi=PhiConfig(enabled=True)), sinks=[png])
    assert [r.reason for r in rec.rows[:14]] == [Reason.REGION_PENDING] * 14  # raw, yet masked
    assert report.enhanced == 4
    for i in range(18):
        for img in (keep.shown[i], keep.frames[i],
                    cv2.imread(str(tmp_path / "png" / f"frame_{i:06d}.png"), cv2.IMREAD_UNCHANGED),
                    cv2.imread(str(tmp_path / "png" / f"input_{i:06d}.png"), cv2.IMREAD_UNCHANGED)):
            for box in (*ui.text, ui.scale):
                assert not img[box.slices].any(), (i, box)  # every pixel of the text's box blanked
            if i >= 14:
                assert bright_outside(img, mask) == 0  # nothing text-like left outside the sector
        inside = mask > 0
        assert np.array_equal(keep.frames[i][inside], frames[i][inside])  # the image itself is untouched
    assert "PHI: everything outside" in report.format_table()


def test_profile_keep_boxes_stay_visible():
    frames, _, ui = ui_cine(16)
    mask = _final_mask(frames)
    masker = PhiMasker(PhiConfig(enabled=True, keep=(ui.scale,)))
    region = Region.from_mask(mask, "test")
    result = FrameResult(0, Outcome.PASSTHROUGH, pixels=frames[15].copy())
    out = masker.apply(Frame(15, 0, frames[15]), result, region)
    assert np.array_equal(out.pixels[ui.scale.slices], frames[15][ui.scale.slices])
    assert not out.pixels[ui.text[0].slices].any() and not result.pixels[ui.text[0].slices].any()


def test_without_any_region_everything_but_the_kept_boxes_is_blanked():
    text_only = np.zeros((64, 80), np.uint8)
    cv2.putText(text_only, "DOE", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    masker = PhiMasker(PhiConfig(enabled=True))
    result = FrameResult(0, Outcome.PASSTHROUGH, pixels=text_only.copy())
    assert not masker.apply(Frame(0, 0, text_only), result, None).pixels.any() and not result.pixels.any()


def test_no_region_found_means_nothing_outside_is_trusted(tmp_path):
    blank = [np.zeros((64, 80), np.uint8) for _ in range(4)]
    for f in blank:
        cv2.putText(f, "DOE", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)  # text and nothing else
    man = bundle(tmp_path / "b", blur_model(1))
    report, _, keep = stream(blank, man, GuardConfig(region=RegionConfig(RegionMode.AUTO, frames=2),
                                                     phi=PhiConfig(enabled=True)))
    assert report.guard["regions"][0]["source"] == "auto-none"
    assert not any(s.any() or f.any() for s, f in zip(keep.shown, keep.frames))


def test_masking_fails_closed(monkeypatch):
    frames, _, _ = ui_cine(1, colour=True)
    masker = PhiMasker(PhiConfig(enabled=True))

    def broken(*_a, **_k):
        raise MemoryError("no room")

    monkeypatch.setattr(masker, "_keep_mask", broken)
    result = FrameResult(0, Outcome.ENHANCED, pixels=frames[0].copy())
    out = masker.apply(Frame(0, 0, frames[0]), result, None)
    assert not out.pixels.any() and not result.pixels.any() and masker.failures == 1
    assert out.pixels.shape == frames[0].shape


def test_masking_needs_a_region(tmp_path, capsys):
    with pytest.raises(ConfigError, match="needs an imaging region"):
        GuardConfig(phi=PhiConfig(enabled=True))
    frames, _, _ = ui_cine(2)
    src = tmp_path / "in.avi"
    vw = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (256, 256))
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    vw.release()
    man_dir = bundle(tmp_path / "b", blur_model(1)).root
    # the whole frame asked for (an ultrasound bundle's default region is detected, which masking accepts)
    rc = main(["run", "--source", str(src), "--model", str(man_dir), "--out", str(tmp_path / "o"), "--precision", "fp32",
               "--mask-phi", "--region", "full"])
    err = capsys.readouterr().err
    assert rc == ConfigError.exit_code
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "needs an imaging region" in lines[0] and "Traceback" not in err
