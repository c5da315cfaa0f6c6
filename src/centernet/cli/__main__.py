"""``python -m centernet.cli``: the same as the ``centernet`` command."""

import sys

from centernet.cli.parser import main

sys.exit(main())
