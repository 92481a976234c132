"""Seeded synthetic data for the workloads: IMDB-shaped reviews, body-keypoint poses and sequences.

Everything here is numpy only (no TensorFlow) and a pure function of its arguments: the same
arguments give the same arrays in every process. Each generator carries a learnable signal, so a
model trained on it scores well above chance and a broken model or pipeline shows.

Poses follow seed 002: 14 OpenPose keypoints (x, y) normalised to 28 features. They are drawn by
forward kinematics from per-exercise skeleton templates (start and end pose as joint angles),
with per-person proportions, camera tilt, angle jitter and keypoint noise.
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------------- IMDB

IMDB_WORDS = 5000
IMDB_MAXLEN = 500
PAD, START, OOV, FIRST_WORD = 0, 1, 2, 3  # keras.datasets.imdb conventions
_SENTIMENT_WORDS = 200  # per polarity
_SENTIMENT_RATE = 0.05  # share of tokens that carry sentiment
_OOV_RATE = 0.06  # share of tokens outside the top `words` (IMDB at num_words=5000: ~6 %)


def imdb_lengths(n: int, rng: np.random.Generator) -> np.ndarray:
    """Review lengths like IMDB's (median ~180 tokens, mean ~235, 10..2494).

    Args:
        n: Number of reviews.
        rng: The generator to draw from.
    """
    return np.clip(np.round(rng.lognormal(np.log(178.0), 0.76, n)), 10, 2494).astype(np.int64)


def imdb_reviews(
    n_train: int = 25000,
    n_test: int = 25000,
    seed: int = 0,
    maxlen: int = IMDB_MAXLEN,
    words: int = IMDB_WORDS,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A synthetic IMDB corpus, already padded/truncated like ``pad_sequences`` (pre/pre).

    Word indices follow ``keras.datasets.imdb.load_data(num_words=words)``: 0 padding, 1 start,
    2 out-of-vocabulary, 3.. words by Zipf frequency. Each review's label (balanced) tilts the
    choice of a fixed set of sentiment words, 200 per polarity, with a per-review strength, so a
    count of sentiment words gets ~92 % right at 500 tokens (the real IMDB: ~87 % for
    the seed's model).

    Args:
        n_train: Training reviews.
        n_test: Test reviews.
        seed: Seed of the corpus (sentiment words, lengths, tokens, labels).
        maxlen: Padded length (tokens kept from the end of a longer review, as keras does).
        words: Vocabulary size including the 3 reserved indices.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: int32 ``(n, maxlen)`` and int8 ``(n,)``.
    """
    rng = np.random.default_rng(seed)
    vocab = np.arange(FIRST_WORD, words)
    zipf = 1.0 / (np.arange(len(vocab)) + 2.7)
    cdf = np.cumsum(zipf / zipf.sum())
    mid = vocab[(vocab >= 60) & (vocab < 2000)]  # sentiment words are neither stop words nor rare
    chosen = rng.choice(mid, 2 * _SENTIMENT_WORDS, replace=False)
    polar = (chosen[:_SENTIMENT_WORDS], chosen[_SENTIMENT_WORDS:])  # (negative, positive)
    sent_cdf = np.cumsum(1.0 / np.arange(1, _SENTIMENT_WORDS + 1))  # a few common ones, as "great"/"bad"
    sent_cdf /= sent_cdf[-1]

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.permutation(np.arange(n) % 2).astype(np.int8)
        x = vocab[np.minimum(np.searchsorted(cdf, rng.random((n, maxlen))), len(vocab) - 1)]
        x[rng.random((n, maxlen)) < _OOV_RATE] = OOV
        strength = rng.uniform(0.6, 1.0, n)[:, None]  # P(a sentiment word agrees with the label)
        sentiment = rng.random((n, maxlen)) < _SENTIMENT_RATE
        agree = rng.random((n, maxlen)) < strength
        positive = np.where(agree, y[:, None] == 1, y[:, None] == 0)
        pick = np.minimum(np.searchsorted(sent_cdf, rng.random((n, maxlen))), _SENTIMENT_WORDS - 1)
        x = np.where(sentiment, np.where(positive, polar[1][pick], polar[0][pick]), x)
        length = imdb_lengths(n, rng)
        kept = np.minimum(length, maxlen)
        col = np.arange(maxlen)[None, :]
        first = (maxlen - kept)[:, None]
        x = np.where(col < first, PAD, x)
        x = np.where((col == first) & (length[:, None] <= maxlen), START, x)
        return x.astype(np.int32), y

    return split(n_train), split(n_test)


# ----------------------------------------------------------------------------------- poses

KEYPOINTS = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
)
FEATURES = 2 * len(KEYPOINTS)
EXERCISES = ("squat", "push_up", "lunge", "bicep_curl")

