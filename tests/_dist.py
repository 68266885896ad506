"""Helpers for the 2-process gloo tests (imported by test modules in this folder)."""

from __future__ import annotations

import socket
from typing import Any, Callable

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    """A free TCP port on the loopback interface for MASTER_PORT."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ranks(worker: Callable[..., None], world: int, *args: Any) -> None:
    """Run ``worker(rank, *args)`` in ``world`` forked processes and wait for all of them (a failure raises).

    Forked, not spawned: a spawned process imports torch, Lightning and the test module again, 10-20 s of CPU per
    rank on 2 busy cores, while a forked one starts with them loaded. The collectives under test are the same; the
    ranks build their process group themselves, after the fork.
    """
    mp.start_processes(_one_thread, args=(worker, *args), nprocs=world, join=True, start_method="fork")


def _one_thread(rank: int, worker: Callable[..., None], *args: Any) -> None:
    """``worker(rank, *args)`` on one torch thread: a forked child must not use the OpenMP pool of its parent's
    threads (they are not copied by the fork; using it hangs when the parent ran multi-threaded ops, ``-n 0``)."""
    torch.set_num_threads(1)
    worker(rank, *args)
