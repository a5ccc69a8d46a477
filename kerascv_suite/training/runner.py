"""The one training runner: config -> run folder -> model -> fit -> test -> MLflow.

`run(task, config)` knows nothing task-specific; the task (see `kerascv_suite.tasks.base`)
supplies data, model, loss, per-epoch callbacks, evaluation and report. The runner owns:

* the run folder (`project/name`, numbered `-2`, `-3`... when taken, created atomically),
  its lock (`run_lock.RunLock`: a folder in use by a live process is refused) and
  `config.yaml`;
* `--resume`: the last committed epoch is finished (`state.recover`), the model comes back
  from `checkpoints/last.keras` with the saved MLflow run, and the learning-rate schedule
  spans the config's epochs;
* chief/worker handling of multi-worker training (workers write to scratch);
* the MLflow run lifecycle (probed before any training, FINISHED / FAILED / KILLED);
* one finalize step: the best checkpoint is evaluated on the test split by the task's
  `evaluate` (the same code `kcv evaluate` runs), its report written, and the inference
  model logged with its metadata (`models.describe`) and optionally registered.

Example:
    >>> from kerascv_suite.tasks import get_task, load_config
    >>> config = load_config(model="lenet5", epochs=3)
    >>> result = run(get_task(config.task), config)
    >>> result.test_metrics["test_accuracy"]

Keras is imported inside `run`, after `check_backend` set the backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from kerascv_suite.training.errors import TrainingDiverged


@dataclasses.dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    mlflow_run_id: str
    epochs_trained: int
    history: list
    test_metrics: dict
    model_uri: str | None
    registered_version: str | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    chief: bool = True  # False: a non-chief worker, whose run folder was scratch (removed)
    headline: dict = dataclasses.field(default_factory=dict)


def check_backend(backend):
    """Sets `KERAS_BACKEND`, or fails if Keras already runs another backend."""
    if backend is None:
        return
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise RuntimeError(
                f"Keras was already imported with backend {keras.backend.backend()!r}; "
                f"start a new process to use {backend!r}. Received: backend={backend!r}"
            )
        return
    os.environ["KERAS_BACKEND"] = backend


def keep_gpus_for_keras():
    """Under jax or torch, hides the GPUs from TensorFlow (which only runs the tf.data input
    pipeline there): otherwise it would start CUDA beside the backend and reserve most of
    the GPU's memory. Does nothing under tensorflow or without GPUs."""
    import keras

    if keras.backend.backend() == "tensorflow":
        return
    import tensorflow as tf

    with contextlib.suppress(RuntimeError, ValueError):  # devices already initialized
        if tf.config.list_physical_devices("GPU"):
            tf.config.set_visible_devices([], "GPU")


def worker_scratch(config, resume, log):
    """A non-chief worker of multi-worker training writes nothing the user sees: it trains
    in a scratch copy of the run folder, with a scratch MLflow store and no registration,
    while the chief (TF_CONFIG's chief, or worker 0) writes the real run."""
    scratch = Path(tempfile.mkdtemp(prefix="kcv-worker-"))
    if resume and config.run_dir and Path(config.run_dir).is_dir():
        from kerascv_suite.training.run_lock import LOCK_FILE

        shutil.copytree(config.run_dir, scratch, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(LOCK_FILE))
    log(f"Non-chief worker: writing to scratch {scratch}; the chief writes the run.")
    return dataclasses.replace(config, run_dir=str(scratch),
                               tracking_uri=f"sqlite:///{scratch / 'mlflow.db'}",
                               register=None, alias=None)


