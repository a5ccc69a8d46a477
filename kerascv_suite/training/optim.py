"""Optimizers and learning-rate schedules from plain config values.

Schedules are Keras `LearningRateSchedule` objects driven by `optimizer.iterations`, so they
are saved inside the `.keras` checkpoint with the optimizer and a resumed run continues at the
exact learning rate where it stopped.
"""

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine", "step", "warmup_cosine")


def make_schedule(name, lr, total_steps, warmup_steps=0, step_every=None, gamma=0.1):
    """Returns a float (constant) or a `LearningRateSchedule`.

    Args:
        name: one of `SCHEDULES`.
        lr: the peak learning rate.
        total_steps: optimizer steps of the whole phase.
        warmup_steps: linear warm-up steps for `"warmup_cosine"`.
        step_every: steps between decays for `"step"` (default: a third of the run).
        gamma: multiplicative decay of `"step"`.
    """
    import keras

    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}. Received: schedule={name!r}")
    total_steps = max(int(total_steps), 1)
    if name == "constant":
        return float(lr)
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(float(lr), total_steps)
    if name == "warmup_cosine":
        warmup_steps = min(int(warmup_steps), total_steps - 1)
        # CosineDecay warms up linearly from initial_learning_rate to warmup_target.
        return keras.optimizers.schedules.CosineDecay(
            0.0, total_steps - warmup_steps, warmup_target=float(lr), warmup_steps=warmup_steps
        )
    step_every = max(int(step_every or total_steps // 3), 1)
    return keras.optimizers.schedules.ExponentialDecay(
        float(lr), step_every, float(gamma), staircase=True
    )


def make_optimizer(name, learning_rate, momentum=0.9, weight_decay=None):
    """Returns a Keras optimizer; `learning_rate` is a float or a schedule."""
    import keras

    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}. Received: optimizer={name!r}")
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=True,
                                    weight_decay=weight_decay or None)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, weight_decay=weight_decay or None)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay or 1e-4)
    return keras.optimizers.RMSprop(learning_rate, weight_decay=weight_decay or None)
