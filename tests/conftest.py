"""Test set-up: the Triton interpreter on machines without CUDA, and the ``cuda`` marker."""

import os

# Both must be set before Triton is first imported. Without a GPU the Triton kernels run through
# the interpreter (slow, sequential: keep those tests small).
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import torch  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import contextlib  # noqa: E402

import pytest  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(skip)


class HostReadError(AssertionError):
    pass


def _refuse(*args, **kwargs):
    raise HostReadError("a tensor value was read on the host")


class NoHostReads(TorchDispatchMode):
    """Every op that copies a tensor value to a Python scalar raises."""

    SYNCING = {
        torch.ops.aten._local_scalar_dense.default,
        torch.ops.aten.item.default,
        torch.ops.aten.is_nonzero.default,
        torch.ops.aten.equal.default,
    }

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.SYNCING:
            raise HostReadError(f"{func} reads a tensor value on the host")
        return func(*args, **(kwargs or {}))


@pytest.fixture
def no_host_reads(monkeypatch):
    """A context manager in which any host read of a tensor value raises HostReadError: the
    ops that copy a value out raise (dispatch mode) and so do the Tensor methods that would."""

    @contextlib.contextmanager
    def guard():
        with monkeypatch.context() as patch, NoHostReads():
            for method in ("item", "tolist", "numpy", "__bool__", "__float__", "__int__"):
                patch.setattr(torch.Tensor, method, _refuse)
            patch.setattr(torch.Tensor, "__index__", _refuse)
            yield

    return guard
