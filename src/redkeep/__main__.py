"""``python -m redkeep``: the same command line as the ``redkeep`` script."""

from redkeep.cli import main

if __name__ == "__main__":
    main()
