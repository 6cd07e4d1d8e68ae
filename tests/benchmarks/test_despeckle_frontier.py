"""The equal-EPI comparison of us-enhance with filter sweeps and blends: the curve arithmetic, and one
real acquisition end to end (2 frames, short sweeps)."""

from __future__ import annotations

import numpy as np
import pytest

from ganrt.benchmarks import despeckle_frontier as df
from ganrt.benchmarks.filters import FilterKind, FilterSpec


def test_the_curve_starts_at_the_input_and_is_read_linearly_on_either_axis():
    c = df.curve([{"epi": 0.7, "speckle": 0.4}, {"epi": 0.9, "speckle": 0.8}])
    assert c == [(1.0, 1.0), (0.9, 0.8), (0.7, 0.4)]
    assert df.interp(c, 0.8, 0) == pytest.approx(0.6)  # speckle at EPI 0.8
    assert df.interp(c, 0.6, 1) == pytest.approx(0.8)  # EPI at speckle 0.6
    assert df.interp(c, 0.95, 0) == pytest.approx(0.9)  # between the input and the weakest setting
    assert df.interp(c, 0.5, 0) is None  # stronger than anything swept: no claim


def test_a_blend_runs_from_the_input_to_the_filter():
    img = np.random.default_rng(0).integers(0, 256, (32, 40), dtype=np.uint8)
    spec = FilterSpec(FilterKind.GAUSSIAN, (("sigma", 2.0),))
    assert np.array_equal(df.Blend(spec, 0.0).apply(img), img)
    assert np.array_equal(df.Blend(spec, 1.0).apply(img), spec.apply(img))
    half = df.Blend(spec, 0.5).apply(img).astype(int)
    assert np.abs(half - (img.astype(int) + spec.apply(img)) / 2).max() <= 1
    assert dict(df.Blend(spec, 0.5).params)["blend"] == 0.5


def test_only_frames_outside_the_tuning_set_count():
    acqs = {a.name: a for a in df.load_annotations()}
    assert not df.held_out(acqs["echo-ybr"]) and not df.held_out(acqs["ge-doppler-j2k"])
    assert df.held_out(acqs["ge-doppler"]) and df.held_out(acqs["philips-ob"])


def test_a_real_acquisition_end_to_end(monkeypatch):
    monkeypatch.setattr(df, "MAX_FRAMES", 2)
    monkeypatch.setattr(df, "PRECISIONS", ("fp32",))
    monkeypatch.setattr(df, "SWEEPS", {k: v[::3] for k, v in df.SWEEPS.items()})
    monkeypatch.setattr(df, "BLENDS", {k: v[::3] for k, v in df.BLENDS.items()})
    acq = {a.name: a for a in df.load_annotations()}["ge-doppler"]
    if df.locate(acq)[0] is None:
        pytest.skip("pydicom's example files are not installed")
    r = df.acquisition(acq, "cpu-x86-2core")
    st = r["student"]["fp32"]
    assert 0.0 < st["speckle"] < 1.0 and 0.0 < st["epi"] <= 1.0
    for name, pts in r["filters"].items():
        strongest = pts[-1]
        assert strongest["speckle"] < pts[0]["speckle"]  # a stronger setting removes more speckle
        got = st["filters_at_equal_epi"][name]
        expect = df.interp(df.curve(pts), st["epi"], 0)
        assert got["speckle"] == (None if expect is None else round(expect, 4))
        assert got["beats"] == (None if expect is None else st["speckle"] < expect)
    s = df.summary([r])
    assert s["fp32"]["bilateral"]["of"] == 1
    from ganrt.benchmarks.env import environment

    md = df.to_markdown({"acquisitions": [r], "summary": s, "seconds": 1.0, "environment": environment({})})
    assert f"| ge-doppler | held out | {st['speckle']:.3f} / {st['epi']:.3f} |" in md
