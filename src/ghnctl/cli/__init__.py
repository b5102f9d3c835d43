"""The ``ghnctl`` command line: one Typer app (``app.py``), one module per command.

Shared pieces: ``options.py`` (option aliases), ``output.py`` (the one output object: rich on
stderr or JSON on stdout), ``boundary.py`` (the one error boundary). Nothing here imports torch at
module level, so ``ghnctl --help`` stays fast.
"""
