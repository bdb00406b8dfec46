"""`python -m evalfleet.testing.lepton --port 0 --token T` prints `READY <workspace-api-base>`."""

import sys

from evalfleet.testing.lepton._serve import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
