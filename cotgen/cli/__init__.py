"""The command line: one module per subcommand, registered on `app`; `main()` is the exit point."""
