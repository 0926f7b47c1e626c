"""``python -m neuroncli`` is the ``neuron`` command."""

from neuroncli.cli.main import main

if __name__ == "__main__":
    main()
