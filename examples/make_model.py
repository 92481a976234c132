"""Makes a tiny saved Keras model and data to benchmark with ``bench run model``.

    python examples/make_model.py            # writes my_model.keras, x.npy, y.npy here
    python examples/make_model.py some/dir   # ... or there

The model classifies 20-token sequences into 3 classes (Embedding -> LSTM -> Dense), compiled
with a loss, so ``bench run model`` measures its predict modes and its training throughput.
"""

import sys
from pathlib import Path

import keras
import numpy as np

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out.mkdir(parents=True, exist_ok=True)
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input(shape=(20,), dtype="int32"),
    keras.layers.Embedding(input_dim=1000, output_dim=16),
    keras.layers.LSTM(32),
    keras.layers.Dense(3, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
rng = np.random.default_rng(0)
x = rng.integers(0, 1000, size=(2000, 20)).astype("int32")
y = (x[:, 0] % 3).astype("int32")  # a learnable rule: the class is the first token mod 3
model.fit(x, y, epochs=1, batch_size=64, verbose=0)
model.save(out / "my_model.keras")
np.save(out / "x.npy", x)
np.save(out / "y.npy", y)
print(f"wrote {out / 'my_model.keras'} ({model.count_params():,} parameters), {out / 'x.npy'}, {out / 'y.npy'}")