def run(task, config, *, resume=False, log=print) -> TrainResult:
    """Trains `config` with `task`, evaluates on the test split, logs to MLflow and
    (optionally) registers.

    Args:
        task: a `kerascv_suite.tasks.base.Task`.
        config: the resolved config (`task.config_class`).
        resume: continue the run in `config.run_dir` from its last finished epoch, with the
            same MLflow run.
        log: where progress messages go (the CLI passes `click.echo`).

    Returns:
        A `TrainResult`.

    Raises:
        TrackingUnavailable: the MLflow store does not answer (raised before training).
        TrainingDiverged: the loss became NaN/inf; `checkpoints/last.keras` is the last good
            epoch.
        FileExistsError: a new run aimed at a folder that already holds a run.
        RunFolderInUse: a live process trains the run folder (a `FileExistsError`).
    """
    check_backend(config.backend)
    keep_gpus_for_keras()
    from kerascv_suite.training import state as run_state
    from kerascv_suite.training.distribute import make_distribution
    from kerascv_suite.training.run_lock import RunLock
    from kerascv_suite.training.tracking import Tracker

    start = time.monotonic()
    # Before any other TensorFlow op: multi-worker collectives are set up at creation.
    dist = make_distribution(config.distribute)
    if not dist.is_chief:
        config = worker_scratch(config, resume, log)
    if config.run_dir:
        # An explicit folder is checked before anything is created: in use, or holding a
        # run that was not asked to resume.
        RunLock(config.run_dir).check()
        check_state(config, folder_state(config.run_dir, dist), resume)
    # The folders this run creates (the run folder, maybe its project folders), removed again
    # if a failure leaves them empty.
    target = Path(config.run_dir or config.project).absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())
    run_dir = Path(config.run_dir) if config.run_dir else run_state.next_run_dir(
        config.project, config.name or config.model)
    config.run_dir = str(run_dir)
    lock = RunLock(run_dir).acquire()
    try:
        if lock.took_over:
            log(f"Took over the lock of {run_dir} from process {lock.took_over.get('pid')}, "
                "which no longer runs.")
        # Read again under the lock (another run may have used the folder meanwhile); on
        # resume the last committed epoch's files are moved into place, a killed epoch's
        # temporary files removed.
        state = folder_state(run_dir, dist, recover=resume)
        check_state(config, state, resume)
        # The data is read and checked before anything else is written (a data error leaves
        # no run folder and no MLflow store behind); then the tracking store is probed: a
        # dead server must not cost a training run.
        data = load_checked_data(task, config, run_dir, log)
        try:
            tracker = Tracker(config.tracking_uri, config.experiment)
        except BaseException:
            data.close()
            raise
        log(f"Run folder: {run_dir}  (MLflow store: {tracker.tracking_uri})")
        log_recipe(config, log)
        return train_in(task, config, run_dir, state, data, tracker, dist, start, log)
    finally:
        lock.release()
        if not (run_state.checkpoint_dir(run_dir) / run_state.STATE_FILE).exists():
            # Nothing was committed (e.g. the model could not be built: weights offline): the
            # config written for the run goes too, so a retry gets the same folder name.
            if not resume:
                (run_dir / "config.yaml").unlink(missing_ok=True)
            remove_if_empty(run_dir, up_to=existing)


def folder_state(run_dir, dist, recover=False):
    """The committed `RunState` of `run_dir` (finished by `state.recover` if `recover`)."""
    from kerascv_suite.training import state as run_state

    state = run_state.recover(run_dir) if recover else run_state.RunState.load(run_dir)
    if not dist.is_chief:
        state.mlflow_run_id = None  # the chief's run lives in the chief's store
    return state


def check_state(config, state, resume):
    """Refuses a new run in a folder that holds one, and a resume with nothing to do."""
    if not resume and (state.epoch > 0 or state.mlflow_run_id):
        raise FileExistsError(f"{config.run_dir} already holds a run; resume it with "
                              f"--resume {config.run_dir}, or choose another --run-dir.")
    if resume and state.finished and state.epoch >= config.epochs:
        raise ValueError(f"{config.run_dir} already finished {state.epoch} epochs; "
                         "nothing to resume.")


