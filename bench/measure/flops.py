"""Analytic FLOP counts for Dense, Conv1D/2D/3D, LSTM and Embedding layers, and for a whole Keras model.

One multiply-add counts as 2 FLOPs. Per example (one input row, or one sequence):

- **Dense** (``in`` → ``out``), applied at ``P`` positions (P = 1 for a plain vector, the number
  of timesteps when it is applied to a sequence): forward ``2 · in · out · P``.
- **Conv1D** (``C`` input channels, ``F`` filters, kernel ``K``, output length ``L``): forward
  ``2 · K · C · F · L``.
- **Conv2D/Conv3D** (channels-last, kernel ``K₁ × K₂ (× K₃)``, output ``O₁ × O₂ (× O₃)``, ``G``
  groups): forward ``2 · ΠK · (C / G) · F · ΠO``.
- **LSTM** (input width ``D``, ``U`` units, ``T`` timesteps): each step computes the four gates
  from the input and the previous state, ``[x, h] @ W`` with W of shape ``(D + U) × 4U``:
  forward ``8 · T · U · (D + U)``. Masked steps are counted (TensorFlow computes them).
- **Embedding** (sequence length ``L``, output width ``E``): the forward pass is a table lookup,
  ``0`` FLOPs; training adds the sparse gradient into ``L`` rows: ``L · E`` FLOPs.

Training (forward, gradient with respect to the activations, gradient with respect to the
weights) costs about ``3 ×`` the forward pass for Dense, Conv1D and LSTM. Bias adds,
activations, pooling, masking and the optimizer's update are left out: they are O(outputs) or
O(weights) per step, not O(inputs × outputs) per example.

Nothing here imports TensorFlow or Keras at module level; :func:`model_flops` imports Keras
when it is called, on a model the caller already built.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

TRAIN_FACTOR = 3.0  # training ≈ forward + gradient wrt activations + gradient wrt weights


def dense_forward(inputs: int, units: int, positions: int = 1) -> float:
    """Forward FLOPs of a Dense layer per example: ``2 · in · out · positions``.

    Args:
        inputs: Input width.
        units: Output width.
        positions: How many vectors per example it is applied to (timesteps of a sequence).
    """
    return 2.0 * inputs * units * positions


def conv1d_forward(channels: int, filters: int, kernel: int, length: int) -> float:
    """Forward FLOPs of a Conv1D layer per example: ``2 · K · C · F · L``.

    Args:
        channels: Input channels C.
        filters: Filters F (output channels).
        kernel: Kernel size K.
        length: Output length L (the input length with ``padding="same"`` and stride 1).
    """
    return 2.0 * kernel * channels * filters * length


def conv_forward(channels: int, filters: int, kernel: Sequence[int], output: Sequence[int], groups: int = 1) -> float:
    """Forward FLOPs of a Conv1D/2D/3D layer per example: ``2 · ΠK · (C / groups) · F · Πout``.

    Args:
        channels: Input channels C.
        filters: Filters F.
        kernel: Kernel size per spatial axis.
        output: Output size per spatial axis.
        groups: Channel groups (1: a plain convolution).
    """
    return 2.0 * math.prod(kernel) * (channels / groups) * filters * math.prod(output)


def lstm_forward(inputs: int, units: int, timesteps: int) -> float:
    """Forward FLOPs of an LSTM layer per sequence: ``8 · T · U · (D + U)``.

    Args:
        inputs: Input width D.
        units: Units U.
        timesteps: Steps T.
    """
    return 8.0 * timesteps * units * (inputs + units)


def embedding_forward(length: int, dim: int) -> float:
    """Forward FLOPs of an Embedding lookup: 0 (a gather, no arithmetic).

    Args:
        length: Tokens per example.
        dim: Output width E.
    """
    return 0.0


def embedding_train(length: int, dim: int) -> float:
    """Training FLOPs of an Embedding per example: ``L · E`` (adding the gradient into L rows).

    Args:
        length: Tokens per example L.
        dim: Output width E.
    """
    return float(length) * dim


def dense_train_flops(widths: Sequence[int], samples: float) -> float:
    """FLOPs to train a dense (MLP) network on ``samples`` examples: ``3 · Σ 2 · a · b · samples``.

    Args:
        widths: Layer widths from input to output, e.g. ``[3, 5, 8, 5, 3]`` for Lorenz's
            ``[5, 8, 5]`` network.
        samples: Examples processed (examples per epoch × epochs).
    """
    forward = sum(dense_forward(a, b) for a, b in zip(widths, widths[1:]))
    return TRAIN_FACTOR * forward * float(samples)


@dataclasses.dataclass(frozen=True)
class LayerFlops:
    """One layer's count per example.

    Args:
        name: The layer's name.
        kind: ``Dense``, ``Conv1D``, ``LSTM``, ``Embedding`` or the class name of a layer not counted.
        forward: Forward FLOPs per example.
        train: Training FLOPs per example (forward + backward).
        counted: False for a layer with weights this module has no formula for.
    """

    name: str
    kind: str
    forward: float
    train: float
    counted: bool = True


@dataclasses.dataclass(frozen=True)
class ModelFlops:
    """A model's count per example, and per layer.

    Args:
        layers: Every layer walked (nested models flattened).
    """

    layers: tuple[LayerFlops, ...]

    @property
    def forward(self) -> float:
        """Forward FLOPs per example (prediction or evaluation)."""
        return sum(layer.forward for layer in self.layers)

    @property
    def train(self) -> float:
        """Training FLOPs per example."""
        return sum(layer.train for layer in self.layers)

    @property
    def uncounted(self) -> list[str]:
        """Layers with weights that no formula covers (their FLOPs are missing from the totals)."""
        return [f"{layer.name} ({layer.kind})" for layer in self.layers if not layer.counted]

    def trial(self, trained: float, evaluated: float = 0.0) -> float:
        """FLOPs of a trial that trains on ``trained`` examples and predicts ``evaluated`` more.

        Args:
            trained: Examples trained on (examples per epoch × epochs).
            evaluated: Examples run forward only (evaluation, prediction).
        """
        return self.train * float(trained) + self.forward * float(evaluated)


def _shape(tensor: Any) -> tuple:
    if isinstance(tensor, (list, tuple)):  # a layer called with a mask gets [inputs, mask]
        tensor = tensor[0]
    return tuple(tensor.shape)


def _positions(shape: Sequence) -> int | None:
    """Vectors per example between the batch axis and the last axis (None if any is unknown)."""
    inner = shape[1:-1]
    if any(d is None for d in inner):
        return None
    return int(math.prod(inner)) if inner else 1


def _layer(layer: Any, keras: Any) -> list[LayerFlops]:
    name, kind = layer.name, type(layer).__name__
    if isinstance(layer, keras.Model):
        return [f for inner in layer.layers for f in _layer(inner, keras)]
    if isinstance(layer, keras.layers.InputLayer):  # a functional model's input: no work, not a layer type
        return []
    try:
        shape_in, shape_out = _shape(layer.input), _shape(layer.output)
    except (AttributeError, ValueError) as exc:
        raise ValueError(f"layer {name!r} has never been called: build the model first ({exc})") from None
    unknown = LayerFlops(name, kind, 0.0, 0.0, counted=not layer.weights)
    if isinstance(layer, keras.layers.Dense):
        p = _positions(shape_in)
        if p is None:
            return [dataclasses.replace(unknown, counted=False)]
        f = dense_forward(int(shape_in[-1]), int(layer.units), p)
        return [LayerFlops(name, "Dense", f, TRAIN_FACTOR * f)]
    if isinstance(layer, keras.layers.Conv1D):
        if shape_out[1] is None or tuple(getattr(layer, "dilation_rate", (1,))) != (1,) or getattr(layer, "groups", 1) != 1:
            return [dataclasses.replace(unknown, counted=False)]
        f = conv1d_forward(int(shape_in[-1]), int(layer.filters), int(layer.kernel_size[0]), int(shape_out[1]))
        return [LayerFlops(name, "Conv1D", f, TRAIN_FACTOR * f)]
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv3D)) and not isinstance(
            layer, (keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)):
        spatial = shape_out[1:-1]
        if getattr(layer, "data_format", "channels_last") != "channels_last" or any(d is None for d in spatial):
            return [dataclasses.replace(unknown, counted=False)]
        f = conv_forward(int(shape_in[-1]), int(layer.filters), [int(k) for k in layer.kernel_size],
                         [int(d) for d in spatial], int(getattr(layer, "groups", 1) or 1))
        return [LayerFlops(name, kind, f, TRAIN_FACTOR * f)]
    if isinstance(layer, keras.layers.LSTM):
        if shape_in[1] is None:
            return [dataclasses.replace(unknown, counted=False)]
        f = lstm_forward(int(shape_in[-1]), int(layer.units), int(shape_in[1]))
        return [LayerFlops(name, "LSTM", f, TRAIN_FACTOR * f)]
    if isinstance(layer, keras.layers.Embedding):
        p = _positions(shape_out)
        if p is None:
            return [dataclasses.replace(unknown, counted=False)]
        dim = int(layer.output_dim)
        return [LayerFlops(name, "Embedding", embedding_forward(p, dim), embedding_train(p, dim))]
    return [unknown]


def model_flops(model: Any) -> ModelFlops:
    """Walks a built Keras model's layers and counts each (the formulas of this module).

    Works on any model a user built (Sequential or functional; nested models are walked).
    Layers without weights (activations, pooling, masking, dropout) count 0; a layer with
    weights and no formula here counts 0 and is listed in :attr:`ModelFlops.uncounted`.

    Args:
        model: A Keras model that has been built (called on an input or given ``keras.Input``).

    Raises:
        ValueError: the model (or one of its layers) has not been built.
    """
    import keras

    return ModelFlops(layers=tuple(f for layer in model.layers for f in _layer(layer, keras)))


__all__ = [
    "TRAIN_FACTOR", "LayerFlops", "ModelFlops", "conv1d_forward", "conv_forward", "dense_forward", "dense_train_flops",
    "embedding_forward", "embedding_train", "lstm_forward", "model_flops",
]
