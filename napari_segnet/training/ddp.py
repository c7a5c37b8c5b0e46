"""Multi-process training with DistributedDataParallel: gloo on the CPU, NCCL on CUDA, set up by torchrun.

Every process (rank) holds the whole training set and samples its own patches (the seed is offset by the rank);
DDP averages the gradients, so the weights stay identical on all ranks, and the loss that drives progress and
the divergence check is averaged over the ranks, so every rank takes the same decisions. With no process group
initialised every function here is a no-op and training is the single-process loop.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_active() -> bool:
    """True inside a process group (e.g. under torchrun after :func:`init_from_env`)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def world_record() -> dict:
    """``{"world_size": n}`` when training runs in n > 1 processes (torchrun), else nothing (a version's details)."""
    return {"world_size": world_size()} if world_size() > 1 else {}


def init_from_env(device: str | None = None) -> str | None:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1): NCCL with this process on
    ``cuda:LOCAL_RANK`` when CUDA is available and ``device`` does not say otherwise, else gloo on the CPU.
    Returns the device this rank uses (``device`` unchanged without torchrun)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_active():
        return device
    use_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return device if use_cuda else (device or "cpu")


def shutdown() -> None:
    """Leave the process group, if any."""
    if is_active():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel inside a process group (it starts from rank 0's weights), else
    ``model`` itself. Train through the result; the parameters are ``model``'s."""
    if not is_active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def mean(value: torch.Tensor) -> float:
    """The mean of a scalar tensor over all ranks (the value itself in a single process)."""
    if not is_active():
        return value.item()
    value = value.detach().float().clone()
    dist.all_reduce(value)
    return value.item() / world_size()


def sync_buffers(model: torch.nn.Module) -> None:
    """At the end of training: copy rank 0's buffers (BatchNorm running statistics, which each rank updates
    from its own last batch) to every rank, and check that the parameters agree bit for bit, as they must
    (every rank applies the same averaged gradients); ``RuntimeError`` if they do not."""
    if not is_active():
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, 0)
    spread = torch.zeros((), device=next(model.parameters()).device)
    for param in model.parameters():
        reference = param.detach().clone()
        dist.broadcast(reference, 0)
        spread = torch.maximum(spread, (param.detach() - reference).abs().max())
    dist.all_reduce(spread, op=dist.ReduceOp.MAX)
    if spread.item() > 0:
        raise RuntimeError(f"the ranks' weights differ by up to {spread.item():.3g} after training: "
                           "DistributedDataParallel lost sync")


def state_digest(model: torch.nn.Module) -> str:
    """sha256 (first 16 hex digits) of ``model``'s parameters and buffers: equal on every rank after training."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
