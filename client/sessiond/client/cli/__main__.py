"""``python -m sessiond.client.cli``: the ``sessiond`` command."""

import sys

from sessiond.client.cli import main

sys.exit(main())
