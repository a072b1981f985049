"""The one torch thread-count context manager that features and classify share."""

import pytest
import torch

from features.torch_threads import torch_threads


def test_thread_count_is_set_inside_and_restored_after_an_error():
    before = torch.get_num_threads()
    inside = 2 if before == 1 else 1
    with pytest.raises(RuntimeError, match="boom"):
        with torch_threads(inside):
            assert torch.get_num_threads() == inside
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_text_and_networks_use_the_shared_one():
    import classify.networks as networks
    import features.text as text

    assert not hasattr(networks, "_torch_threads") and not hasattr(text, "_torch_threads")
    assert networks.torch_threads is torch_threads and text.torch_threads is torch_threads
