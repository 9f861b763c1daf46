import sys

from kimp_fast.cli import main

sys.exit(main())
