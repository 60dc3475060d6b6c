"""What the bundled ``ECGStudio`` executable runs: the ``ecgstudio`` command (``ecgstudio.cli:main``).

No arguments opens the window; ``gui --selftest`` checks the installation headless;
``digitize PATH --out DIR`` and the other sub-commands work as with the pip-installed command.
"""

import multiprocessing
import sys

from ecgstudio.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # worker processes of a frozen app re-enter here
    sys.exit(main())
