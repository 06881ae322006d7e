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
    #: The hidden layers' activation shift (``None``: the Dense default, ``kmax``).
    hidden_shift: int | None = None
    #: Decay the rule's ``step`` linearly to 1 over the epochs.
    decay_step: bool = False

    def build(
        self,
        input_shape: tuple[int, ...],
        classes: int,
        seed: int,
        rule: str | None = None,
        name: str | None = None,
    ) -> Sequential:
        """A compiled model for this recipe (``rule`` overrides the recipe's, with its defaults)."""
        model = Sequential(
            [layers.Input(input_shape)]
            + [layers.Dense(units, shift=self.hidden_shift) for units in self.hidden]
            + [layers.Dense(classes)],
            seed=seed,
            name=name,
        )
        if rule is None or rule == self.rule:
            model.compile(self.rule, **self.rule_options)
        else:
            model.compile(rule)
        return model

    def callbacks(self, epochs: int) -> list:
        """The recipe's schedule as ``fit`` callbacks."""
        from graia.callbacks import StepScheduler, linear_step

        if not self.decay_step:
            return []
        return [StepScheduler(linear_step(self.rule_options.get("step", 256), epochs))]


_IMAGES_28X28 = Recipe(
    hidden=(4000,),
    rule="dfa",
    rule_options={"step": 128, "dropout": 77},
    epochs=60,
    batch_size=64,
    hidden_shift=9,
    decay_step=True,
)

RECIPES: dict[str, Recipe] = {
    "digits": Recipe(
        hidden=(512, 512),
        rule="dfa",
        rule_options={"step": 256, "dropout": 77},
        epochs=60,
        batch_size=32,
        decay_step=True,
    ),
    # Chosen on Fashion-MNIST (validation split); MNIST uses the same recipe untuned.
    "fashion-mnist": _IMAGES_28X28,
    "mnist": _IMAGES_28X28,
}
