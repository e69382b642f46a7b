"""Shared pytest set-up: no network ever, a private tsf cache, one torch thread, slow and GPU tests skipped unless
asked for.

Fixtures that build things (tiny checkpoints, generated videos) live next to the tests that own them, in the
``tests/_*.py`` helper modules, so each test file reads on its own.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--runslow")
    has_cuda = None
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: pass --runslow to run"))
        if "gpu" in item.keywords:
            if has_cuda is None:
                import torch

                has_cuda = torch.cuda.is_available()
            if not has_cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and on a busy machine two OpenMP threads stall each other at every
    barrier (a millisecond forward pass takes a third of a second)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def transformers():
    """The reference implementation, for the tests that compare against it; skips just those tests without it."""
    return pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch, tmp_path_factory):
    """Every test runs offline against an empty, private Hugging Face cache unless it builds its own."""
    from huggingface_hub import constants

    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # huggingface_hub reads these once, at import: the environment alone would not reach an imported copy.
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(autouse=True)
def _private_tsf_cache(monkeypatch, tmp_path_factory):
    """Every test starts with an empty tsf cache (the ONNX graphs of --runtime onnx), never the user's."""
    monkeypatch.setenv("TSF_CACHE", str(tmp_path_factory.mktemp("tsf_cache")))
