"""The student's optional pretraining stage: its pairs (intraop-enhance: sensor noise only), its budget
in the export config, the replayed pairs in the training bank, and the distillation starting from its weights."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from ganrt.export.archs import PatchDiscriminator, ResnetGenerator, StudentConfig, StudentGenerator, TeacherConfig
from ganrt.export.data.pairs import PairBank
from ganrt.export.distill import DistillConfig, distill_student
from ganrt.export.pipeline import REPLAY_EVERY, ExportConfig, _simulate, run_export, smoke_config
from ganrt.export.tasks import get_task
from ganrt.runtime.errors import ConfigError

STAGE = DistillConfig(steps=4, adv_steps=0, batch=2, patch=64, checkpoint_every=2, w_teacher=0.0, w_feat=0.0)


def test_the_stage_is_off_unless_the_config_gives_it_a_budget():
    assert ExportConfig(task="intraop-enhance").resolved().pretrain is None
    assert smoke_config("intraop-enhance").resolved().pretrain is None
    assert ExportConfig(task="intraop-enhance", pretrain=STAGE).resolved().pretrain == STAGE
    assert get_task("intraop-enhance").make_pretrain_pairs is not None
    assert get_task("us-enhance").make_pretrain_pairs is None


def test_a_task_without_pretraining_pairs_refuses_the_stage_before_training(tmp_path):
    with pytest.raises(ConfigError, match="no pretraining pairs"):
        run_export(replace(smoke_config("us-enhance"), pretrain=STAGE), tmp_path / "b", tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "teacher_state.pt").exists()


def test_intraop_pretraining_pairs_differ_by_zero_mean_noise_alone():
    pytest.importorskip("skimage")
    pre = get_task("intraop-enhance").make_pretrain_pairs(range(0, 4), (64, 64))
    assert pre.inputs.shape == pre.targets.shape == (4, 64, 64, 3) and pre.sector.all()
    for x, y in zip(pre.inputs, pre.targets):
        d = x - y
        assert np.abs(d).mean() > 2.0 / 255  # every pair is noisy
        # no veil, darkening or blur: the local mean of the difference stays near zero
        assert np.abs(cv2.GaussianBlur(d, (0, 0), 4.0)).mean() < 0.3 * np.abs(d).mean()


def test_the_stage_gets_its_own_bank_and_its_pairs_are_replayed_in_training():
    pytest.importorskip("skimage")
    task = get_task("intraop-enhance")
    cfg = replace(smoke_config("intraop-enhance"), pretrain=STAGE).resolved()
    banks, _, _ = _simulate(task, cfg)
    n = cfg.train_pairs
    n_replay = len(range(0, n, REPLAY_EVERY))
    assert len(banks.pretrain) == n and len(banks.train) == n + n_replay
    plain, _, _ = _simulate(task, replace(cfg, pretrain=None))
    assert plain.pretrain is None and len(plain.train) == n
    np.testing.assert_array_equal(banks.train.inputs[:n], plain.train.inputs)
    # the replayed pairs are pretraining pairs of other seeds than the stage's own
    assert not any(np.array_equal(r, p) for r in banks.train.inputs[n:] for p in banks.pretrain.inputs)


def test_distillation_starts_from_the_given_weights(tmp_path):
    torch.manual_seed(0)
    arch = StudentConfig(channels=1, width=8, n_blocks=1)
    start = StudentGenerator(arch)
    for p in start.parameters():
        p.data.normal_(0, 0.1)
    x = np.random.default_rng(0).uniform(0, 1, (2, 64, 64)).astype(np.float32)
    bank = PairBank(x, x)
    teacher, disc = ResnetGenerator(TeacherConfig(ngf=8, n_blocks=1)), PatchDiscriminator(1, 8, 1)
    cfg = DistillConfig(steps=1, adv_steps=0, batch=1, patch=32, lr=1e-9, w_teacher=0.0, w_feat=0.0)
    S, _ = distill_student(bank, teacher, disc, tmp_path / "a", arch, cfg, resume=False, progress=False,
                           init=start.state_dict())
    for k, v in start.state_dict().items():
        torch.testing.assert_close(S.state_dict()[k], v, atol=1e-6, rtol=0)
    fresh, _ = distill_student(bank, teacher, disc, tmp_path / "b", arch, cfg, resume=False, progress=False)
    assert any(not torch.allclose(fresh.state_dict()[k], v) for k, v in start.state_dict().items())


def test_an_export_with_the_stage_runs_it_first_and_records_it(tmp_path):
    pytest.importorskip("skimage")
    threads = torch.get_num_threads()
    try:
        m = run_export(replace(smoke_config("intraop-enhance"), pretrain=STAGE, threads=1), tmp_path / "b",
                       tmp_path / "r", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert m["training"]["pretrain"]["steps"] == STAGE.steps and m["training"]["config"]["pretrain"]["steps"] == 4
    assert (tmp_path / "r" / "pretrain" / "student_state.pt").exists()
    assert (tmp_path / "b" / "manifest.json").exists()
