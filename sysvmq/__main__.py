import sys

from sysvmq.cli import main

sys.exit(main())
