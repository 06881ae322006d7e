"""The original Graia notebook's flow with the Keras-like API, on the 8x8 digits.

Load data -> build -> fit (with a validation split) -> learning curves -> receptive fields ->
one sample's activations and the output choice -> evaluate -> save and load -> same predictions.

Run it as a script::

    python examples/notebook_flow.py [OUTPUT_DIR [EPOCHS]]

(figures are written as PNG files into OUTPUT_DIR, default ``./graia-notebook``), or cell by cell
(the ``# %%`` markers) in Jupyter/VS Code, where each figure also displays inline. It takes a few
seconds on any backend.
"""

# %% Imports and settings
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import graia

OUTPUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("graia-notebook")
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
OUTPUT.mkdir(parents=True, exist_ok=True)
print(f"graia {graia.__version__} on the {graia.backend.name()} backend")

# %% Data: uint8 images (n, 8, 8) and integer labels, like keras.datasets
(x_train, y_train), (x_test, y_test) = graia.datasets.digits.load_data()
print(f"train {x_train.shape} {x_train.dtype}, test {x_test.shape}")

# %% Build and compile: power-of-two weights, learning with a local rule (DFA), no backprop
model = graia.Sequential(
    [
        graia.layers.Input((8, 8)),
        graia.layers.Dense(64),  # weights 0 or ±2^-k with k <= 8
        graia.layers.Dense(10),
    ],
    seed=0,
    name="digits",
)
model.compile("dfa", step=1024)
model.summary()

# %% Train, keeping the last 10 % of the training data for validation
history = model.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=32, validation_split=0.1, verbose=1
)
print({k: round(v[-1], 4) for k, v in history.history.items()})

# %% Learning curves: accuracy and loss, training and validation
graia.plot.history(history, OUTPUT / "learning_curve.png")

# %% Receptive fields: each hidden unit's incoming weights as an 8x8 image
graia.plot.weights(model, layer=0, path=OUTPUT / "weights.png")

# %% One test sample flowing through the network, and the class it chooses
sample = x_test[0]
acts = model.activations(sample)  # [input, hidden layer, output layer], uint8 each
chosen = int(np.argmax(acts[-1]))
graia.plot.activations(model, sample, path=OUTPUT / "activations.png")
print(f"test sample 0: label {y_test[0]}, chosen class {chosen}, outputs {acts[-1].tolist()}")

# %% Evaluate on the test split
loss, accuracy = model.evaluate(x_test, y_test)
print(f"test accuracy {accuracy:.4f}, loss {loss:.4f}")

# %% Save, load (on whichever backend is in use) and check the predictions are identical
model.save(OUTPUT / "digits.graia")
restored = graia.load_model(OUTPUT / "digits.graia")
same = bool(np.array_equal(restored.predict(x_test), model.predict(x_test)))
print(f"saved to {OUTPUT / 'digits.graia'}; the loaded model predicts identically: {same}")
