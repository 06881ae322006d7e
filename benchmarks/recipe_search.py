"""Recipe search: train candidate architectures and rules on a validation split carved from the
training data, printing validation and training accuracy every few epochs (one JSON line each;
a candidate with ``flip`` is also scored with flips averaged, docs/arithmetic.md §4.2).

This is how the recipes in graia/recipes.py were chosen (docs/journal/ lists the candidates and
their scores). ``--split test`` trains on the whole training split and evaluates on the test split,
for the chosen candidate only. ``--split folds`` cross-validates instead, for small datasets whose
validation split is too small to separate candidates (digits): the training split is permuted
(seeded) and cut into ``--folds`` folds, each evaluated after training on the others, and a
summary line per seed counts the rows classified right over all folds.

An architecture is written as dash-separated parts:

- ``c64k3p2s8``: ``Conv2D(64, 3, padding="same", shift=8)`` then ``MaxPooling2D(2)``
  (``p2a``: ``AveragePooling2D(2)``; no ``p``: no pooling; no ``s``: the default shift;
  ``m10`` at the end: ``kmax=10``, else the default);
- ``h2000s11``: ``Dense(2000, shift=11)`` (``Flatten`` goes in before the first Dense after a
  convolution; ``m`` as for a convolution); the output layer is added;
- at the start only, training-time augmentation (docs/convolution.md): ``flip``:
  ``RandomFlip("horizontal")``; ``shift0.1``: ``RandomTranslation(0.1, 0.1)`` (shifts of up to
  ``round(0.1 * size)`` pixels each way, zeros shifted in).

A candidate is ``ARCH:RULE:EPOCHS:BATCH:OPTIONS`` with OPTIONS a JSON object of rule options; the
rule's ``step`` decays linearly to 1 over the epochs, as in the recipes. The seed alone moves
Fashion-MNIST's validation accuracy by a few tenths (docs/results.md), so compare candidates
over several (``--seeds 0,1,2``: a summary line with their mean and standard deviation follows
each candidate's runs). Usage::

    python benchmarks/recipe_search.py fashion-mnist \\
        'c64k3p2s8-h4000s12-h1000s10:local_heads:40:64:{"step": 256, "dropout": 77, "head_shift": 8}' \\
        'flip-c64k3p2s8-h4000s12-h1000s10:local_heads:40:64:{"step": 256, "dropout": 77, "head_shift": 8}'
    python benchmarks/recipe_search.py digits --split folds --every 60 \\
        'c64k3p2-h512:local_heads:60:32:{"step": 256, "dropout": 77, "head_step": 16384}'
"""

from __future__ import annotations

import argparse
import json
import re
import time

import numpy as np

import graia
from graia import layers as L
from graia.recipes import RECIPE_SHIFT, Recipe

#: Validation rows carved from the end of the training split (at most a fifth of it).
VALIDATION_ROWS = 10000
_CONV = re.compile(r"c(\d+)k(\d+)(?:p(\d+)(a?))?(?:s(\d+))?(?:m(\d+))?")
_DENSE = re.compile(r"h(\d+)(?:s(\d+))?(?:m(\d+))?")
_SHIFT = re.compile(r"shift(\d*\.?\d+)")


def _weights(shift: str | None, kmax: str | None) -> dict[str, int]:
    """A weighted layer's ``shift`` and ``kmax`` arguments, those the architecture names; the
    shift the searches ran with (``RECIPE_SHIFT``) where it names none."""
    return {"shift": RECIPE_SHIFT} | {k: int(v) for k, v in (("shift", shift), ("kmax", kmax)) if v}


