"""Shared test setup: make the repository root importable (train_gpt2, fineweb, hellaswag), and fail a test that
leaves a process running."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pytest  # noqa: E402


def pytest_configure(config):
    """Make this process the subreaper of what the tests start (Linux): a process whose parent ended (torchrun's
    workers, their launcher killed) becomes this process's child, not init's, so that left_running finds it."""
    if sys.platform == "linux":
        import ctypes
        PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


# Helpers that serve this process until it ends, started by the first test that needs them: not left behind by a
# test. multiprocessing's (fineweb.py's Pool) and torch.compile's pool of compile workers (on some torch versions).
SERVERS = ("from multiprocessing.resource_tracker import", "from multiprocessing.forkserver import",
           "torch/_inductor/compile_worker")


@pytest.fixture(autouse=True)
def left_running():
    """After each test: no process it started may still run. One that does is killed, and the test fails."""
    yield
    from helpers import kill_tree, processes_under
    running = {}
    for pid in processes_under(os.getpid()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
            with open(f"/proc/{pid}/cmdline") as f:
                command = f.read().replace("\0", " ").strip()
        except OSError:
            continue  # it ended meanwhile
        if zombie:  # ended, and an orphan handed to this process: reap it
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        elif command:
            running[pid] = command
    servers = [pid for pid, command in running.items() if any(server in command for server in SERVERS)]
    serving = set(servers).union(*(processes_under(pid) for pid in servers))
    left = [f"{pid}: {command[:200]}" for pid, command in running.items() if pid not in serving]
    for entry in left:
        pid = int(entry.split(":")[0])
        kill_tree(pid)
        try:
            os.waitpid(pid, 0)  # its exit status, so that it does not stay a zombie
        except ChildProcessError:
            pass  # not this process's child: its own parent reaps it
    assert not left, "the test left these processes running (now killed):\n" + "\n".join(left)


@pytest.fixture(scope="session")
def shakespeare():
    """Path of tiny Shakespeare at the repository root: downloaded on first use (CI copies it in), checksum checked."""
    from plumbing.files import fetch_tiny_shakespeare
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