def remove_if_empty(run_dir, up_to):
    """Removes `run_dir` and its parents below `up_to` (the folder that existed before the
    run) when a failure left them empty; a folder with anything in it stays."""
    folder = Path(run_dir).absolute()
    while folder != up_to and up_to in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def load_checked_data(task, config, run_dir, log):
    """`task.load_data` under the run's precision policy and seed, with what it skipped
    said: counts per split and reason in the console (`data.skips`, the reasons of
    `kcv data check`)."""
    import keras

    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(mixed_precision_policy())
    keras.utils.set_random_seed(config.seed)
    data = task.load_data(config, run_dir, log)
    log(f"Data: {data.describe()}")
    for line in data.skips.lines():
        log(line)
    return data


def report_skips(data, run_dir, tracker):
    """Writes `skipped.txt` in the run folder and logs the skip counts to MLflow (again at
    the end: skips found while training or evaluating are added to `data.skips`)."""
    if data.skips.total:
        data.skips.write(Path(run_dir) / "skipped.txt")
    tracker.log_metrics(data.skips.metrics())


def train_in(task, config, run_dir, state, data, tracker, dist, start, log) -> TrainResult:
    """The body of `run`, in the locked run folder `run_dir`, on the loaded `data`."""
    from kerascv_suite.training import state as run_state
    from kerascv_suite.training.distribute import distribution_scope
    from kerascv_suite.training.engine import fit

    run_state.atomic_write_text(run_dir / "config.yaml", config.to_yaml())

    try:
        with distribution_scope(dist):
            with tracker.store():  # `--weights models:/...` resolves in the run's store
                model, second_phase = prepare_model(task, config, data, state, run_dir, log)
            task.prepare_fit(model, config, data)
            tracker.start(run_id=state.mlflow_run_id, run_name=run_dir.name)
            if state.mlflow_run_id is None:
                tracker.log_params(config.to_dict())
                tracker.log_system_info()
                state.mlflow_run_id = tracker.run_id
                state.save(run_dir)
            else:
                tracker.log_missing_epochs(state.history)
                log(f"Resuming {run_dir} after epoch {state.epoch} "
                    f"(MLflow run {state.mlflow_run_id}).")
            report_skips(data, run_dir, tracker)
            data.train_loader.set_epoch(state.epoch)
            outcome = fit(model, data.train, val_data=data.val, epochs=config.epochs,
                          run_dir=run_dir, state=state, second_phase=second_phase,
                          monitor=data.monitor(config.monitor),
                          mode="min" if config.monitor.endswith("loss") else "max",
                          patience=config.early_stopping, on_epoch=tracker.log_epoch,
                          callbacks=task.epoch_callbacks(config, data, run_dir, tracker))
            if outcome == "early_stopped":
                log(f"Early stopping after epoch {state.epoch}: no improvement of "
                    f"{config.monitor} in {config.early_stopping} epochs.")
        # Outside the distribution scope: under MirroredStrategy, Keras' predict_on_batch
        # returns each row once per replica, which would skew the test metrics. Only the
        # chief reports: another worker's weights are the same, its folder is scratch.
        final = finalize(task, config, data, state, run_dir, tracker, log) if dist.is_chief \
            else {"test_metrics": {}, "model_uri": None, "registered_version": None}
        state.finished = True
        state.save(run_dir)
        tracker.end("FINISHED")
    except BaseException as e:
        # A diverged run failed; anything else (Ctrl-C, kill, errors) may be resumed.
        tracker.end("FAILED" if isinstance(e, TrainingDiverged) else "KILLED")
        raise
    finally:
        data.close()
        if not dist.is_chief:
            shutil.rmtree(run_dir, ignore_errors=True)
    return TrainResult(
        run_dir=run_dir,
        mlflow_run_id=state.mlflow_run_id,
        epochs_trained=state.epoch,
        history=state.history,
        test_metrics=final["test_metrics"],
        model_uri=final["model_uri"],
        registered_version=final["registered_version"],
        stopped_early=state.early_stopped,
        seconds=time.monotonic() - start,
        chief=dist.is_chief,
        headline=dict(task.headline),
    )


