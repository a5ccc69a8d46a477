"""The `kcv` command: one click group; each command module attaches its commands here.

Command modules import only click (and the standard library) at module level, so
`kcv --help` never imports Keras or TensorFlow.

Two things happen here for every command:

* start-up noise is silenced before any backend is imported (`quiet_startup`):
  TensorFlow's C++ logging (oneDNN, CUDA probing, "failed call to cuInit"), absl's
  "All log messages before absl::InitializeLog()" lines and gRPC's; `--verbose` keeps them;
* errors are shown as one line (`KcvGroup.invoke`, through `apps.errors.to_click_error`):
  exit status 2 for bad input, 1 for runtime failures; `--debug` or `KCV_DEBUG=1` prints the
  traceback first.
"""

import importlib.abc
import importlib.machinery
import os
import sys
import traceback
import warnings

import click

from kerascv_suite import __version__
from kerascv_suite.apps import cam_cmd
from kerascv_suite.apps import data_cmd
from kerascv_suite.apps import detect_cmd
from kerascv_suite.apps import evaluate_cmd
from kerascv_suite.apps import evaluate_detections_cmd
from kerascv_suite.apps import export_cmd
from kerascv_suite.apps import models_cmd
from kerascv_suite.apps import segment_cmd
from kerascv_suite.apps import train_cmd
from kerascv_suite.apps import ui_cmd
from kerascv_suite.apps import weights_cmd
from kerascv_suite.apps.errors import debug_enabled, to_click_error

# Read by the C++ libraries when they load: TensorFlow/XLA (3: fatal only), gRPC, glog; and
# by MLflow when it configures its loggers ("Creating initial MLflow database tables...").
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "3",
             "MLFLOW_LOGGING_LEVEL": "WARNING"}
# Imported with file descriptor 2 on /dev/null: absl writes "All log messages before
# absl::InitializeLog()" and the cudart_stub lines while the library loads, before any log
# level applies (TF_CPP_MIN_LOG_LEVEL does not reach them).
QUIET_IMPORTS = ("tensorflow",)


class QuietImporter(importlib.abc.MetaPathFinder):
    """A `sys.meta_path` finder that finds nothing itself: the first import of each module in
    `names` runs its loader with stderr's file descriptor pointed at /dev/null. Exceptions
    still propagate (and print after the descriptor is restored)."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names:
            return None
        self.names.discard(fullname)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = QuietLoader(spec.loader)
        return spec


class QuietLoader(importlib.abc.Loader):
    """Wraps a loader: `exec_module` runs with file descriptor 2 on /dev/null."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            self.loader.exec_module(module)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)

    def __getattr__(self, name):  # get_resource_reader, is_package, ...
        return getattr(self.loader, name)


class StartupNoise:
    """Installs the quiet start-up (`QUIET_ENV` defaults, the `QuietImporter`) and undoes it
    for `--verbose`; a variable the user set is never changed."""

    def __init__(self):
        self.set_here = {}
        self.importer = None

    def quiet(self):
        for key, value in QUIET_ENV.items():
            if key not in os.environ:
                os.environ[key] = value
                self.set_here[key] = value
        pending = [name for name in QUIET_IMPORTS if name not in sys.modules]
        if pending:
            self.importer = QuietImporter(pending)
            sys.meta_path.insert(0, self.importer)

    def restore(self):
        for key, value in self.set_here.items():
            if os.environ.get(key) == value:
                del os.environ[key]
        self.set_here = {}
        if self.importer in sys.meta_path:
            sys.meta_path.remove(self.importer)
        self.importer = None


STARTUP = StartupNoise()
STARTUP.quiet()


class KcvGroup(click.Group):
    """The `kcv` group: every exception a command raises that is not click's own becomes a
    one-line click error (`apps.errors.to_click_error`); `--debug` prints the traceback
    before it."""

    def invoke(self, ctx):
        debug = debug_enabled(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            if debug and error.__cause__ is not None:  # a command's own translation
                click.echo(traceback.format_exc(), err=True, nl=False)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.Abort() from None
        except BrokenPipeError:
            # The reader went away (`kcv weights list | head`): stop quietly, as `ls` does.
            sys.stdout = open(os.devnull, "w")
            raise click.exceptions.Exit(141) from None
        except Exception as error:  # noqa: BLE001 - the one place errors are shown
            if debug:
                click.echo(traceback.format_exc(), err=True, nl=False)
            command = self.get_command(ctx, ctx.invoked_subcommand or "")
            data_option = command is not None and any(
                "--data" in getattr(p, "opts", ()) for p in command.params)
            raise to_click_error(error, data_option) from error


@click.group(cls=KcvGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kcv")
@click.option("--debug", is_flag=True, envvar="KCV_DEBUG",
              help="Print the traceback of an error (also KCV_DEBUG=1).")
@click.option("--verbose", is_flag=True,
              help="Keep TensorFlow / absl / CUDA start-up logging (silenced by default).")
def main(debug, verbose):
    """kerascv-suite: classic convolutional networks on Keras 3.

    Errors are one line: exit status 2 for bad input (options, data, model files), 1 for
    failures while running.
    """
    if verbose:
        STARTUP.restore()
    else:
        warnings.formatwarning = one_line_warning


def one_line_warning(message, category, filename, lineno, line=None):
    """A warning on the console as `Warning: message` (no file, line or source), the way
    errors are shown; `--verbose` keeps Python's format."""
    return f"Warning: {message}\n"


_MODULES = (
    models_cmd,
    weights_cmd,
    data_cmd,
    evaluate_cmd,
    evaluate_detections_cmd,
    export_cmd,
    cam_cmd,
    ui_cmd,
    segment_cmd,
    detect_cmd,
    train_cmd,  # kcv train and its task aliases train-detector/-segmenter/-keypoints
)
for _module in _MODULES:
    for _command in _module.COMMANDS:
        main.add_command(_command)
