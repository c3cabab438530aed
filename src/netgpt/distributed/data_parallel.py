"""Data parallelism of the RL learner: N processes (``accelerate launch``), each rolling out and training its own
slice of a step's tasks, that must take the same optimiser step.

The learner's model is not wrapped in DDP: the loss calls its decoder directly (a group's prompt KV cache is shared,
:mod:`netgpt.core.forward`), which DDP's gradient hooks never see, and a process whose groups all lack a reward spread
runs no backward pass at all. :class:`DataParallel` does by hand what DDP would: start every process from the same
weights, and average the gradients over processes, joining the same collectives on every process so that none
waits forever for another. In one process every method is a no-op or the identity.
"""

from __future__ import annotations

from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


class DataParallel:
    """The learner's processes as ``accelerator`` (an ``accelerate.Accelerator``) sees them."""

    def __init__(self, accelerator):
        self.accelerator = accelerator

    @property
    def process_index(self) -> int:
        return self.accelerator.process_index

    @property
    def num_processes(self) -> int:
        return self.accelerator.num_processes

    def broadcast_weights(self, model: torch.nn.Module) -> None:
        """Start every process from the main process's weights (DDP did this when it wrapped the model): a LoRA
        adapter or a model built in memory need not be initialised alike everywhere."""
        if self.num_processes == 1:
            return
        with torch.no_grad():
            for param in model.parameters():
                dist.broadcast(param.data, src=0)

    def any_has_work(self, local: bool) -> bool:
        """Whether any process has something to train this step. All of them then take the optimiser step together
        (one with nothing to train contributes zero gradients); none does otherwise."""
        if self.num_processes == 1:
            return local
        flag = torch.tensor([float(local)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Replace each parameter's gradient with its mean over the processes (:func:`mean_over_processes`). A
        parameter no process has a gradient for keeps none, so that AdamW skips it (weight decay included) as it
        would in one process."""
        if self.num_processes == 1:
            return
        for param, grad in zip(params, mean_over_processes([p.grad for p in params], params)):
            param.grad = grad

    def mean(self, grads: list[torch.Tensor | None], params: list[torch.nn.Parameter]
             ) -> list[torch.Tensor | None]:
        """Gradients that are not the parameters' own (e.g. the SFT anchor's part) averaged the same way."""
        return grads if self.num_processes == 1 else mean_over_processes(grads, params)

    def gather(self, items: list[T]) -> list[T]:
        """Every process's ``items``, concatenated in process order (on every process)."""
        if self.num_processes == 1:
            return items
        from accelerate.utils import gather_object  # accelerate is imported by the learner only

        return gather_object(items)


def anchor_batch_indices(step: int, process: int, processes: int, batch_size: int, n_traces: int) -> list[int]:
    """Which anchor traces a process trains on at ``step``: consecutive batches cycle through the traces, one batch
    per process and step, so the processes of a data-parallel run anchor on different traces (in one process: batch
    ``step``)."""
    first = (step * processes + process) * batch_size
    return [(first + k) % n_traces for k in range(batch_size)]


def mean_over_processes(grads: list[torch.Tensor | None],
                        params: list[torch.nn.Parameter]) -> list[torch.Tensor | None]:
    """Each gradient averaged over the processes (all-reduce, in place). A process without a gradient for a
    parameter contributes zeros; a parameter no process has a gradient for keeps ``None``. Every process must call
    this with the same parameters, in the same order."""
    if len(grads) != len(params):
        raise ValueError(f"{len(grads)} gradients for {len(params)} parameters")
    if not params:
        return []
    present = torch.tensor([float(g is not None) for g in grads], device=params[0].device)
    dist.all_reduce(present)  # every process then skips the same parameters, so the all-reduces below pair up
    out: list[torch.Tensor | None] = []
    for grad, param, count in zip(grads, params, present.tolist()):
        if count == 0:
            out.append(None)
            continue
        grad = torch.zeros_like(param) if grad is None else grad
        dist.all_reduce(grad)
        out.append(grad.div_(dist.get_world_size()))
    return out
