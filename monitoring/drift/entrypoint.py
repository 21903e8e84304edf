"""The drift image's entry point: ``python -m monitoring.drift.entrypoint <job arguments>``.

SageMaker Processing mounts the job's input and output directories (``/opt/ml/processing/...``)
and ``/opt/ml/output`` (the failure message) owned by root, so a container whose image sets a
non-root ``USER`` cannot write its outputs there. Started as root, this gives those directories
to the image's ``drift`` user, drops to that user (groups, gid, uid: irrevocably), and only then
imports and runs ``monitoring.drift.job``. Started as any other user (tests, ``docker run
--user``), it runs the job as that user.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

JOB_USER = "drift"
#: What the job writes: its report directory's parent and the failure-message directory.
WRITABLE = (Path("/opt/ml/processing/output"), Path("/opt/ml/output"))


def drop_privileges(user: str = JOB_USER, writable: Sequence[Path] = WRITABLE) -> int:
    """As root: ``writable`` (created if missing, recursively) to ``user``, then become
    ``user``. Returns the uid the job runs as."""
    if os.getuid() != 0:
        return os.getuid()
    import pwd

    entry = pwd.getpwnam(user)
    for root in writable:
        root.mkdir(parents=True, exist_ok=True)
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for directory, _, files in os.walk(root):
            os.chown(directory, entry.pw_uid, entry.pw_gid)
            for name in files:
                os.chown(os.path.join(directory, name), entry.pw_uid, entry.pw_gid)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if os.getuid() == 0 or os.geteuid() == 0:  # pragma: no cover - the kernel refused
        raise SystemExit("could not drop root privileges")
    os.environ["HOME"] = entry.pw_dir
    return entry.pw_uid


def main(argv: Sequence[str] | None = None) -> int:
    drop_privileges()
    from monitoring.drift import job

    return job.main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
