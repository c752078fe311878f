"""`python -m firmware_bridge.agent`: run one locker agent (see `cli.main`)."""

import sys

from firmware_bridge.agent.cli import main

sys.exit(main())
