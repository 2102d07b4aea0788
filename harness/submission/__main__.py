"""`python -m harness.submission`: runs into the round's submission tree."""

import sys

from harness.submission.tree import main

sys.exit(main())
