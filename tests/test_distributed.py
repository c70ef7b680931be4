"""FSDP2 (``fully_shard``, DTensor parameters): two gloo processes on the CPU, every backend."""

import json
import subprocess
import sys
from pathlib import Path

import fsdp_worker
import pytest
import torch

from fused_sched import FusedScheduledAdamW, OneCycle

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch built without distributed"
)


def test_sharded_training_matches_one_process(tmp_path):
    out = tmp_path / "results.json"
    worker = Path(__file__).with_name("fsdp_worker.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", str(worker), str(out)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    results = json.loads(out.read_text())

    # The same training in one process, unsharded, with the float64 oracle's backend.
    model = fsdp_worker.make_model()
    opt = FusedScheduledAdamW(model.parameters(), OneCycle(1e-2, 20, 5), backend="reference")
    for x, y in fsdp_worker.batches()[: fsdp_worker.STEPS]:
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        opt.zero_grad()

    assert set(results) == set(fsdp_worker.BACKENDS)
    for backend, result in results.items():
        assert result["counter"] == fsdp_worker.STEPS, backend
        assert result["lr"] == pytest.approx(opt.param_groups[0]["lr"].item(), rel=1e-12)
        for name, p in model.named_parameters():
            got = torch.tensor(result["params"][name])
            # fp32 parameters: a few ulps of the update's rounding, 5 steps.
            torch.testing.assert_close(got, p.detach(), rtol=1e-5, atol=1e-6, msg=backend)