def build_layers(arch: str, input_shape: tuple[int, ...], classes: int) -> list[L.Layer]:
    """The layer stack an architecture string describes (see the module docs)."""
    stack: list[L.Layer] = [L.Input(input_shape)]
    image = False
    for part in arch.split("-"):
        translation = _SHIFT.fullmatch(part)
        if (part == "flip" or translation) and not all(la.augmentation for la in stack[1:]):
            raise SystemExit(f"recipe_search: {part!r} must come before every other part")
        if part == "flip":
            stack.append(L.RandomFlip("horizontal"))
        elif translation:
            factor = float(translation[1])
            stack.append(L.RandomTranslation(factor, factor))
        elif conv := _CONV.fullmatch(part):
            filters, kernel, pool, average, shift, kmax = conv.groups()
            stack.append(
                L.Conv2D(int(filters), int(kernel), padding="same", **_weights(shift, kmax))
            )
            if pool:
                stack.append((L.AveragePooling2D if average else L.MaxPooling2D)(int(pool)))
            image = True
        elif dense := _DENSE.fullmatch(part):
            if image:
                stack.append(L.Flatten())
                image = False
            units, shift, kmax = dense.groups()
            stack.append(L.Dense(int(units), **_weights(shift, kmax)))
        else:
            raise SystemExit(f"recipe_search: cannot read the architecture part {part!r}")
    if image:
        stack.append(L.Flatten())
    return stack + [L.Dense(classes, shift=RECIPE_SHIFT)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=graia.datasets.NAMES)
    parser.add_argument("candidates", nargs="+", help="ARCH:RULE:EPOCHS:BATCH:OPTIONS")
    parser.add_argument("--split", choices=("validation", "test", "folds"), default="validation")
    parser.add_argument("--folds", type=int, default=5, help="folds of --split folds (default 5)")
    parser.add_argument("--every", type=int, default=5, help="evaluate every N epochs")
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[0],
        help="comma-separated model seeds, each candidate trained once per seed (default 0)",
    )
    args = parser.parse_args()

    splits = evaluation_splits(args, *graia.datasets.load_data(args.dataset))
    rows = sum(len(data[3]) for _, data in splits)
    for candidate in args.candidates:
        finals = []
        for seed in args.seeds:
            right = sum(run(args, candidate, seed, split, data) for split, data in splits)
            finals.append(round(right / rows, 4))
            if args.split == "folds":
                print(json.dumps({"candidate": candidate, "seed": seed, "folds": args.folds,
                                  "right": right, "of": rows}), flush=True)  # fmt: skip
        if len(finals) > 1:
            mean = sum(finals) / len(finals)
            spread = (sum((a - mean) ** 2 for a in finals) / (len(finals) - 1)) ** 0.5
            summary = {"candidate": candidate, "seeds": args.seeds, "accuracies": finals,
                       "mean": round(mean, 4), "std": round(spread, 4)}  # fmt: skip
            print(json.dumps(summary), flush=True)


def evaluation_splits(
    args: argparse.Namespace, train: tuple, test: tuple
) -> list[tuple[str, tuple]]:
    """The ``(name, (x, y, x_eval, y_eval))`` pairs ``--split`` asks for: one, or one per fold."""
    (x, y), (x_test, y_test) = train, test
    if args.split == "test":
        return [("test", (x, y, x_test, y_test))]
    if args.split == "validation":
        cut = len(x) - min(VALIDATION_ROWS, len(x) // 5)
        return [("validation", (x[:cut], y[:cut], x[cut:], y[cut:]))]
    if not 2 <= args.folds <= len(x):
        raise SystemExit(f"recipe_search: --folds must be from 2 to {len(x)}, got {args.folds}")
    order = np.random.default_rng(0).permutation(len(x))
    splits = []
    for k in range(args.folds):
        held = order[k :: args.folds]
        kept = np.setdiff1d(order, held)  # in the training split's order
        splits.append((f"fold {k + 1}/{args.folds}", (x[kept], y[kept], x[held], y[held])))
    return splits


def run(args: argparse.Namespace, candidate: str, seed: int, split: str, data: tuple) -> int:
    """Train one candidate with one seed on one split, printing a JSON line every ``--every``
    epochs and after the last; returns how many evaluation rows the last evaluation got right."""
    x, y, x_eval, y_eval = data
    arch, rule, epochs, batch, options = candidate.split(":", 4)
    epochs, batch, options = int(epochs), int(batch), json.loads(options)
    model = graia.Sequential(build_layers(arch, x.shape[1:], int(y.max()) + 1), seed=seed)
    model.compile(rule, **{"step_decay": False, **options})
    # The recipes' schedule: step (and head step, §7.4) decayed linearly over the epochs.
    recipe = Recipe(hidden=(), rule=rule, rule_options=options, decay_step=True)
    schedule = recipe.callbacks(epochs)
    seconds = 0.0  # training time only, evaluations left out
    for epoch in range(epochs):
        started = time.perf_counter()
        model.fit(x, y, epochs=epoch + 1, initial_epoch=epoch, batch_size=batch,
                  verbose=0, callbacks=schedule)  # fmt: skip
        seconds += time.perf_counter() - started
        if (epoch + 1) % args.every and epoch + 1 < epochs:
            continue
        right = int((model.predict_classes(x_eval) == y_eval).sum())
        accuracy = round(right / len(y_eval), 4)
        record = {
            "dataset": args.dataset, "split": split, "arch": arch, "rule": rule,
            "options": options, "batch": batch, "seed": seed, "epoch": epoch + 1,
            "accuracy": accuracy,
            **_flips_averaged(model, x_eval, y_eval),
            # Training accuracy without dropout, on at most 10,000 training rows.
            "train_accuracy": round(model.evaluate(x[:10000], y[:10000])[1], 4),
            "seconds": round(seconds, 1), "backend": graia.backend.name(),
        }  # fmt: skip
        print(json.dumps(record), flush=True)
    return right


def _flips_averaged(model: graia.Sequential, x_eval, y_eval) -> dict[str, float]:
    """A model that trains on mirror images is also scored on them (arithmetic.md §4.2)."""
    if not any(isinstance(layer, L.RandomFlip) for layer in model.layers):
        return {}
    right = (model.predict_classes(x_eval, average_flips=True) == y_eval).sum()
    return {"accuracy_average_flips": round(int(right) / len(y_eval), 4)}


if __name__ == "__main__":
    main()
