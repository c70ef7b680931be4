"""Run by tests/test_distributed.py under torchrun: FSDP2-sharded training with each backend.

Every rank trains the same small model on the same batches (so the averaged gradient equals
each rank's), sharded with ``fully_shard``; rank 0 writes the gathered parameters, the counter
and the lr of each backend to the JSON file named by argv[1].
"""

import json
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

from fused_sched import FusedScheduledAdamW, OneCycle

BACKENDS = ["torch", "reference", "triton"]
STEPS = 5


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 33), torch.nn.ReLU(), torch.nn.Linear(33, 3))


def batches():
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(4, 8, generator=gen), torch.randn(4, 3, generator=gen)) for _ in range(5)]


def train(backend: str) -> dict:
    model = make_model()
    fully_shard(model)
    opt = FusedScheduledAdamW(model.parameters(), OneCycle(1e-2, 20, 5), backend=backend)
    for x, y in batches()[:STEPS]:
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    params = {name: p.full_tensor().tolist() for name, p in model.named_parameters()}
    return {"params": params, "counter": opt.counter.item(), "lr": opt.param_groups[0]["lr"].item()}


def main() -> None:
    dist.init_process_group("gloo")
    results = {backend: train(backend) for backend in BACKENDS}
    if dist.get_rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
