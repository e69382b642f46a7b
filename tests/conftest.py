"""Shared pytest set-up: no network ever, a private tsf cache, one torch thread, slow and GPU tests skipped unless
asked for, and the fixtures several test files share (a tiny classifier, a tiny labelled set and a base to train from
scratch).

What those fixtures build comes from the ``tests/_*.py`` helper modules (tiny checkpoints, generated videos), which
test files also call directly for anything of their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._models import save_tiny_classifier
from tests._training import make_base, make_dataset


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


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny random classifier folder with its preprocessor_config.json, which ``--model`` takes."""
    return save_tiny_classifier(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A labelled set of clips of one colour each: data/<colour>/ and val/<colour>/."""
    return make_dataset(tmp_path_factory.mktemp("colours"))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """config.json and preprocessor_config.json only: the architecture to train from scratch."""
    return make_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(autouse=True)
def _private_tsf_cache(monkeypatch, tmp_path_factory):
    """Every test starts with an empty tsf cache (the ONNX graphs of --runtime onnx), never the user's."""
    monkeypatch.setenv("TSF_CACHE", str(tmp_path_factory.mktemp("tsf_cache")))
