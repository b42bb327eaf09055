"""``python -m server.cli``: the same as ``voicebot``."""

import sys

from server.cli import main

sys.exit(main())
