"""Named points where a test can have the process killed (fault injection).

`DOSSYNC_FAILPOINT=commit` makes the process SIGKILL itself when a sync
reaches the point named `commit`: the kill-safety tests use this to prove
the portal survives a crash at exactly that moment. Unset, it costs one
dictionary lookup.
"""
from __future__ import annotations

import os
import signal

# proposals-sent: the package took the proposals, the portal has not recorded it yet
POINTS = ("read", "validate", "commit", "proposals-sent")


def hit(name: str) -> None:
    if os.environ.get("DOSSYNC_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
