"""Torch's process-wide settings are restored after the code that changes them for a while."""

from __future__ import annotations

import torch

import supernet
from latency_lut import make_runner, measure_interleaved, measuring
from search_spaces import LayerSpec
from supernet.runtime import torch_settings


def test_torch_settings_restore_threads_and_denormal_flushing():
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with torch_settings(threads=target, flush_denormal=True):
        assert torch.get_num_threads() == target
        assert torch.tensor([1e-40], dtype=torch.float32).item() == 0.0  # flushed
    assert torch.get_num_threads() == before
    assert torch.tensor([1e-40], dtype=torch.float32).item() != 0.0  # denormals back


def test_measuring_a_runner_leaves_the_callers_thread_count():
    before = torch.get_num_threads()
    module = supernet.build_layer(LayerSpec("ffn", 16, 16, 7, ratio=2))
    runner = make_runner("torch", module, (1, 16, 7, 7), threads=1)
    assert torch.get_num_threads() == before  # preparing a runner changes nothing
    with measuring(1):
        measure_interleaved({"ffn": runner}, passes=2, chunk_ms=2)
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