def log_recipe(config, log):
    """One line saying which recipe applies and what it changes from the paper model."""
    if config.recipe in (None, "none"):
        return
    from kerascv_suite.models.registry import get_spec

    try:
        variant, paper = get_spec(config.recipe), get_spec(config.model)
    except ValueError:
        return
    import inspect

    builder_defaults = {name: p.default for name, p in
                        inspect.signature(paper.builder).parameters.items()}
    changed = {k: v for k, v in variant.defaults.items()
               if paper.defaults.get(k, builder_defaults.get(k)) != v}
    if config.recipe == config.model:
        text = "the recipe's own variant"
    else:
        text = (f"{config.model} with " + ", ".join(f"{k}={v}" for k, v in changed.items())
                if changed else f"{config.model} unchanged")
    log(f"Recipe {config.recipe}: trains {config.recipe} ({text}); "
        f"--recipe none trains the registered {config.model}.")


# === The model ===


def mixed_precision_policy():
    import keras

    # float16 needs a GPU to pay off; bfloat16 is what CPUs (AVX512-BF16/AMX) accelerate.
    on_gpu = any(d.startswith(("gpu", "cuda")) for d in device_names(keras.backend.backend()))
    return "mixed_float16" if on_gpu else "mixed_bfloat16"


def device_names(backend):
    if backend == "jax":
        import jax

        return [d.platform for d in jax.devices()]
    if backend == "torch":
        import torch

        return ["cuda"] if torch.cuda.is_available() else ["cpu"]
    import tensorflow as tf

    return ["gpu" for _ in tf.config.list_physical_devices("GPU")] or ["cpu"]


def phase_schedule(config, phase, steps_per_epoch):
    """The learning rate (schedule) of fine-tuning phase `phase` (1, or 2 after unfreezing)
    over the config's epochs."""
    phase1 = config.phase1_epochs
    if phase == 2 and 0 < phase1 < config.epochs:
        return make_schedule(config, config.lr * config.finetune_lr_factor,
                             config.epochs - phase1, steps_per_epoch)
    return make_schedule(config, config.lr, phase1 or config.epochs, steps_per_epoch)


def make_schedule(config, lr, epochs, steps_per_epoch):
    from kerascv_suite.training import optim

    return optim.make_schedule(
        config.schedule, lr, epochs * steps_per_epoch,
        warmup_steps=config.warmup_epochs * steps_per_epoch,
        step_every=(config.step_epochs or 0) * steps_per_epoch or None,
    )


def make_optimizer(config, lr, epochs, steps_per_epoch):
    """The config's optimizer with a schedule spanning `epochs` at peak `lr`."""
    from kerascv_suite.training import optim

    return optim.make_optimizer(config.optimizer, make_schedule(config, lr, epochs,
                                                                steps_per_epoch),
                                momentum=config.momentum, weight_decay=config.weight_decay)


