"""``python orphan_guard.py ARGV...``: exec ARGV so that it gets SIGTERM when its agent dies.

A trial started by an agent that is then killed (``kill -9``) must not run on
unseen; Linux's ``PR_SET_PDEATHSIG`` survives ``exec``, so this sets it and
becomes the trial's program. Elsewhere it only execs.
"""

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1

if __name__ == "__main__":
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the agent died before the guard was set
        sys.exit(143)
    os.execvp(sys.argv[1], sys.argv[1:])
