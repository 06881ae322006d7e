"""The library's recommended recipe per dataset: architecture, rule, options and schedule.

They were chosen on a validation split carved from the training data (benchmarks/accuracy.py),
never on the test split. ``graia train`` uses them as its defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from graia import layers, rules
from graia.callbacks import StepScheduler, linear_step
from graia.model import Sequential

#: The activation shift the recipes were found with wherever they name none: ``kmax`` (8), the
#: layers' default before shifts were chosen from the data (docs/arithmetic.md §3.3), pinned so
#: that every recipe keeps its bits.
RECIPE_SHIFT = 8


@dataclass(frozen=True)
class ConvBlock:
    """A ``Conv2D`` (``"same"`` padding) followed by ``MaxPooling2D(pool)`` (none if ``pool``
    is ``None``)."""

    filters: int
    kernel: int = 3
    pool: int | None = 2
    shift: int | None = None

    def layers(self) -> list[layers.Layer]:
        shift = RECIPE_SHIFT if self.shift is None else self.shift
        conv = layers.Conv2D(self.filters, self.kernel, padding="same", shift=shift)
        return [conv] if self.pool is None else [conv, layers.MaxPooling2D(self.pool)]

    def describe(self) -> str:
        """The block in a few words, e.g. ``conv64x3/pool2``."""
        pooling = "" if self.pool is None else f"/pool{self.pool}"
        return f"conv{self.filters}x{self.kernel}{pooling}"


@dataclass(frozen=True)
class Recipe:
    """How to train on one dataset: convolution blocks (if any), then Dense hidden layers."""

    hidden: tuple[int, ...]
    rule: str
    rule_options: dict[str, int] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 32
    #: The hidden layers' activation shift: one for all, or one per hidden layer (``None``:
    #: :data:`RECIPE_SHIFT`).
    hidden_shift: int | tuple[int, ...] | None = None
    #: Decay the rule's ``step`` (and a ``head_step``) linearly to 1 over the epochs.
    decay_step: bool = False
    #: Convolution blocks before the Dense layers (on images of one channel).
    conv: tuple[ConvBlock, ...] = ()
    #: Training-time augmentation (docs/convolution.md): ``RandomFlip("horizontal")`` first.
    flip: bool = False
    #: Then ``RandomTranslation(translate, translate)`` when not 0: shifts of up to
    #: ``round(translate * size)`` pixels each way.
    translate: float = 0.0
    #: Whether the Dense layers have a bias (docs/arithmetic.md §3). The recipes were searched
    #: before layers had one, and their figures (docs/results.md) are of layers without.
    bias: bool = False

    def describe(self) -> str:
        """The architecture in a few words, e.g. ``conv64x3/pool2 - 2000 - classes``."""
        parts = ["flip"] if self.flip else []
        parts += [f"translate{self.translate:g}"] if self.translate else []
        parts += [block.describe() for block in self.conv]
        return " - ".join(parts + [str(u) for u in self.hidden] + ["classes"])

    def build(
        self,
        input_shape: tuple[int, ...],
        classes: int,
        seed: int,
        rule: str | None = None,
        name: str | None = None,
    ) -> Sequential:
        """A compiled model for this recipe (``rule`` overrides the recipe's, with its defaults)."""
        stack: list[layers.Layer] = [layers.Input(input_shape)]
        if self.flip:
            stack.append(layers.RandomFlip("horizontal"))
        if self.translate:
            stack.append(layers.RandomTranslation(self.translate, self.translate))
        for block in self.conv:
            stack += block.layers()
        if self.conv:
            stack.append(layers.Flatten())
        stack += [
            layers.Dense(units, shift=RECIPE_SHIFT if shift is None else shift, use_bias=self.bias)
            for units, shift in self.hidden_layers()
        ]
        output = layers.Dense(classes, shift=RECIPE_SHIFT, use_bias=self.bias)
        model = Sequential(stack + [output], seed=seed, name=name)
        # The recipes schedule their step by callbacks (``callbacks``), not ``step_decay``.
        if rule is None or rule == self.rule:
            model.compile(self.rule, step_decay=False, **self.rule_options)
        else:
            model.compile(rule, step_decay=False)
        return model

    def hidden_layers(self) -> list[tuple[int, int | None]]:
        """Each hidden Dense layer's ``(units, shift)``."""
        shifts = self.hidden_shift
        if not isinstance(shifts, tuple):
            shifts = (shifts,) * len(self.hidden)
        if len(shifts) != len(self.hidden):
            raise ValueError(f"{len(shifts)} hidden shifts for {len(self.hidden)} hidden layers")
        return list(zip(self.hidden, shifts))

    def callbacks(self, epochs: int, rule: str | None = None) -> list:
        """The recipe's schedule as ``fit`` callbacks, for its rule or another ``rule`` given
        the recipe's options it has."""
        if not self.decay_step:
            return []
        schedules = [
            StepScheduler(
                linear_step(
                    self.rule_options.get(
                        "step", rules.REGISTRY[rule or self.rule].options["step"][0]
                    ),
                    epochs,
                )
            )
        ]
        head_step = self.rule_options.get("head_step")
        if head_step and "head_step" in rules.REGISTRY[rule or self.rule].options:
            # Learned local heads (§7.4) anneal with the rest.
            schedules.append(StepScheduler(linear_step(head_step, epochs), option="head_step"))
        return schedules


# Every convolutional recipe's ``target_on``: the "on" target for the class, below saturation
# (docs/journal/2026-11-26-fashion-mnist-conv-searches-1-to-7.md, seventh search).
_CONV_TARGET_ON = 176

_DENSE_28X28 = Recipe(
    hidden=(4000,),
    rule="dfa",
    rule_options={"step": 128, "dropout": 77},
    epochs=60,
    batch_size=64,
    hidden_shift=9,
    decay_step=True,
)

# One convolution block and two Dense layers trained by learned local heads, without
# augmentation: MNIST's recipe, and the rule options Fashion-MNIST's starts from. Chosen on
# Fashion-MNIST's validation split (docs/journal/2026-11-26-fashion-mnist-conv-searches-1-to-7.md).
_CONV_28X28 = Recipe(
    conv=(ConvBlock(64, kernel=3, pool=2, shift=8),),
    hidden=(4000, 1000),
    rule="local_heads",
    rule_options={
        "step": 256,
        "dropout": 77,
        "head_shift": 8,
        "head_step": 16384,
        "target_on": _CONV_TARGET_ON,
    },
    epochs=40,
    batch_size=64,
    hidden_shift=(12, 10),
    decay_step=True,
)

# Fashion-MNIST's: two convolution blocks and one hidden layer, trained on images flipped
# left-right half the time and shifted by up to one pixel each way, without dropout, in batches
# of 128 for 140 epochs: about 270 s on an H100 (docs/convolution.md; how it was chosen:
# docs/journal/2026-11-27-fashion-mnist-conv-searches-8-to-13.md).
_CONV_FASHION = replace(
    _CONV_28X28,
    conv=(ConvBlock(64, kernel=3, pool=2, shift=8), ConvBlock(128, kernel=3, pool=2, shift=10)),
    hidden=(4000,),
    hidden_shift=12,
    flip=True,
    translate=0.04,
    rule_options={**_CONV_28X28.rule_options, "dropout": 0},
    epochs=140,
    batch_size=128,
)

#: The Dense-only recipes (``seed_hebbian`` needs them).
DENSE_RECIPES: dict[str, Recipe] = {
    "digits": Recipe(
        hidden=(512, 512),
        rule="dfa",
        rule_options={"step": 256, "dropout": 77},
        epochs=60,
        batch_size=32,
        decay_step=True,
    ),
    "fashion-mnist": _DENSE_28X28,
    "mnist": _DENSE_28X28,
    # Fashion-MNIST's recipe, its hidden shift one more for 3072 inputs instead of 784.
    "cifar10": replace(_DENSE_28X28, hidden_shift=10),
}

#: The convolutional recipes.
CONV_RECIPES: dict[str, Recipe] = {
    # The Dense recipe's batch, two convolutions (the second one pooled) before a single hidden
    # layer, trained by learned local heads towards the lower "on" target on images shifted by up
    # to one pixel, without dropout, for 90 epochs; chosen by 5-fold cross-validation
    # (docs/journal/2026-11-27-digits-conv-searches.md).
    "digits": replace(
        DENSE_RECIPES["digits"],
        conv=(ConvBlock(64, kernel=3, pool=None), ConvBlock(64, kernel=3, pool=2)),
        hidden=(512,),
        rule="local_heads",
        rule_options={
            **DENSE_RECIPES["digits"].rule_options,
            "dropout": 0,
            "head_step": 16384,
            "target_on": _CONV_TARGET_ON,
        },
        epochs=90,
        translate=0.1,
    ),
    # MNIST uses Fashion-MNIST's one-block recipe from before its augmentation (no MNIST data
    # here): the same image size, no mirror images, and without augmentation one block beat two
    # on Fashion-MNIST (docs/journal/2026-11-26-fashion-mnist-conv-searches-1-to-7.md).
    "fashion-mnist": _CONV_FASHION,
    "mnist": _CONV_28X28,
    # Not yet measured on real data (none is reachable where Graia is developed): Fashion-MNIST's
    # recipe, its first convolution's shift one more for three colour channels. Its flip and
    # shift of up to one pixel are CIFAR-10's usual augmentation.
    "cifar10": replace(
        _CONV_FASHION,
        conv=(replace(_CONV_FASHION.conv[0], shift=9), *_CONV_FASHION.conv[1:]),
    ),
}

#: The default recipe per dataset: the convolutional one on Fashion-MNIST, and MNIST and CIFAR-10
#: after it (docs/results.md); the Dense one on digits, whose model is exported to C/ONNX (Dense
#: only so far) and trained in seconds, though cross-validation prefers convolution there by
#: about 1.6 points (docs/convolution.md#measured). ``--architecture dense`` trains many times
#: faster on CPUs.
RECIPES: dict[str, Recipe] = {
    **DENSE_RECIPES,
    **{k: CONV_RECIPES[k] for k in ("fashion-mnist", "mnist", "cifar10")},
}

#: The architectures ``graia train --architecture`` offers.
ARCHITECTURES = {"conv": CONV_RECIPES, "dense": DENSE_RECIPES}


def recipe_for(dataset: str, rule: str | None = None, architecture: str | None = None) -> Recipe:
    """The recipe ``graia train`` uses: ``architecture`` (``"conv"``/``"dense"``) or the
    dataset's default, and the Dense one for a rule that cannot train convolutions."""
    recipe = ARCHITECTURES[architecture][dataset] if architecture else RECIPES[dataset]
    if recipe.conv and rule is not None and not rules.REGISTRY[rule].supports_conv:
        return DENSE_RECIPES[dataset]
    return recipe
