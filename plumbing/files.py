"""
Files: written whole (a crash, a full disk or a power loss never leaves one that looks whole and is not), one run per
folder (an OS lock), downloads checked (HTTPS, length, sha256), and folders checked before any work.
"""
import contextlib
import hashlib
import http.client
import os
import shutil
import socket
import tempfile
import urllib.request

from tqdm import tqdm

from plumbing.cli import InputError, RunError, _undo_at_exit


def check_folder(flag, path, write=True):
    """Raise an InputError unless `path` is a folder, or can be made one, that this process can read (and, with
    write, write in)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"{flag} {path}: is a file, not a folder; give a folder")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):  # the nearest folder that exists: the missing ones would be made in it
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise InputError(f"{flag} {path}: {existing} is a file, so no folder can be made there; give another path")
    if not os.access(existing, (os.W_OK if write else 0) | os.R_OK | os.X_OK):
        raise InputError(f"{flag} {path}: cannot {'write in' if write else 'read'} {existing} (read-only?); give "
                         "another folder")


def check_new_folder(flag, path):
    """A folder to be written whole (--export_hf): raise an InputError unless it is missing, or empty, and can be
    written."""
    if os.path.isdir(path) and os.listdir(path):
        raise InputError(f"{flag} {path}: already exists and is not empty; give a new folder, or empty this one")
    check_folder(flag, path)


def write_atomically(path, write):
    """write(f) into a new file at `path`, all or nothing: the bytes go to path + ".tmp", are synced to the disk and
    only then renamed to `path` (a power loss can keep a rename and lose data not yet synced). A crash, a full disk or
    a power loss never leaves a file under that name that looks whole and is not. On an error (a full disk, say) or
    Ctrl-C the .tmp is removed and the error raised again; a crash can leave a .tmp, which no reader takes for the
    file."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_folder(path, write):
    """write(folder) into a new temporary folder beside `path`, renamed to `path` once whole (an empty `path` is
    replaced): a failure, a full disk say, leaves nothing half-written."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(path))}.", dir=parent)
    try:
        write(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if os.path.isdir(path):
            os.rmdir(path)  # empty: check_new_folder checked
        os.replace(tmp, path)
    except OSError as e:
        raise RunError(f"could not write {path} ({e}); nothing was left behind: free some space, or give another "
                       "folder") from None
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def lock_folder(flag, path):
    """Hold an OS lock on folder `path` (made if missing) until main() ends, so that no second run writes into it at
    the same time; the OS lets go of it when the process dies, so a crashed run leaves no stale lock. A folder that
    another process holds is refused, naming that process (host and pid, which the holder notes in path/.in_use).
    Where the OS has no such lock (Windows), nothing is locked."""
    try:
        import fcntl
    except ImportError:
        return
    os.makedirs(path, exist_ok=True)
    fd, note = os.open(path, os.O_RDONLY), os.path.join(path, ".in_use")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        try:
            with open(note) as f:
                holder = f.read().strip()
        except OSError:
            holder = "another process"
        raise InputError(f"{flag} {path} is in use by another run ({holder}): wait for it to end, or give another "
                         f"{flag}") from None
    with contextlib.suppress(OSError), open(note, "w") as f:  # (a full disk: the lock holds, unnamed)
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")

    def release():
        with contextlib.suppress(OSError):
            os.remove(note)
        os.close(fd)
    _undo_at_exit.append(release)


# Tiny Shakespeare, the char-rnn corpus (1,115,394 bytes); fetched on first use, never committed.
TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):  # 16 MB at a time: a checkpoint can be larger than the memory
            digest.update(chunk)
    return digest.hexdigest()


def download(url, path, sha256=None):
    """Fetch url into path, or raise an OSError saying why not. The bytes go to a temporary name of their own in the
    same folder and are renamed only once checked (HTTPS all the way, the length the server announced, the sha256
    if given): a failed download never leaves a file that looks whole, and processes that download the same file
    at once (machines sharing a file system) never mix their bytes."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as response:
            if not response.geturl().startswith("https://"):  # urlopen follows redirects, to anywhere
                raise OSError(f"redirected to a non-HTTPS address: {response.geturl()}")
            expected = response.headers.get("Content-Length")
            expected = int(expected) if expected is not None else None
            written = 0
            with tqdm(total=expected, unit="iB", unit_scale=True, desc=os.path.basename(path)) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            # A connection that closes early can look like a normal end of stream.
            if expected is not None and written != expected:
                raise OSError(f"download cut short: got {written:,} of {expected:,} bytes")
        if sha256 is not None and sha256_of(tmp) != sha256:
            raise OSError(f"the file has the wrong sha256 (expected {sha256}); nothing was kept, try again later")
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a data file should be readable as usual
        os.replace(tmp, path)
    except http.client.HTTPException as e:
        raise OSError(f"{type(e).__name__}: {e}") from e
    finally:
        if os.path.exists(tmp):  # after any failure, Ctrl-C included
            os.remove(tmp)


def fetch_tiny_shakespeare(path="input.txt"):
    """Make sure `path` holds tiny Shakespeare: download it if missing, and check its sha256 either way."""
    if not os.path.exists(path):
        print(f"downloading tiny Shakespeare to {path}")
        try:
            download(TINY_SHAKESPEARE_URL, path, TINY_SHAKESPEARE_SHA256)
        except OSError as e:
            raise RunError(f"could not download tiny Shakespeare from {TINY_SHAKESPEARE_URL} ({e}); "
                           f"download it by hand to {path}, or pass --data with a text file of your own")
    elif sha256_of(path) != TINY_SHAKESPEARE_SHA256:
        raise InputError(f"{path} is not tiny Shakespeare (its sha256 is not {TINY_SHAKESPEARE_SHA256}): delete it "
                         "to download it again, or, if it is your own text, give it another name and pass --data")