def prepare_model(task, config, data, state, run_dir, log=print):
    """The model to train: the resumed checkpoint, or the task's fresh / `--weights` model
    (compiled, frozen for phase 1 of fine-tuning).

    Returns:
        `(model, second_phase)` for `kerascv_suite.training.engine.fit`.
    """
    import keras

    import kerascv_suite.layers  # noqa: F401  (registers custom layers for loading)
    import kerascv_suite.losses  # noqa: F401  (registers the losses for loading)
    import kerascv_suite.models  # noqa: F401  (registers the model classes for loading)
    from kerascv_suite.models.metadata import describe, with_metadata
    from kerascv_suite.training import finetune
    from kerascv_suite.training.state import LAST, checkpoint_dir

    steps = len(data.train_loader)
    phase1 = config.phase1_epochs
    last = checkpoint_dir(run_dir) / LAST
    if state.epoch > 0 and last.is_file():
        model = keras.saving.load_model(last)
        task.check_model(model, config, data, f"checkpoint {last}")
        # The schedule spans the config's epochs: a finished run extended with
        # `--resume --epochs N` goes on over the new total instead of at a decayed-to-zero
        # rate (with unchanged epochs this is the saved schedule).
        model.optimizer.learning_rate = phase_schedule(config, state.phase, steps)
    else:
        model, transferred = task.build_model(config, data, log)
        if config.weights:
            task.check_model(model, config, data, f"--weights {config.weights}")
        if config.mixed_precision and isinstance(model.outputs, list) and \
                len(model.outputs) == 1 and model.outputs[0].dtype != "float32":
            # Keras' mixed-precision guide: keep the outputs float32 so the loss, metrics
            # (top-k needs float32 on TensorFlow) and softmax are computed at full precision.
            outputs = keras.layers.Activation("linear", dtype="float32",
                                              name="output_float32")(model.outputs[0])
            model = with_metadata(keras.Model(model.inputs, outputs, name=model.name),
                                  **describe(model))
        model = remember(model, task.metadata(config, data))
        if config.freeze is not None:
            frozen = finetune.apply_freeze(model, config.freeze, transferred)
            log(f"Phase 1 ({phase1} epochs): {len(frozen)} layers frozen ({config.freeze}).")
        task.compile(model, config, config.lr, phase1 or config.epochs, steps)
    second_phase = None
    if 0 < phase1 < config.epochs:
        def unfreeze(model):
            finetune.unfreeze_all(model)
            lr = config.lr * config.finetune_lr_factor
            task.compile(model, config, lr, config.epochs - phase1, steps)
            log(f"Phase 2: all layers trainable, lr {lr:g}.")

        second_phase = (phase1, unfreeze)
    return model, second_phase


def remember(model, fields):
    """`model` carrying `fields` (see `models.describe`). Decoder settings that the model
    determines itself (the constructor thresholds of the R-CNN family) stay the model's:
    the run's own are passed to the detector at evaluation."""
    from kerascv_suite.models.metadata import HasMetadata, with_metadata

    if isinstance(model, HasMetadata) and fields.get("decoder"):
        own = model.metadata_facts().get("decoder") or {}
        fields = {**fields, "decoder": {k: v for k, v in fields["decoder"].items()
                                        if k not in own}}
    return with_metadata(model, **fields)


# === The end of a run ===


def best_checkpoint(run_dir) -> Path:
    """`checkpoints/best.keras`, or `last.keras` when no epoch was ever best."""
    from kerascv_suite.training.state import BEST, LAST, checkpoint_dir

    folder = checkpoint_dir(run_dir)
    return folder / BEST if (folder / BEST).is_file() else folder / LAST


def finalize(task, config, data, state, run_dir, tracker, log=print):
    """Evaluates the best checkpoint on the test split (the task's one evaluation path),
    writes and logs the report, logs the inference model with its metadata and registers
    it when asked."""
    import keras

    best = best_checkpoint(run_dir)
    model = task.before_evaluation(keras.saving.load_model(best), config, data, best, log)
    evaluation = task.evaluate(model, config, data, "test", log)
    test_metrics = evaluation.prefixed("test_")
    tracker.log_metrics(test_metrics)
    log(f"Test: {evaluation.summary} ({best.name})")
    report_skips(data, run_dir, tracker)
    if data.skips.total:
        for line in data.skips.lines():
            log(line)
        tracker.log_artifact(Path(run_dir) / "skipped.txt")
    paths = task.write_report(evaluation, model, config, data, state.history,
                              Path(run_dir) / "plots")
    for path in paths:
        tracker.log_artifact(path, "report")
    tracker.log_artifact(Path(run_dir) / "config.yaml")
    tracker.log_artifact(Path(run_dir) / "results.csv")
    logged = remember(task.inference_model(model, config), task.metadata(config, data))
    model_uri = tracker.log_model(logged, evaluation.sample_inputs, evaluation.sample_outputs)
    version = None
    if config.register:
        version = tracker.register(model_uri, config.register, config.alias)
        alias = f" (alias @{config.alias})" if config.alias else ""
        log(f"Registered {config.register} version {version}{alias}.")
    return {"test_metrics": test_metrics, "model_uri": model_uri, "registered_version": version}