# Joint angles in degrees (world frame; limbs: 0 = straight down, + = forward; torso: 0 = upright):
# torso, r_upper_arm, r_forearm, l_upper_arm, l_forearm, r_thigh, r_shin, l_thigh, l_shin
_ANGLES = 9
TEMPLATES = {
    "squat": ((0, 90, 90, 90, 90, 0, 0, 0, 0), (35, 90, 90, 90, 90, 85, -15, 85, -15)),
    "push_up": ((90, 0, 0, 0, 0, -88, -88, -88, -88), (85, -70, 15, -70, 15, -88, -88, -88, -88)),
    "lunge": ((0, -30, 60, -30, 60, 0, 0, 0, 0), (0, -30, 60, -30, 60, 80, 0, -20, -80)),
    "bicep_curl": ((0, 0, 15, 0, 15, 5, 0, -5, 0), (0, 10, 160, 10, 160, 5, 0, -5, 0)),
}
# Form faults of an incorrect repetition: extra degrees per angle at the bottom of the movement.
FAULTS = {
    "squat": (30, 0, 0, 0, 0, -25, 0, -25, 0),  # leaning forward, not going deep
    "push_up": (-25, 20, 0, 20, 0, 20, 0, 20, 0),  # hips sagging, elbows flared
    "lunge": (25, 0, 0, 0, 0, -30, 25, 0, 0),  # leaning over the front knee
    "bicep_curl": (-15, 50, -40, 50, -40, 0, 0, 0, 0),  # swinging the elbows forward
}
# Segment lengths (torso = 1): torso, head, shoulder half-width, hip half-width, upper arm,
# forearm, thigh, shin.
_SEGMENTS = np.array([1.0, 0.35, 0.22, 0.14, 0.5, 0.45, 0.7, 0.65])


def _skeleton(angles: np.ndarray, seg: np.ndarray, tilt: np.ndarray) -> np.ndarray:
    """Forward kinematics: joint angles ``(..., 9)`` (radians) -> keypoints ``(..., 14, 2)``.

    ``seg`` holds the segment lengths ``(..., 8)`` and ``tilt`` the camera tilt ``(...)``; both
    broadcast against ``angles[..., 0]``.
    """
    a = angles + tilt[..., None]
    seg = np.broadcast_to(seg, a.shape[:-1] + (len(_SEGMENTS),))

    def ray(start, angle, length, up=False):
        sign = 1.0 if up else -1.0
        return start + length[..., None] * np.stack([np.sin(angle), sign * np.cos(angle)], -1)

    torso = a[..., 0]
    pelvis = np.zeros(a.shape[:-1] + (2,))
    neck = ray(pelvis, torso, seg[..., 0], up=True)
    nose = ray(neck, torso, seg[..., 1], up=True)
    across = np.stack([np.cos(torso), -np.sin(torso)], -1)  # perpendicular to the torso
    r_sh, l_sh = neck + seg[..., 2, None] * across, neck - seg[..., 2, None] * across
    r_hip, l_hip = pelvis + seg[..., 3, None] * across, pelvis - seg[..., 3, None] * across
    r_el = ray(r_sh, a[..., 1], seg[..., 4])
    l_el = ray(l_sh, a[..., 3], seg[..., 4])
    r_kn = ray(r_hip, a[..., 5], seg[..., 6])
    l_kn = ray(l_hip, a[..., 7], seg[..., 6])
    points = [
        nose, neck, r_sh, r_el, ray(r_el, a[..., 2], seg[..., 5]), l_sh, l_el, ray(l_el, a[..., 4], seg[..., 5]),
        r_hip, r_kn, ray(r_kn, a[..., 6], seg[..., 7]), l_hip, l_kn, ray(l_kn, a[..., 8], seg[..., 7]),
    ]
    return np.stack(points, -2)


def normalise(points: np.ndarray) -> np.ndarray:
    """Keypoints ``(..., 14, 2)`` -> 28 features: centred on mid-hip, scaled by neck-hip length.

    Args:
        points: Keypoints in any unit, ``KEYPOINTS`` order.
    """
    centre = (points[..., 8, :] + points[..., 11, :]) / 2
    scale = np.linalg.norm(points[..., 1, :] - centre, axis=-1)
    out = (points - centre[..., None, :]) / np.maximum(scale, 1e-6)[..., None, None]
    return out.reshape(points.shape[:-2] + (FEATURES,)).astype(np.float32)


