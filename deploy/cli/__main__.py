"""`python -m deploy.cli ...` is `mercury ...`, for hosts where only the package is installed, not its script."""
import sys

from deploy.cli import main

sys.exit(main())
