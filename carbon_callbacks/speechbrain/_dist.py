"""Rank facts and the few collectives the SpeechBrain adapter needs (SUM of a measurement, broadcast from rank 0).

Every collective here goes through ``speechbrain.utils.distributed``, whose helpers are no-ops without a process
group and inside ``main_process_only`` blocks, so a call that only the main rank reaches never deadlocks (the
measurement is then not reduced, and its note says so).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch
from speechbrain.utils import distributed as sb_dist

from ..measurement import Measurement

__all__ = ["RankInfo", "rank_info", "reduce_measurement", "broadcast_from_main", "device_sync"]


@dataclass(frozen=True)
class RankInfo:
    """Where this process sits in the job.

    Attributes:
        world_size: processes in the job (1 without a process group).
        num_nodes: machines in the job (``world_size / LOCAL_WORLD_SIZE``).
        is_main: global rank 0 (writes the ledger and the train log).
        is_local_zero: local rank 0 (reads the node's host components, once per node).
        device: the device this rank trains on (``cpu``, ``cuda:1``...).
    """

    world_size: int
    num_nodes: int
    is_main: bool
    is_local_zero: bool
    device: str


def rank_info(device: str | None = None) -> RankInfo:
    """This process's rank facts; ``device`` defaults to SpeechBrain's own guess (``cuda:LOCAL_RANK`` or cpu)."""
    world_size = 1
    if sb_dist.is_distributed_initialized():
        world_size = int(torch.distributed.get_world_size())
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size) or world_size)
    num_nodes = max(1, world_size // max(1, local_world))
    return RankInfo(
        world_size=world_size,
        num_nodes=num_nodes,
        is_main=sb_dist.if_main_process(),
        is_local_zero=sb_dist.is_local_rank_zero(),
        device=str(device or sb_dist.infer_device()),
    )


def device_sync(device: str) -> Callable[[], None] | None:
    """A function waiting for queued GPU work on ``device`` (so a window's end includes it); None on CPU."""
    if not str(device).startswith("cuda") or not torch.cuda.is_available():
        return None
    dev = torch.device(device)
    return lambda: torch.cuda.synchronize(dev)


def _comm_device() -> torch.device:
    """CPU for gloo/mpi; this rank's GPU for nccl (nccl reduces CUDA tensors only)."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def reduce_measurement(m: Measurement) -> Measurement:
    """The SUM of this window over all ranks. Every rank must call it at the same point."""
    if not sb_dist.is_distributed_initialized():
        return m
    if sb_dist.ddp_prevent_block():
        note = "not reduced across ranks (called inside a main-process-only block): other ranks missing"
        return replace(m, note="; ".join(n for n in (m.note, note) if n))
    vector = torch.tensor(m.to_vector(), dtype=torch.float64, device=_comm_device())
    sb_dist.ddp_all_reduce(vector, torch.distributed.ReduceOp.SUM)
    return m.with_reduced(vector.cpu().tolist())


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a collective; a no-op without a process group)."""
    return sb_dist.ddp_broadcast(obj, src=0)
