"""The Triton CPU benchmark, tiny: every way measured, the server's batches add up to the frames sent."""

from __future__ import annotations

from ganrt.benchmarks.triton_bench import LATENCY, TritonBenchConfig, run_triton_bench, to_markdown
from ganrt.runtime.model.profiles import DeviceProfile


def test_tiny_triton_bench(manifest, triton_backends):
    cfg = TritonBenchConfig(hw=64, iterations=10, streams=2, stream_frames=3, rounds=1)
    r = run_triton_bench(manifest, DeviceProfile.load("cpu-x86-2core"), cfg)
    assert set(r["latency"]) == set(LATENCY) == set(r["concurrent"])
    assert all(r["latency"][k]["latency_ms"]["n"] == 10 for k in LATENCY)
    for way in ("grpc", "grpc+shm"):
        c = r["concurrent"][way]
        assert c["frames"] == 6 and sum(int(k) * v for k, v in c["server_batch_sizes"].items()) == 6
    assert r["environment"]["cpu_flags"] is not None and "load_avg_before" in r["load"]
    assert "grpc+shm" in to_markdown(r)
