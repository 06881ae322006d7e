"""Wrote tests/data/pre_revision2.graia and its predictions with commit a5fbd01 (arithmetic
revision 1), for tests/test_revision.py: run with that commit's graia, `python gen_pre_revision2.py DIR`."""

import sys

import numpy as np

import graia

out = sys.argv[1]
rng = np.random.default_rng(31)
x = rng.integers(0, 256, (256, 8, 8), dtype=np.uint8)
q = x.reshape(256, 2, 4, 2, 4).mean(axis=(2, 4)).reshape(256, 4)
y = q.argmax(axis=1)
model = graia.Sequential(
    [
        graia.layers.Input((8, 8)),
        graia.layers.Conv2D(4, 3, kmax=6),
        graia.layers.MaxPooling2D(2),
        graia.layers.Flatten(),
        graia.layers.Dense(32, kmax=7),
        graia.layers.Dense(4, kmax=8),
    ],
    seed=31,
    name="pre_revision2",
)
model.compile("dfa")
model.fit(x, y, epochs=4, batch_size=16, verbose=0)
model.save(out + "/pre_revision2.graia")
xt = np.random.default_rng(7).integers(0, 256, (16, 8, 8), dtype=np.uint8)
np.save(out + "/pre_revision2_predict.npy", model.predict(xt))
print(model.predict(xt).dtype, model.predict(xt).shape, model.predict_classes(xt))
