"""Torch's thread count for the length of a block, for every stage that runs a torch model."""

import contextlib


@contextlib.contextmanager
def torch_threads(n_threads: int):
    """Run torch on ``n_threads`` threads, restoring the previous thread count afterwards.

    Torch is imported on entry, so importing this module never loads it.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
