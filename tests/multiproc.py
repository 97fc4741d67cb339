"""Tests that start other processes: a free loopback port, and a group of ranks run to the end (or failed after
a deadline, never hung), each leaving its result in OUT/rank{r}.pt."""

import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(worker, out, world: int, seconds: float, what: str) -> list:
    """worker(rank, port, out) in `world` spawned processes; their rank{r}.pt files, loaded."""
    ctx = mp.start_processes(worker, args=(free_port(), str(out)), nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + seconds
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"{what} workers did not finish within {seconds:g} s (deadlock?)")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return [torch.load(os.path.join(str(out), f"rank{r}.pt"), weights_only=True) for r in range(world)]
