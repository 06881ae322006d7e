"""Train the web demo's pretrained models and write them into graia/demo/models/.

Each model follows the library's recipe for its dataset (``graia.recipes``: rule, options, step
schedule, batch size) with a narrower hidden layer and fewer epochs, so that the files stay small
enough to ship in the package and a prediction takes a few milliseconds on a 2-core CPU::

    python scripts/train-demo-models.py [--epochs-scale 1.0]

Deterministic: the same seed gives the same bits on every backend.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import graia
from graia.recipes import DENSE_RECIPES as RECIPES
from graia.recipes import RECIPE_SHIFT

MODELS_DIR = Path(__file__).resolve().parent.parent / "graia" / "demo" / "models"

#: dataset -> (hidden widths, epochs): the recipe's rule and schedule, a smaller network.
DEMO_MODELS: dict[str, tuple[tuple[int, ...], int]] = {
    "digits": ((256,), 60),
    "fashion-mnist": ((256,), 15),
}


def train(dataset: str, hidden: tuple[int, ...], epochs: int, out_dir: Path) -> Path:
    """Train one demo model by its dataset's recipe and save it as ``<dataset>.graia``."""
    recipe = RECIPES[dataset]
    (x_train, y_train), (x_test, y_test) = graia.datasets.load_data(dataset)
    model = graia.Sequential(
        [graia.layers.Input(x_train.shape[1:])]
        + [
            graia.layers.Dense(
                units, shift=recipe.hidden_shift or RECIPE_SHIFT, use_bias=recipe.bias
            )
            for units in hidden
        ]
        + [graia.layers.Dense(10, shift=RECIPE_SHIFT, use_bias=recipe.bias)],
        seed=0,
        name=f"{dataset}-demo",
    )
    model.compile(recipe.rule, step_decay=False, **recipe.rule_options)
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        epochs=epochs,
        batch_size=recipe.batch_size,
        callbacks=recipe.callbacks(epochs),
        verbose=0,
    )
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test)
    path = out_dir / f"{dataset}.graia"
    model.save(path)
    print(
        f"{dataset}: {model.sizes} {recipe.rule} {epochs} epochs on {graia.backend.name()} "
        f"in {seconds:.0f} s, test accuracy {accuracy:.4f}, {path.stat().st_size} bytes -> {path}"
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=MODELS_DIR, help="output directory")
    parser.add_argument("--dataset", choices=sorted(DEMO_MODELS), action="append")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    for dataset in args.dataset or DEMO_MODELS:
        hidden, epochs = DEMO_MODELS[dataset]
        train(dataset, hidden, epochs, args.output)


if __name__ == "__main__":
    main()
