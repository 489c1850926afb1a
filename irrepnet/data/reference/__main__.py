"""``python -m irrepnet.data.reference [--write [--overwrite] [--out PATH]] [--check]``."""

import sys

from . import main

sys.exit(main())
