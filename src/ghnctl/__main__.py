"""``python -m ghnctl``: the same entry point as the ``ghnctl`` console script."""

from ghnctl.cli.app import main

if __name__ == "__main__":
    raise SystemExit(main())
