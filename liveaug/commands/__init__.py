"""One module per ``liveaug`` subcommand: ``HELP``, ``add_arguments(parser)``, ``run(args)``."""
