"""RunnerBase's template: activation state, the checks infer makes once, and clean-up after a failed start."""

from __future__ import annotations

import numpy as np
import pytest

from ganrt.runtime.backends.base import InputLayout, IOSpec, RunnerBase
from ganrt.runtime.errors import BackendUnavailable, ConfigError, ModelError


class Recorder(RunnerBase):
    """Notes every *_impl call; ``fail`` is raised by activate_impl."""

    name = "recorder"
    start_label = "the recorder runner"

    def __init__(self, fail: BaseException | None = None, layout: InputLayout | None = None) -> None:
        self.fail, self.layout, self.calls = fail, layout, []

    def activate_impl(self) -> IOSpec:
        self.calls.append("activate")
        if self.fail is not None:
            raise self.fail
        return IOSpec("x", "y", np.dtype(np.float32), layout=self.layout)

    def infer_impl(self, feeds):
        self.calls.append("infer")
        return {"y": feeds["x"] * 2}

    def deactivate_impl(self) -> None:
        self.calls.append("deactivate")


def test_activate_keeps_the_io_and_a_second_activate_is_a_no_op():
    r = Recorder()
    io = r.activate()
    assert r.active and r.io is io and r.activate() is io
    assert r.calls == ["activate"]
    r.deactivate()
    r.deactivate()
    assert not r.active and r.calls == ["activate", "deactivate", "deactivate"]


def test_infer_checks_activation_and_the_input_name_before_the_runner_sees_the_feed():
    r = Recorder()
    with pytest.raises(ModelError, match=r"used before activate\(\)"):
        r.infer({"x": np.ones(1)})
    with r:
        with pytest.raises(ModelError, match="feeds lack the model's input 'x' \\(got z\\)"):
            r.infer({"z": np.ones(1)})
        assert r.infer({"x": np.ones(2)})["y"].tolist() == [2.0, 2.0]
    assert r.calls == ["activate", "infer", "deactivate"]


@pytest.mark.parametrize("shape,dtype,match", [
    ((1, 8, 8), np.float32, r"must be N x 1 x H x W \(NCHW\)"),
    ((1, 3, 8, 8), np.float32, r"must be N x 1 x H x W \(NCHW\)"),
    ((1, 1, 6, 8), np.float32, "positive multiples of 4"),
    ((1, 1, 8, 8), np.uint8, "must be floating point"),
])
def test_a_declared_layout_is_checked_once_in_the_base(shape, dtype, match):
    r = Recorder(layout=InputLayout(channels=1, multiple=4))
    with r:
        with pytest.raises(ModelError, match=match):
            r.infer({"x": np.zeros(shape, dtype)})
        assert r.infer({"x": np.ones((2, 1, 8, 4), np.float32)})["y"].shape == (2, 1, 8, 4)
    assert r.calls.count("infer") == 1


def test_a_failed_activate_is_cleaned_up_and_other_libraries_errors_become_backend_unavailable():
    r = Recorder(fail=RuntimeError("driver said\n no"))
    with pytest.raises(BackendUnavailable, match=r"^the recorder runner could not start \(RuntimeError: driver said no\)$"):
        r.activate()
    assert not r.active and r.calls == ["activate", "deactivate"]

    r = Recorder(fail=ConfigError("bad device"))  # ganrt errors pass through as they are
    with pytest.raises(ConfigError, match="bad device"):
        r.activate()
    assert r.calls == ["activate", "deactivate"]

    r = Recorder(fail=RuntimeError("raw"))
    r.start_label = None  # without a label the library's exception propagates
    with pytest.raises(RuntimeError, match="raw"):
        r.activate()
    assert not r.active and r.calls == ["activate", "deactivate"]


def test_attempt_collects_failures_so_a_teardown_goes_on():
    problems: list[str] = []
    done = []

    def boom():
        raise OSError("busy")

    RunnerBase.attempt(problems, boom)
    RunnerBase.attempt(problems, done.append, 1)
    assert done == [1] and problems == ["boom: OSError: busy"]
