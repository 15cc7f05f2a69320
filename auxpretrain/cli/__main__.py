"""`python -m auxpretrain.cli ...`: the same as the `auxpretrain` command."""

import sys

from auxpretrain.cli import main

sys.exit(main())
