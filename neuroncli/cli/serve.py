"""``neuron-serve`` (also ``neuron serve`` and ``tensorflow_model_server_neuron``): serve
compiled models over TensorFlow Serving's gRPC and REST APIs on simulated NeuronCores.

TF Serving's flag names and syntax (``--flag=value`` or ``--flag value``; booleans also as
``--flag=true``), so deployment scripts run unchanged.  An unknown flag is a usage error
(exit 2) that lists the supported ones.  The logic lives in :mod:`neuroncli.serving`.
"""

from __future__ import annotations

import logging

import click

from neuroncli.cli.common import command, verbosity_options

_HELP = """Serve compiled SavedModels with TensorFlow Serving's gRPC and REST APIs.

MODEL_BASE_PATH holds numeric version directories (1/, 2/, ...); the latest is served and
new versions are picked up without a restart.  Cores come from NEURON_RT_VISIBLE_CORES, the
instance from NEURON_SIM_INSTANCE_TYPE, as for neuron-run.  SIGTERM or Ctrl-C: finish the
requests in flight and exit 0.
"""

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


def _boolean(ctx: click.Context, param: click.Parameter, value: str) -> bool:
    text = str(value).lower()
    if text not in _TRUE | _FALSE:
        raise click.BadParameter(f"{value!r} is not a boolean: use true or false")
    return text in _TRUE


class TFServingCommand(click.Command):
    """A click command whose unknown-flag error lists every supported flag."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            flags = sorted(opt for p in self.params if isinstance(p, click.Option)
                           for opt in p.opts if opt.startswith("--") and "-" not in opt[2:])
            raise click.UsageError(f"unknown flag {exc.option_name}; supported flags: "
                                   f"{', '.join(flags)}", ctx) from None


@click.command("serve", cls=TFServingCommand, help=_HELP)
@click.option("--port", type=click.IntRange(0, 65535), default=8500, show_default=True,
              help="gRPC port.")
@click.option("--rest_api_port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="REST port (0: no REST API).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--model_name", default="default", show_default=True,
              help="Name clients use in model_spec / the REST path.")
@click.option("--model_base_path", metavar="DIR", help="Directory of numeric versions.")
@click.option("--model_config_file", metavar="FILE",
              help="Text-format ModelServerConfig (several models, version policies).")
@click.option("--file_system_poll_wait_seconds", type=click.FloatRange(min=0), default=1.0,
              show_default=True, help="Seconds between scans for new versions (0: once).")
@click.option("--enable_batching", is_flag=False, flag_value="true", default="false",
              callback=_boolean, metavar="[=BOOL]",
              help="Merge concurrent requests (default: false; a bare flag means true).")
@click.option("--batching_parameters_file", metavar="FILE",
              help="Text-format BatchingParameters.")
@click.option("--rest_api_timeout_in_ms", type=click.IntRange(min=0), default=30000,
              show_default=True, help="REST request timeout (0: none).")
@click.option("--monitoring_config_file", metavar="FILE",
              help="Text-format MonitoringConfig (Prometheus metrics on the REST port).")
@verbosity_options
@command
def serve_command(verbose: int, quiet: bool, **flags: object) -> int:
    from neuroncli.lazy_tf import require_tensorflow
    from neuroncli.serving import ServerOptions, serve
    require_tensorflow()  # before the server logs its start: one line without TensorFlow
    if not quiet:
        logging.getLogger("neuroncli").setLevel(logging.DEBUG if verbose else logging.INFO)
    return serve(ServerOptions(**flags))  # type: ignore[arg-type]


def main() -> None:
    """Console scripts ``neuron-serve`` and ``tensorflow_model_server_neuron``."""
    from neuroncli.cli.common import invoke
    import os
    import sys
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    invoke(serve_command, name if name == "tensorflow_model_server_neuron" else "neuron-serve")


if __name__ == "__main__":
    main()
