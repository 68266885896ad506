"""Helpers shared by the toy-world tests: file digests, h5 contents and a linear probe on features."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import torch


def _digests(root: Path, suffixes: set[str]) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in suffixes
    }


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {key: f[key][()] for key in f}


def _linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, classes: int) -> np.ndarray:
    """Softmax regression (zero init, full-batch Adam) on standardised features; predicted classes of x_test.

    Runs on one thread: the problem is tiny and intra-op threads on a busy machine make it 30x slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_and_predict(x_train, y_train, x_test, classes)
    finally:
        torch.set_num_threads(threads)


def _fit_and_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, classes: int) -> np.ndarray:
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    xs = torch.from_numpy((x_train - mean) / std)
    ys = torch.from_numpy(y_train).long()
    layer = torch.nn.Linear(xs.shape[1], classes)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(layer(xs), ys).backward()
        optimizer.step()
    with torch.no_grad():
        return layer(torch.from_numpy((x_test - mean) / std)).argmax(1).numpy()
