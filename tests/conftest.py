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


def mount_tmpfs(path, options):
    """Mount a tmpfs on path (root only, where the sandbox allows it); True if it worked."""
    import subprocess
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def unmount(path):
    import subprocess
    subprocess.run(["umount", str(path)], capture_output=True)


@pytest.fixture(scope="session")
def read_only_dir(tmp_path_factory):
    """A folder this process cannot write in, or None where none can be made. Root ignores permissions, so for
    root a read-only tmpfs is mounted there instead, where the machine allows it."""
    path = tmp_path_factory.mktemp("read_only")
    path.chmod(0o555)
    mounted = os.access(path, os.W_OK) and mount_tmpfs(path, "ro,size=64k")
    yield str(path) if not os.access(path, os.W_OK) else None
    if mounted:
        unmount(path)
    path.chmod(0o755)


@pytest.fixture
def small_disk(tmp_path):
    """A factory: small_disk(size) is a folder on a file system of `size` bytes (a tmpfs), or None where none can be
    mounted; unmounted at the end of the test."""
    mounted = []

    def make(size):
        path = tmp_path / f"disk{len(mounted)}"
        path.mkdir()
        if not mount_tmpfs(path, f"size={size}"):
            return None
        mounted.append(path)
        return str(path)
    yield make
    for path in mounted:
        unmount(path)


@pytest.fixture
def one_process_torchrun(monkeypatch):
    """The environment torchrun gives the one process of a one-process run, so main() sets up a process group."""
    from helpers import free_port
    for key, value in dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                           MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)
