"""A task's scratch folder, and the clean-up of those that killed workers left behind.

A worker renders each task in a folder of the system's temporary folder, and removes it when
the task is done; a worker killed meanwhile (``SIGKILL``, out of memory) never does. So each
folder's name says whose it is: ``reelgate-w<pid>-<host>-<task id>-<random>``, with the pid of
the worker process and a tag of the host it ran on (its name and, on Linux, its process id
namespace: containers sharing one temporary folder do not see each other's processes). A worker
that starts removes the folders of its host whose process is not running any more
(``remove_orphans``). It is conservative: a folder of another host, of another user, of a
process that is running (or whose pid was given to another process since), or named any other
way is left alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path

log = logging.getLogger("reelgate.worker")

#: What every scratch folder's name starts with.
PREFIX = "reelgate-w"
_NAME = re.compile(rf"{PREFIX}(?P<pid>[1-9][0-9]{{0,9}})-(?P<host>[0-9a-f]{{8}})-[0-9]+-.+")


def host_tag() -> str:
    """Eight hex digits naming this host and its process id namespace."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux, or no /proc: the host's name alone
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:8]


def make(task_id: int) -> Path:
    """A new scratch folder for ``task_id``, named for this process (see the module)."""
    prefix = f"{PREFIX}{os.getpid()}-{host_tag()}-{task_id}-"
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove_orphans(root: Path | None = None) -> list[Path]:
    """Remove the scratch folders in ``root`` (the system's temporary folder) that processes of
    this host left which are not running any more; the folders removed."""
    root = Path(tempfile.gettempdir()) if root is None else root
    tag, own_pid, own_uid = host_tag(), os.getpid(), os.geteuid()
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError as exc:
        log.warning("cannot look for scratch folders left in %s: %s", root, exc)
        return []
    for entry in entries:
        found = _NAME.fullmatch(entry.name)
        if found is None or found["host"] != tag:
            continue
        pid = int(found["pid"])
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != own_uid:
            continue
        if pid == own_pid or _running(pid):
            continue
        path = Path(entry.path)
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            continue  # another worker starting at the same time removed it
        except OSError as exc:
            log.warning("cannot remove the scratch folder %s: %s", path, exc)
            continue
        removed.append(path)
    if removed:
        log.info("removed %d scratch folders that stopped workers left in %s", len(removed), root)
    return removed


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists (a zombie too; one of another user too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):
        return True  # cannot tell: leave its folder alone
    return True
