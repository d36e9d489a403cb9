"""The FID table and plots of an eval sweep: python sweeps/fid_table.py <multirun dir> [--cols ...]

Same as the `maskgit-fid-table` command; see maskgit.sweeps.table and sweeps/README.md.
"""

import sys

from maskgit.sweeps.table import main

if __name__ == "__main__":
    sys.exit(main())
