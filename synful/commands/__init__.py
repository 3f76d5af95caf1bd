"""One module per ``synful`` subcommand (the command-line face: parse, call one stage, report).

A module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args)``; the CLI
discovers modules here, so adding a command never edits :mod:`synful.cli`.
"""
