"""Datasets for the command line: scikit-learn's handwritten digits, or a user's .csv or .npz.

Every loader returns features as a float64 ``(n, d)`` array and labels as int64 class indices
``0..C-1`` (the sorted distinct label values, renumbered). Any problem with a file raises
:class:`DataError`, whose message names the file and the problem in one line.
"""

from __future__ import annotations

import csv
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DataError", "Split", "load", "split"]

TEST_FRACTION = 0.25
SPLIT_SEED = 0


class DataError(ValueError):
    """The data cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class Split:
    """A train/test split, features standardised with the training set's mean and deviation.

    ``x_*`` are float32 ``(n, d)``, ``y_*`` int64 ``(n,)`` in ``0..classes-1``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int


def load(source: str, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels from ``"digits"`` or a path to a ``.csv`` or ``.npz`` file.

    A ``.csv`` has a header row; ``label_column`` (default ``"label"``) names the label, every
    other column is a feature (at least one), and every value must be a finite number. A
    ``.npz`` holds ``X`` (n >= 1 rows, any trailing shape, flattened to at least one feature)
    and ``y`` (n labels), numeric; ``label_column`` is refused for it and for ``"digits"``,
    which have no columns to name.
    """
    if label_column is not None and not source.lower().endswith(".csv"):
        raise DataError(
            f"--label-column {label_column!r} applies to .csv files only, not {source!r}"
        )
    if source == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.data.astype(np.float64), digits.target.astype(np.int64)
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise DataError(f"--data must be 'digits' or a .csv or .npz file, got {source!r}")
    if not path.exists():
        raise DataError(f"{source}: no such file")
    try:
        if suffix == ".csv":
            x, y = _read_csv(path, "label" if label_column is None else label_column)
        else:
            x, y = _read_npz(path)
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{source}: cannot read it ({error})") from error
    return x, _class_indices(y, source)


def split(x: np.ndarray, y: np.ndarray, test_fraction: float = TEST_FRACTION) -> Split:
    """A stratified train/test split, the same for every call (seed ``SPLIT_SEED``).

    Each class gives ``round(test_fraction * count)`` of its rows to the test set. Features
    are standardised by the training set's mean and standard deviation (a constant column is
    centred only).
    """
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        test[rows[: round(test_fraction * len(rows))]] = True
    if test.all() or not test.any():
        raise DataError(f"{len(y)} rows are too few for a train/test split")
    mean = x[~test].mean(axis=0)
    std = x[~test].std(axis=0)
    std[std == 0] = 1.0
    x = ((x - mean) / std).astype(np.float32)
    classes = int(y.max()) + 1
    return Split(x[~test], y[~test], x[test], y[test], classes)


def _read_csv(path: Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as file:
        rows = list(csv.reader(file))
    if not rows:
        raise DataError(f"{path}: empty file, expected a header row")
    header = [name.strip() for name in rows[0]]
    if label_column not in header:
        raise DataError(
            f"{path}: no label column {label_column!r} (columns: {', '.join(header)}); "
            "name it with --label-column"
        )
    data = [row for row in rows[1:] if row]
    if not data:
        raise DataError(f"{path}: no data rows after the header")
    values = np.empty((len(data), len(header)), dtype=np.float64)
    for i, row in enumerate(data):
        if len(row) != len(header):
            raise DataError(f"{path}: row {i + 2} has {len(row)} fields, the header {len(header)}")
        for j, field in enumerate(row):
            values[i, j] = _number(field, f"{path}: row {i + 2}, column {header[j]!r}")
    if len(header) == 1:
        raise DataError(f"{path}: no feature columns, only the label column {label_column!r}")
    label = header.index(label_column)
    return np.delete(values, label, axis=1), values[:, label]


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # np.load reads a non-zip file as .npy or pickle, and its errors then talk of those.
    if path.is_file() and not zipfile.is_zipfile(path):
        raise DataError(
            f"{path}: not a valid .npz file (not a zip archive; write it with np.savez)"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as error:  # not an npz, or object arrays
        raise DataError(f"{path}: cannot read it as .npz ({error})") from error
    with archive:
        missing = [key for key in ("X", "y") if key not in archive.files]
        if missing:
            raise DataError(f"{path}: no array {missing[0]!r} (it has: {archive.files})")
        try:
            x, y = archive["X"], archive["y"]
        except ValueError as error:  # object arrays need pickle, which we refuse
            raise DataError(f"{path}: cannot read its arrays ({error})") from error
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise DataError(
            f"{path}: need X of shape (n, d...) and y of shape (n,), got {x.shape} and {y.shape}"
        )
    if len(x) == 0:
        raise DataError(f"{path}: no rows (X has shape {x.shape})")
    if x.size == 0:
        raise DataError(f"{path}: no features (X has shape {x.shape})")
    for name, array in (("X", x), ("y", y)):
        if array.dtype.kind not in "biuf":
            raise DataError(f"{path}: {name} must be numeric, got dtype {array.dtype}")
        if not np.isfinite(array.astype(np.float64)).all():
            raise DataError(f"{path}: {name} has non-finite values")
    return x.reshape(len(x), -1).astype(np.float64), y.astype(np.float64)


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {text!r} is not a finite number")
    return value


def _class_indices(y: np.ndarray, source: str) -> np.ndarray:
    classes, indices = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{source}: need at least 2 classes, got {len(classes)}")
    return indices.astype(np.int64)
