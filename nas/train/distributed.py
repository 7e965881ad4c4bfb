"""This process's place in a ``torchrun`` job: rank, world, device, and the collectives training needs.

Under ``torchrun`` every process takes a shard of each global batch; gradients are accumulated locally
over the sandwich's subnets and then averaged across processes in one all-reduce (gloo on CPU, NCCL
on GPU), as each subnet uses a different part of the weights. Only rank 0 validates, writes
checkpoints and prints; at every save all processes check that they hold the same weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import BadInput


@dataclass
class Processes:
    """This process's rank of `world` (0 of 1 without torchrun), its device and its CPU threads."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    threads: int | None = None  # intra-op threads for CPU training (None: leave torch's setting)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls, device: str | None) -> Processes:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank, local_world = int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda"):
            raise BadInput(f"--accelerator {device}: expected cpu or cuda")
        if device == "cuda" and not torch.cuda.is_available():
            raise BadInput("--accelerator cuda: no CUDA device here")
        dev = torch.device("cuda", local_rank) if device == "cuda" else torch.device("cpu")
        threads = None
        if device == "cpu" and "OMP_NUM_THREADS" not in os.environ:  # the cores shared by this machine's processes
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            threads = max(1, cores // local_world)
        if world > 1:
            import torch.distributed as dist

            if device == "cuda":
                torch.cuda.set_device(dev)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device == "cuda" else "gloo")
            return cls(dist.get_rank(), dist.get_world_size(), dev, threads)
        return cls(0, 1, dev, threads)

    def allreduce_mean(self, tensors: list[torch.Tensor]) -> None:
        """Average `tensors` in place over the processes, in one all-reduce of their concatenation."""
        if self.world == 1 or not tensors:
            return
        import torch.distributed as dist

        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        flat /= self.world
        for t, reduced in zip(tensors, flat.split([t.numel() for t in tensors])):
            t.copy_(reduced.view_as(t))

    def any_true(self, flag: bool) -> bool:
        """Whether `flag` holds in any process, so that all of them act on it at the same step."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def broadcast(self, tensors: list[torch.Tensor]) -> None:
        if self.world > 1:
            import torch.distributed as dist

            with torch.no_grad():
                for t in tensors:
                    dist.broadcast(t, 0)

    def stop(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def check_same(self, params: list[torch.Tensor]) -> None:
        """Raise if the processes' weights differ (a broken all-reduce would let them drift apart)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        sums = torch.stack([p.detach().double().sum() for p in params])  # on the device: NCCL reduces CUDA tensors
        low, high = sums.clone(), sums.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if not torch.allclose(low, high, rtol=1e-9, atol=1e-9):
            raise RuntimeError("the training processes' weights differ (gradients were not averaged alike)")


__all__ = ["Processes"]
