"""Shared test setup: make the repository root importable (train_gpt2, fineweb, hellaswag)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def shakespeare():
    """Path of tiny Shakespeare at the repository root: downloaded on first use (CI copies it in), checksum checked."""
    from plumbing import fetch_tiny_shakespeare
    path = os.path.join(ROOT, "input.txt")
    fetch_tiny_shakespeare(path)
    return path
