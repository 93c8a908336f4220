"""The ``sysvmq`` command and what it runs (demo, quick benchmark): tools built on the
library, which itself never imports them."""
