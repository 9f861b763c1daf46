import sys

from kimp_fast.probe import main

sys.exit(main())
