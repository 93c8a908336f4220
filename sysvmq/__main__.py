import sys

from sysvmq.tools.cli import main

sys.exit(main())
