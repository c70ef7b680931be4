"""Test set-up: the Triton interpreter on machines without CUDA, and the ``cuda`` marker."""

import os

# Both must be set before Triton is first imported. Without a GPU the Triton kernels run through
# the interpreter (slow, sequential: keep those tests small).
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import torch  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(skip)
