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

    assert set(results) == set(fsdp_worker.BACKENDS)
    for backend, result in results.items():
        # The same training in one process, unsharded, with the same backend: both ranks see
        # the same batches, so the averaged gradients are exact and so must be the result.
        model = fsdp_worker.make_model()
        opt = FusedScheduledAdamW(model.parameters(), OneCycle(1e-2, 20, 5), backend=backend)
        for x, y in fsdp_worker.batches()[: fsdp_worker.STEPS]:
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            opt.zero_grad()
        assert result["counter"] == fsdp_worker.STEPS, backend
        assert result["lr"] == opt.param_groups[0]["lr"].item(), backend
        for name, p in model.named_parameters():
            assert torch.equal(torch.tensor(result["params"][name]), p.detach()), (backend, name)
