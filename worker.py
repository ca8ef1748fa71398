"""The worker's entry point: `python worker.py [options]` is `orderops worker [options]`.

It serves order workflows and their activities (orderops/worker.py) and refuses to start
while any definition under process_defs/ fails lint, with the same messages.
"""

import sys

from orderops.cli import main

if __name__ == "__main__":
    main(["worker", *sys.argv[1:]])