def _people(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-person segment lengths, camera tilt (radians) and angle jitter (radians)."""
    seg = _SEGMENTS * rng.normal(1.0, 0.06, (n, len(_SEGMENTS)))
    tilt = np.radians(rng.normal(0.0, 4.0, n))
    jitter = np.radians(rng.normal(0.0, 7.0, (n, _ANGLES)))
    return seg, tilt, jitter


def _template(exercise: str) -> tuple[np.ndarray, np.ndarray]:
    start, end = TEMPLATES[exercise]
    return np.radians(np.array(start, float)), np.radians(np.array(end, float))


def _pose_batch(exercise: str, phase: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    start, end = _template(exercise)
    seg, tilt, jitter = _people(len(phase), rng)
    angles = start + phase[:, None] * (end - start) + jitter
    points = _skeleton(angles, seg, tilt)
    return normalise(points + rng.normal(0.0, noise, points.shape))


def poses(n: int, seed: int = 0, task: str = "multi", noise: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Labelled single-frame poses.

    Args:
        n: Number of poses.
        seed: Seed of the sample.
        task: ``"multi"``: which exercise (label 0..3, in ``EXERCISES`` order) from a pose near
            its start position (phase 0..0.3). An exercise name: is the pose in that exercise's
            start position (label 1: phase 0..0.1) or further on (label 0: phase 0.25..1)?
        noise: Keypoint noise, in torso lengths.

    Returns:
        ``(x, y)``: float32 ``(n, 28)`` features and int32 ``(n,)`` labels, classes balanced.
    """
    rng = np.random.default_rng(seed)
    if task == "multi":
        y = rng.permutation(np.arange(n) % len(EXERCISES)).astype(np.int32)
        x = np.empty((n, FEATURES), np.float32)
        for k, exercise in enumerate(EXERCISES):
            idx = np.flatnonzero(y == k)
            x[idx] = _pose_batch(exercise, rng.uniform(0.0, 0.3, len(idx)), rng, noise)
        return x, y
    if task not in TEMPLATES:
        raise ValueError(f"unknown pose task {task!r} (choose from: multi, {', '.join(EXERCISES)})")
    y = rng.permutation(np.arange(n) % 2).astype(np.int32)
    phase = np.where(y == 1, rng.uniform(0.0, 0.1, n), rng.uniform(0.25, 1.0, n))
    return _pose_batch(task, phase, rng, noise), y


def keypoint_sequences(
    n: int,
    seed: int = 0,
    exercise: str = "squat",
    min_frames: int = 24,
    max_frames: int = 48,
    noise: float = 0.03,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Repetitions of an exercise as keypoint sequences, labelled correct (1) or incorrect (0).

    A repetition goes start -> end -> start over 24-48 frames with an uneven tempo. A correct one
    reaches the full range with good form. An incorrect one either stops short (40-70 % of the
    range) or shows the exercise's form fault (``FAULTS``) growing towards the bottom.

    Args:
        n: Number of sequences (labels balanced).
        seed: Seed of the sample.
        exercise: One of ``EXERCISES``.
        min_frames: Shortest repetition.
        max_frames: Longest repetition, and the padded length.
        noise: Keypoint noise per frame, in torso lengths.

    Returns:
        ``(x, y, frames)``: float32 ``(n, max_frames, 28)`` zero-padded after each repetition
        (no real frame is all zeros, so ``Masking(0.0)`` finds the end), int32 labels, and
        each sequence's frame count.
    """
    rng = np.random.default_rng(seed)
    start, end = _template(exercise)
    fault = np.radians(np.array(FAULTS[exercise], float))
    y = rng.permutation(np.arange(n) % 2).astype(np.int32)
    frames = rng.integers(min_frames, max_frames + 1, n)
    seg, tilt, jitter = _people(n, rng)
    partial = (y == 0) & (rng.random(n) < 0.5)
    reach = np.where(partial, rng.uniform(0.4, 0.7, n), rng.uniform(0.9, 1.05, n))
    faulty = np.where((y == 0) & ~partial, rng.uniform(0.6, 1.0, n), 0.0)
    # time in [0, 1] per frame; frames past the end are masked out below
    t = np.arange(max_frames)[None, :] / (frames[:, None] - 1)
    warp = t + rng.uniform(-0.08, 0.08, n)[:, None] * np.sin(np.pi * t)  # uneven tempo
    phase = np.sin(np.pi * np.clip(warp, 0.0, 1.0)) ** 2  # 0 -> 1 -> 0
    angles = (
        start
        + (reach[:, None] * phase)[..., None] * (end - start)
        + (faulty[:, None] * phase)[..., None] * fault
        + jitter[:, None, :]
        + np.radians(rng.normal(0.0, 2.0, (n, max_frames, _ANGLES)))
    )
    points = _skeleton(angles, seg[:, None, :], np.broadcast_to(tilt[:, None], (n, max_frames)))
    x = normalise(points + rng.normal(0.0, noise, points.shape))
    x[np.arange(max_frames)[None, :] >= frames[:, None]] = 0.0
    return x, y, frames
