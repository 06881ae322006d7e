"""The library's recommended recipe per dataset: architecture, rule, options and schedule.

They were chosen on a validation split carved from the training data (benchmarks/accuracy.py),
never on the test split. ``graia train`` uses them as its defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graia import layers
from graia.model import Sequential


@dataclass(frozen=True)
class Recipe:
    """How to train on one dataset."""

    hidden: tuple[int, ...]
    rule: str
    rule_options: dict[str, int] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 32

    def build(self, input_shape: tuple[int, ...], classes: int, seed: int) -> Sequential:
        """A compiled model for this recipe."""
        model = Sequential(
            [layers.Input(input_shape)]
            + [layers.Dense(units) for units in self.hidden]
            + [layers.Dense(classes)],
            seed=seed,
        )
        model.compile(self.rule, **self.rule_options)
        return model


RECIPES: dict[str, Recipe] = {
    "digits": Recipe(hidden=(256,), rule="dfa", rule_options={"step": 1024}, epochs=20, batch_size=32),
    "fashion-mnist": Recipe(
        hidden=(1000,), rule="dfa", rule_options={"step": 256}, epochs=10, batch_size=64
    ),
    "mnist": Recipe(hidden=(1000,), rule="dfa", rule_options={"step": 256}, epochs=10, batch_size=64),
}
