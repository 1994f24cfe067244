"""``python -m telemetry.sidecar RUN_DIR``: the sidecar of a run (``telemetry.sidecar.child``)."""

import sys

from telemetry.sidecar.child import main

sys.exit(main(sys.argv[1:]))
