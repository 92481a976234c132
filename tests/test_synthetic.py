"""The seeded generators: shapes, conventions, determinism, and a signal a simple model learns.

numpy only: no TensorFlow is imported here.
"""

from __future__ import annotations

import numpy as np
import pytest

from workloads import synthetic


def softmax_regression_accuracy(x, y, x_test, y_test, steps=300, lr=0.5):
    """Trains a (multinomial) logistic regression by gradient descent; returns test accuracy."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x, x_test = (x - mu) / sd, (x_test - mu) / sd
    k = int(y.max()) + 1
    w, b, onehot = np.zeros((x.shape[1], k)), np.zeros(k), np.eye(k)[y]
    for _ in range(steps):
        z = x @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(x)
        w -= lr * x.T @ g
        b -= lr * g.sum(0)
    return float(((x_test @ w + b).argmax(1) == y_test).mean())


# ----------------------------------------------------------------------------------- IMDB


def test_imdb_shapes_and_keras_conventions():
    (xt, yt), (xe, ye) = synthetic.imdb_reviews(600, 400, seed=1, maxlen=500)
    assert xt.shape == (600, 500) and xe.shape == (400, 500)
    assert xt.dtype == np.int32 and yt.dtype == np.int8
    assert xt.min() == 0 and xt.max() < synthetic.IMDB_WORDS
    assert sorted(np.bincount(yt)) == [300, 300]  # balanced, like IMDB
    lengths = (xt > 0).sum(1)
    assert 10 <= lengths.min() and lengths.max() == 500  # some reviews longer than 500 are truncated
    assert 170 < lengths.mean() < 260  # IMDB: ~230 tokens at maxlen 500
    # padded at the front; a review that fits starts with the start index 1, then words or OOV (2)
    short = np.flatnonzero(lengths < 500)
    first = 500 - lengths[short]
    assert (xt[short, first] == synthetic.START).all()
    assert (xt[short, first - 1] == synthetic.PAD).all()
    body = xt[xt > synthetic.START]
    assert 0.03 < (body == synthetic.OOV).mean() < 0.1


def test_imdb_is_a_pure_function_of_its_seed():
    a = synthetic.imdb_reviews(50, 20, seed=3, maxlen=100)
    b = synthetic.imdb_reviews(50, 20, seed=3, maxlen=100)
    c = synthetic.imdb_reviews(50, 20, seed=4, maxlen=100)
    assert all(np.array_equal(p, q) for p, q in zip(a[0] + a[1], b[0] + b[1]))
    assert not np.array_equal(a[0][0], c[0][0])


def test_imdb_sentiment_is_learnable_by_naive_bayes():
    (xt, yt), (xe, ye) = synthetic.imdb_reviews(3000, 1000, seed=7, maxlen=200)
    counts = np.stack([np.bincount(xt[yt == k].ravel(), minlength=synthetic.IMDB_WORDS) for k in (0, 1)]) + 1.0
    log_odds = np.log(counts[1] / counts[1].sum()) - np.log(counts[0] / counts[0].sum())
    log_odds[: synthetic.FIRST_WORD] = 0.0
    accuracy = ((log_odds[xe].sum(1) > 0) == ye).mean()
    assert accuracy > 0.75  # chance is 0.5


# ----------------------------------------------------------------------------------- poses


@pytest.mark.parametrize("task", ["multi", *synthetic.EXERCISES])
def test_poses_shapes_normalisation_and_balance(task):
    x, y = synthetic.poses(400, seed=2, task=task)
    assert x.shape == (400, synthetic.FEATURES) == (400, 28) and x.dtype == np.float32
    assert np.isfinite(x).all()
    classes = 4 if task == "multi" else 2
    assert np.bincount(y).tolist() == [400 // classes] * classes
    points = x.reshape(-1, 14, 2)
    mid_hip = (points[:, 8] + points[:, 11]) / 2
    np.testing.assert_allclose(mid_hip, 0.0, atol=1e-5)  # centred on the hips
    np.testing.assert_allclose(np.linalg.norm(points[:, 1], axis=1), 1.0, rtol=1e-5)  # neck at distance 1


@pytest.mark.parametrize("task", ["multi", *synthetic.EXERCISES])
def test_poses_are_learnable_by_logistic_regression(task):
    x, y = synthetic.poses(1600, seed=5, task=task)
    accuracy = softmax_regression_accuracy(x[:1200], y[:1200], x[1200:], y[1200:])
    assert accuracy > (0.8 if task == "multi" else 0.85)  # chance: 0.25 / 0.5


def test_poses_depend_only_on_seed_and_reject_unknown_tasks():
    assert np.array_equal(synthetic.poses(30, seed=9)[0], synthetic.poses(30, seed=9)[0])
    assert not np.array_equal(synthetic.poses(30, seed=9)[0], synthetic.poses(30, seed=10)[0])
    with pytest.raises(ValueError, match="unknown pose task 'jump'"):
        synthetic.poses(10, task="jump")


# ----------------------------------------------------------------------------------- sequences


def test_sequences_shapes_lengths_and_padding():
    x, y, frames = synthetic.keypoint_sequences(300, seed=3, exercise="lunge")
    assert x.shape == (300, 48, 28) and x.dtype == np.float32
    assert frames.min() >= 24 and frames.max() <= 48 and len(set(frames.tolist())) > 10
    assert np.bincount(y).tolist() == [150, 150]
    valid = np.arange(48)[None, :] < frames[:, None]
    assert (x[~valid] == 0).all()  # zero padding after each repetition ...
    assert (np.abs(x[valid]).sum(-1) > 0).all()  # ... and no real frame is all zeros (Masking finds the end)


def test_sequences_correct_vs_incorrect_is_learnable():
    x, y, frames = synthetic.keypoint_sequences(800, seed=6, exercise="squat")
    valid = (np.arange(48)[None, :] < frames[:, None])[..., None]
    motion_range = np.where(valid, x, -np.inf).max(1) - np.where(valid, x, np.inf).min(1)
    mean_pose = x.sum(1) / frames[:, None]
    features = np.concatenate([motion_range, mean_pose], 1)
    accuracy = softmax_regression_accuracy(features[:600], y[:600], features[600:], y[600:])
    assert accuracy > 0.85  # chance 0.5
    # the first frame (start position) alone does not tell correct from incorrect
    first = softmax_regression_accuracy(x[:600, 0], y[:600], x[600:, 0], y[600:])
    assert first < 0.7
