"""The `orderops` command line's entry point (the console script and `python starter.py`).

The commands live in orderops/cli/, one module per command group, over the client API in
orderops/client/ (docs/architecture.md).
"""

from orderops.cli import main

if __name__ == "__main__":
    main()
