"""The lock of a run folder: one process at a time trains (or resumes) a run folder.

`run_dir/kcv.lock` holds the PID, host and start time of the process training the folder,
for the message that refuses a second process. Mutual exclusion comes from an exclusive
`flock` on that file, which the kernel drops when its process ends however it ends: a lock
file left by a killed process is stale by construction and the next run takes it over.
Where `fcntl` is missing (Windows), the lock file is created exclusively and a leftover one
is taken over once its PID is no longer running.

Example:
    >>> with RunLock("runs/train/lenet5"):
    ...     ...  # train; a second RunLock on the folder raises RunFolderInUse
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from kerascv_suite.training.errors import RunFolderInUse

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = "kcv.lock"
# A peek at the lock (`RunLock.check`) holds it for an instant: acquiring retries this long.
ACQUIRE_RETRY_SECONDS = 0.5


def lock_info() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def read_info(path) -> dict:
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def pid_running(pid) -> bool:
    """Whether process `pid` of this host runs (without `fcntl`, the lock's only test)."""
    if os.name != "posix":
        return True  # os.kill would terminate it on Windows: assume it runs
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True
    return True


class RunLock:
    """Exclusive use of a run folder by this process.

    Args:
        run_dir: the run folder (created by `acquire` if missing).

    Attributes:
        path: the lock file, `run_dir/kcv.lock`.
        took_over: the lock information of a dead process this lock replaced, or None.
    """

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.took_over = None
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def in_use_error(self, info) -> RunFolderInUse:
        holder = f"process {info['pid']}" if info.get("pid") else "another process"
        if info.get("host") and info["host"] != socket.gethostname():
            holder += f" on {info['host']}"
        since = f" since {info['started']}" if info.get("started") else ""
        return RunFolderInUse(
            f"Run folder {self.run_dir} is in use by {holder}{since} (lock {self.path}); "
            f"wait for it to finish, or choose another --run-dir.")

    def check(self):
        """Raises `RunFolderInUse` if a live process holds the folder; creates nothing."""
        if self.held or not self.path.is_file():
            return
        if fcntl is None:
            info = read_info(self.path)
            if info and self._alive(info):
                raise self.in_use_error(info)
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self.in_use_error(self._holder_info()) from None
        finally:
            os.close(fd)  # closing drops a lock taken just to look

    def acquire(self) -> RunLock:
        """Takes the folder (creating it), or raises `RunFolderInUse` naming the holder."""
        if self.held:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            self._acquire_exclusive_file()
        else:
            self._acquire_flock()
        previous = read_info(self.path)
        if previous.get("pid") and previous.get("pid") != os.getpid():
            self.took_over = previous
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, json.dumps(lock_info()).encode())
        os.fsync(self._fd)
        return self

    def _acquire_flock(self):
        deadline = time.monotonic() + ACQUIRE_RETRY_SECONDS
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise self.in_use_error(self._holder_info()) from None
            # The previous holder may have removed the file between our open and flock:
            # then this lock is on a file nobody else sees; start over on the current one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return
            os.close(fd)

    def _acquire_exclusive_file(self):
        while True:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                return
            except FileExistsError:
                info = read_info(self.path)
                if self._alive(info):
                    raise self.in_use_error(info) from None
                self.took_over = info or None
                self.path.unlink(missing_ok=True)

    def _alive(self, info) -> bool:
        if not info.get("pid"):
            return True  # being written by a starting process
        if info.get("host") not in (None, socket.gethostname()):
            return True  # another machine's process: this one cannot tell
        return pid_running(info["pid"])

    def _holder_info(self) -> dict:
        # The holder writes its PID right after locking: give it a moment.
        for _ in range(20):
            info = read_info(self.path)
            if info.get("pid"):
                return info
            time.sleep(0.05)
        return {}

    def release(self):
        """Removes the lock file and drops the lock (a no-op when not held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None
