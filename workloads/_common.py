"""Helpers the training workloads share: options, timed fits, memory, Keras clean-up.

Nothing here imports TensorFlow or Keras at module level.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

from bench.errors import UsageError


def int_option(options: Mapping[str, Any] | None, key: str, default: int, minimum: int = 1) -> int:
    """An integer workload option (command-line options arrive as strings).

    Args:
        options: Workload options.
        key: Option name.
        default: Value when the option is absent.
        minimum: Smallest valid value.

    Raises:
        UsageError: the value is not a whole number >= minimum (named in the message).
    """
    value = (options or {}).get(key)
    if value in (None, ""):
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise UsageError(f"bad workload option {key}={value!r} (expected a whole number >= {minimum})")
    return number


def float_option(options: Mapping[str, Any] | None, key: str, default: float, minimum: float = 0.0) -> float:
    """A positive number workload option (command-line options arrive as strings).

    Args:
        options: Workload options.
        key: Option name.
        default: Value when the option is absent.
        minimum: The value must be above this.

    Raises:
        UsageError: the value is not a finite number > minimum (named in the message).
    """
    value = (options or {}).get(key)
    if value in (None, ""):
        return default
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > minimum):
        raise UsageError(f"bad workload option {key}={value!r} (expected a number > {minimum:g})")
    return number


def int_list_option(options: Mapping[str, Any] | None, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """A comma-separated list of whole numbers >= 1, e.g. ``batch_sizes=32,256``.

    Args:
        options: Workload options.
        key: Option name.
        default: Value when the option is absent.

    Raises:
        UsageError: an item is not a whole number >= 1 (the whole value is named).
    """
    value = (options or {}).get(key)
    if value in (None, ""):
        return default
    items = [item.strip() for item in str(value).split(",")]
    if not all(item.isdigit() and int(item) >= 1 for item in items):
        raise UsageError(f"bad workload option {key}={value!r} (expected whole numbers >= 1, comma-separated)")
    return tuple(int(item) for item in items)


def int_options(options: Mapping[str, Any] | None, defaults: Mapping[str, int]) -> dict[str, int]:
    """A size's integer setup with ``--opt`` overrides; ``folds`` must be at least 2.

    Args:
        options: Workload options.
        defaults: Option name -> value for the size.
    """
    return {k: int_option(options, k, v, minimum=2 if k == "folds" else 1) for k, v in defaults.items()}


def record_field(record: Any, key: str, default: Any = None) -> Any:
    """A field of a trial record given as a ``TrialRecord`` or as its dict.

    Args:
        record: The trial record.
        key: Field name (``config``, ``quality``, ``extra``, ``wall_s``, ``error``...).
        default: Value when the field is missing.
    """
    if isinstance(record, Mapping):
        return record.get(key, default)
    return getattr(record, key, default)


def rss_bytes() -> int:
    """Resident memory of this process now."""
    import psutil

    return psutil.Process().memory_info().rss


def release_keras() -> None:
    """Drops Keras' global state and collects garbage after a trial, so a worker that runs many
    trials does not grow with every model it built (seed 002 saw RAM climb until it stopped)."""
    import keras

    keras.backend.clear_session(free_memory=True)


def fit_timed(model, x, y, epochs: int, batch_size: int, callbacks=()) -> list[float]:
    """``model.fit`` (shuffled, silent); returns each epoch's seconds (the first includes tracing).

    Args:
        model: A compiled model.
        x: Inputs.
        y: Targets.
        epochs: Epochs.
        batch_size: Batch size.
        callbacks: More Keras callbacks; they run after the epoch's time is taken, so what they
            do at an epoch's end is not counted in it.
    """
    import keras

    starts: list[float] = []
    times: list[float] = []
    clock = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs=None: starts.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs=None: times.append(time.perf_counter() - starts[-1]),
    )
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True, callbacks=[clock, *callbacks])
    return times
