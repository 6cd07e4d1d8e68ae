"""The guard's wiring: temporal filter and flicker, change map, profile sections, `ganrt run` options,
and failures inside the checks (a raw, marked frame; never a crash or a lost frame)."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from bundles import blur_model
from fakes import FakeRunner, FakeSource, ManualClock, fake_manifest
from scenes import MS, KeepSink, blob_model, bundle, stream, ui_cine

from ganrt.runtime.cli import main
from ganrt.runtime.errors import ConfigError
from ganrt.runtime.frames import Outcome, Reason
from ganrt.runtime.model.ops import Enhancer
from ganrt.runtime.model.profiles import DeviceProfile
from ganrt.runtime.serve.pipeline import PipelineConfig, run
from ganrt.runtime.serve.policy import PolicyConfig
from ganrt.runtime.trust.changemap import ChangeMapSink, change_heatmap
from ganrt.runtime.trust.guard import Guard, GuardConfig
from ganrt.runtime.trust.region import RegionConfig, RegionMode
from ganrt.runtime.trust.temporal import TemporalConfig, TemporalFilter

AUTO = RegionConfig(RegionMode.AUTO)


def fake_stream(frames, fn=None, guard=GuardConfig(), runner_kw=None, sinks=()):
    clock = ManualClock()
    runner = FakeRunner(latency_ms=1.0, clock=clock, fn=fn, **(runner_kw or {}))
    keep = KeepSink()
    src = FakeSource(frames, clock=clock, interval_ns=33 * MS)
    cfg = PipelineConfig(policy=PolicyConfig(budget_ms=100.0), warmup=0, guard=guard)
    with runner:
        enh = Enhancer(runner, fake_manifest(1), clock=clock)
        report = run(src, enh, [keep, *sinks], cfg, clock=clock)
    return report, keep


def _alternating():
    calls = itertools.count()
    return lambda x: np.clip(x + (0.08 if next(calls) % 2 else -0.08), 0.0, 1.0)  # shimmers frame to frame


def test_flicker_is_measured_against_the_input_and_the_ema_calms_it():
    frames, _, _ = ui_cine(12)
    ident, _ = fake_stream(frames)
    assert ident.quality["flicker"]["n"] == 11 and ident.quality["flicker"]["excess"] == 0.0
    shimmer, _ = fake_stream(frames, fn=_alternating())
    calm, _ = fake_stream(frames, fn=_alternating(), guard=GuardConfig(temporal=TemporalConfig(TemporalFilter.EMA, 0.5)))
    assert shimmer.quality["flicker"]["excess"] > 5.0  # about 2 x 0.08 x 255 levels of added shimmer
    assert 0 < calm.quality["flicker"]["excess"] < 0.6 * shimmer.quality["flicker"]["excess"]
    assert "flicker (mean frame-to-frame change" in shimmer.format_table()


def test_ema_restarts_after_a_raw_frame():
    frames, _, _ = ui_cine(6)
    fn = lambda x: np.clip(x * 0.5, 0, 1)  # noqa: E731
    _, plain = fake_stream(frames, fn=fn)
    report, keep = fake_stream(frames, fn=fn, guard=GuardConfig(temporal=TemporalConfig(TemporalFilter.EMA, 0.5)),
                               runner_kw=dict(fail_on={3}))
    assert [r.outcome for r in keep.results] == [Outcome.ENHANCED] * 3 + [Outcome.PASSTHROUGH] + [Outcome.ENHANCED] * 2
    assert np.array_equal(keep.shown[0], plain.shown[0])  # nothing to blend with yet
    assert not np.array_equal(keep.shown[1], plain.shown[1])  # blended with frame 0
    assert np.array_equal(keep.shown[4], plain.shown[4])  # after the raw frame: a fresh start, not a blend


def test_change_map_shows_where_the_model_changed_the_frame(tmp_path):
    frames, _, _ = ui_cine(16)
    raw = frames[15]
    same = change_heatmap(raw, raw)
    changed = raw.copy()
    changed[100:140, 100:140] = np.clip(changed[100:140, 100:140].astype(int) + 64, 0, 255)
    heat = change_heatmap(raw, changed)
    assert heat[100:140, 100:140].mean() > same[100:140, 100:140].mean() + 100
    assert np.array_equal(heat[:90], same[:90])  # unchanged pixels look the same in both maps
    inner = KeepSink()
    man = bundle(tmp_path / "blob", blob_model(amp=1.0))
    stream(frames, man, GuardConfig(region=AUTO), sinks=[ChangeMapSink(inner)])
    assert len(inner.shown) == 16 and inner.shown[15].shape == (256, 256, 3)
    centre = inner.shown[15][110:146, 110:146].astype(int).sum(axis=2).mean()
    corner = inner.shown[15][20:40, 5:40].astype(int).sum(axis=2).mean()  # blanked-out UI corner: no change
    assert centre > corner + 150


def test_a_failing_check_shows_the_raw_frame_and_the_stream_goes_on(monkeypatch):
    frames, _, _ = ui_cine(6)
    real = Guard.finish
    calls = itertools.count()

    def flaky(self, *a, **k):
        if next(calls) == 2:
            raise RuntimeError("check broke")
        return real(self, *a, **k)

    monkeypatch.setattr(Guard, "finish", flaky)
    report, keep = fake_stream(frames, fn=lambda x: x * 0.5)
    assert [r.reason for r in keep.results] == [Reason.NONE] * 2 + [Reason.CHECK_ERROR] + [Reason.NONE] * 3
    assert np.array_equal(keep.shown[2], frames[2]) and report.frames_in == 6


def test_a_region_that_misses_the_frame_shows_it_raw():
    frames, _, _ = ui_cine(3)
    report, keep = fake_stream(frames, guard=GuardConfig(region=RegionConfig.parse("300,300,10,10")))
    assert report.passthrough == {"no-region": 3}
    assert all(np.array_equal(s, f) for s, f in zip(keep.shown, frames))


def test_profile_sections_are_typed_and_checked(tmp_path):
    base = 'name="cart"\nbudget_ms=33\ninput_hw=[512,512]\nprecision="int8-cpu"\nbackends=["onnxruntime"]\n'
    cv2.imwrite(str(tmp_path / "sector.png"), np.full((8, 8), 255, np.uint8))
    good = tmp_path / "cart.toml"
    good.write_text(base + '[region]\nmode="mask"\nmask="sector.png"\n[phi]\nenabled=true\nkeep=[[1,2,3,4]]\n'
                           '[temporal]\nfilter="ema"\nalpha=0.5\n')
    p = DeviceProfile.load(good)
    assert p.region.mode is RegionMode.MASK and p.region.mask == tmp_path / "sector.png"  # relative to the profile
    assert p.phi.enabled and tuple(p.phi.keep[0]) == (1, 2, 3, 4)
    assert p.temporal == TemporalConfig(TemporalFilter.EMA, 0.5)
    for body, message in [('[region]\nmdoe="auto"\n', "unknown key 'region.mdoe'"),
                          ('[region]\nmode="sector"\n', "region.mode 'sector'"),
                          ('[region]\nmode="rect"\n', "needs its 'rect'"),
                          ('[phi]\nkeep=[[1,2]]\n', "phi.keep"),
                          ('[temporal]\nfilter="ema"\nalpha=3\n', "alpha"),
                          ('[region]\nmode="mask"\nmask="none.png"\n', "does not exist")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(base + body)
        with pytest.raises(ConfigError) as ei:
            DeviceProfile.load(bad)
        assert str(ei.value).startswith("bad.toml: ") and message in str(ei.value), str(ei.value)
    assert DeviceProfile.load("jetson-orin-nano").region.mode is RegionMode.AUTO


def _video(path: Path, frames) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (frames[0].shape[1], frames[0].shape[0]))
    for f in frames:
        vw.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    vw.release()
    return path


def test_run_options_end_to_end(tmp_path, capsys):
    frames, _, _ = ui_cine(18)
    src = _video(tmp_path / "in.avi", frames)
    man_dir = bundle(tmp_path / "b", blur_model(1)).root
    out = tmp_path / "o"
    rc = main(["run", "--source", str(src), "--model", str(man_dir), "--precision", "fp32", "--out", str(out),
               "--sink", "null", "--record", "csv", "--region", "auto", "--mask-phi", "--temporal-filter", "ema:0.7",
               "--change-map", "--budget-ms", "10000"])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads((out / "report.json").read_text())
    # a file source is read ahead: the region is found before the first frame is shown
    assert rep["imaging_region"][0]["source"] == "auto-motion-lookahead"
    assert rep["guard"] == {"region_mode": "auto", "fidelity": rep["guard"]["fidelity"], "temporal_filter": "ema:0.7",
                            "phi_masked": True, "phi_failures": 0, "tone": rep["guard"]["tone"], "input_domain": None}
    assert rep["guard"]["tone"]["max_median"] == 3.0 and rep["tone"]["checked"] == 18
    assert rep["guard"]["fidelity"]["min_db"] > 0 and rep["fidelity"]["checked"] == rep["enhanced"] == 18
    assert rep["passthrough_by_reason"] == {}
    rows = list(csv.DictReader(open(out / "record.csv")))
    assert len(rows) == 18 and {"guard_ms", "change_score", "fidelity_db", "flicker_in", "flicker_out"} <= set(rows[0])
    assert all(float(r["change_score"]) > 0 for r in rows)
    cap = cv2.VideoCapture(str(out / "change_map.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 18
    json.dumps(rep, allow_nan=False)


@pytest.mark.parametrize("argv, message", [(["--region", "1,2"], "--region"),
                                           (["--temporal-filter", "ema:2"], "--temporal-filter"),
                                           (["--temporal-filter", "median"], "--temporal-filter")])
def test_bad_run_options_are_one_line(tmp_path, capsys, argv, message):
    src = _video(tmp_path / "in.avi", ui_cine(2)[0])
    man_dir = bundle(tmp_path / "b", blur_model(1)).root
    rc = main(["run", "--source", str(src), "--model", str(man_dir), "--precision", "fp32", "--out",
               str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert rc == ConfigError.exit_code
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_record_rows_carry_the_new_columns_as_strict_json():
    frames, _, _ = ui_cine(16)
    report, keep = fake_stream(frames, fn=lambda x: x * 0.9, guard=GuardConfig(region=AUTO))
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["change_score"]["n"] == 2 and d["latency_ms"]["guard_ms"]["max"] is not None
    assert math.isnan(keep.results[0].change_score) and keep.results[15].change_score > 0


def test_graphics_and_colour_inside_the_region_pass_through_bit_identical():
    frames, sector, _ = ui_cine(16, colour=True)
    marked = []
    for f in frames:
        g = f.copy()
        ys, xs = np.nonzero(sector)
        cy, cx = int(ys.mean()), int(xs.mean())
        cv2.drawMarker(g, (cx, cy), (255, 255, 255), cv2.MARKER_CROSS, 15, 1)  # a caliper inside the sector
        cv2.circle(g, (cx + 30, cy), 6, (0, 0, 255), -1)  # a colour-flow patch
        marked.append(g)
    marks = np.zeros(sector.shape, bool)
    cv2.drawMarker(marks.view(np.uint8), (cx, cy), 1, cv2.MARKER_CROSS, 15, 1)
    cv2.circle(marks.view(np.uint8), (cx + 30, cy), 6, 1, -1)
    report, keep = fake_stream(marked, fn=lambda x: np.clip(cv2.blur(x[0, 0], (5, 5))[None, None], 0, 1),
                               guard=GuardConfig(region=AUTO))
    assert report.enhanced == 2  # the source is not replayable: 14 frames collect the region first
    enhanced = [(f, sh) for f, sh, r in zip(marked, keep.shown, keep.results) if r.outcome is Outcome.ENHANCED]
    for f, shown in enhanced:
        assert np.array_equal(shown[marks], f[marks])  # the caliper and the colour, bit for bit
        tissue = (sector > 0) & ~cv2.dilate(marks.view(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        assert np.count_nonzero(shown[tissue] != f[tissue]) > 0.5 * tissue.sum() * 3  # the tissue was enhanced
