"""The ``edgekit`` command. Subcommands live in small modules, imported only when used, so
``edgekit detect`` never imports TensorFlow and ``--help`` stays fast."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

import click

from edgekit import __version__
from edgekit.errors import EdgekitError

# name -> "module:attribute" of a click command. One line per command; each module is thin.
COMMANDS: dict[str, str] = {
    "detect": "edgekit.cli.run:detect",
    "pose": "edgekit.cli.run:pose",
    "classify": "edgekit.cli.run:classify",
    "info": "edgekit.cli.info:info",
    "bench": "edgekit.cli.bench:bench",
    "models": "edgekit.cli.models:models",
    "export": "edgekit.cli.export:export",
    "import": "edgekit.cli.importer:import_",
    "data": "edgekit.cli.data:data",
    "train": "edgekit.cli.train:train",
    "eval": "edgekit.cli.eval:eval_",
    "explain": "edgekit.cli.explain:explain",
    "compress": "edgekit.cli.compress:compress",
    "quantize": "edgekit.cli.compress:quantize",
    "bundle": "edgekit.cli.deploy:bundle",
    "flash": "edgekit.cli.deploy:flash",
    "deploy": "edgekit.cli.deploy:deploy",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use; missing modules are not listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._available(name)]

    @staticmethod
    def _available(name: str) -> bool:
        module = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None or not self._available(name):
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show TensorFlow's own log lines (oneDNN, CUDA, converter), hidden by default; "
    "errors always show. Goes before the command: edgekit -v export ...",
)
def cli(verbose: bool) -> None:
    """edgekit: vision models from a Keras definition to a measured camera app on a
    Raspberry Pi or a Coral board.

    \b
    Run a model:      edgekit detect              (default model, built-in sample photos)
                      edgekit detect --camera     (live, picamera2 on a Pi, OpenCV elsewhere)
                      edgekit pose --source video.mp4 --save out.mp4
    Inspect/measure:  edgekit info model.tflite   edgekit bench a.tflite b.tflite --threads 1 2
    Build models:     edgekit models list         edgekit export NAME --format int8
    Start from one:   edgekit import teacher.tflite -o teacher.keras
    """
    if verbose:
        from edgekit.cli.quiet import release

        release()


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the CLI, turning edgekit errors into one-line messages and edgekit's
    logged warnings into ``edgekit: warning: ...`` lines.

    TensorFlow's log lines stay hidden unless ``-v`` (:mod:`edgekit.cli.quiet`)."""
    from edgekit.cli.quiet import quiet

    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_LineFormatter())
    logger = logging.getLogger("edgekit")
    logger.addHandler(handler)
    try:
        with quiet():
            return _main(argv)
    finally:
        logger.removeHandler(handler)


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"edgekit: {record.levelname.lower()}: {record.getMessage()}"


def _main(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="edgekit", standalone_mode=False)
    except EdgekitError as exc:
        click.echo(f"edgekit: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("edgekit: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("edgekit: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
