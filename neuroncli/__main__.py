"""``python -m neuroncli`` is the ``neuron`` command."""

from neuroncli.cli.main import neuron

if __name__ == "__main__":
    neuron(prog_name="neuron")
