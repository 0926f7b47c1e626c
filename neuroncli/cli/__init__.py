"""Command-line entry points: one thin module per command over the library."""
