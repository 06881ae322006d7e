"""Learning rules: each one a small class holding its options and documentation.

A rule is registered by name; its arithmetic lives in docs/arithmetic.md §7, in the Numba backend
and in ``futhark/rules/<name>.fut``. The cross-backend tests enumerate :data:`REGISTRY`, so a new
rule is covered without editing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from graia.errors import GraiaValueError
from graia.spec import BETA_SHIFT_MAX, I32_MAX

REGISTRY: dict[str, type[Rule]] = {}


class Rule:
    """Base class. Subclasses set ``name``, ``rule_id``, ``options`` (name -> (default, lo, hi)).

    The option named by ``per_layer`` (the last option) also takes a sequence of ints, one per
    hidden layer; its values then end the parameter vector in layer order.
    """

    name: ClassVar[str]
    rule_id: ClassVar[int]
    options: ClassVar[dict[str, tuple[int, int, int]]]
    #: Whether the rule learns one sample at a time (ignores ``batch_size``).
    online: ClassVar[bool] = False
    #: Whether the rule can train ``Conv2D`` layers (docs/arithmetic.md §7.5).
    supports_conv: ClassVar[bool] = True
    #: The option that may also be given one value per hidden layer, if any.
    per_layer: ClassVar[str | None] = None
    #: The options the backends read as 64-bit integers (the others as 32-bit).
    wide_options: ClassVar[tuple[str, ...]] = ()
    #: The update the backends run for the rule (the Numba epoch and ``futhark/rules/<kernel>.fut``
    #: of that name); rules that share one differ in their options and flags only.
    kernel: ClassVar[str]
    #: Whether every hidden layer learns from the error of its own local head (§7.4) rather than
    #: from the output error.
    local_heads: ClassVar[bool] = False
    #: Whether ``fit(distribute=...)`` runs the rule: its batches split into sums (§7.6) and its
    #: hidden layers into blocks of units (§7.7).
    distributable: ClassVar[bool] = False
    #: ``step_decay``'s default: whether ``fit`` lowers ``step`` linearly over its epochs.
    step_decay_default: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.per_layer is not None and list(cls.options)[-1] != cls.per_layer:
            raise TypeError(f"{cls.__name__}: only the last option can be per layer")
        REGISTRY[cls.name] = cls

    def __init__(self, step_decay: bool | None = None, **options: int | Sequence[int]) -> None:
        if step_decay is None:
            step_decay = self.step_decay_default
        if not isinstance(step_decay, bool) or (step_decay and "step" not in self.options):
            raise GraiaValueError(
                f"rule {self.name!r}: step_decay must be "
                + ("True or False" if "step" in self.options else "False (the rule has no step)")
                + f", got {step_decay!r:.80}"
            )
        #: Whether ``fit(epochs=E)`` lowers ``step`` linearly, epoch ``e`` using
        #: ``step * (E - e) // E`` (a host-side schedule, docs/arithmetic.md §7.2; a
        #: ``StepScheduler`` of ``step`` replaces it). Not a parameter of the arithmetic.
        self.step_decay = step_decay
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise GraiaValueError(
                f"rule {self.name!r}: unknown option(s) {unknown}; valid: {sorted(self.options)}"
            )
        self.values: dict[str, int | tuple[int, ...]] = {}
        for key, (default, lo, hi) in self.options.items():
            value = options.get(key, default)
            if key == self.per_layer and isinstance(value, (list, tuple)):
                if not value:
                    raise GraiaValueError(f"rule {self.name!r}: option {key} is an empty sequence")
                self.values[key] = tuple(self._checked(key, v, lo, hi) for v in value)
            else:
                self.values[key] = self._checked(key, value, lo, hi)

    def _checked(self, key: str, value: object, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            kind = "an int or a sequence of ints" if key == self.per_layer else "an int"
            raise GraiaValueError(
                f"rule {self.name!r}: option {key} must be {kind}, got {value!r:.80}"
            )
        if not lo <= int(value) <= hi:
            raise GraiaValueError(
                f"rule {self.name!r}: option {key}={value!r:.80} out of range [{lo}, {hi}]"
            )
        return int(value)

    def check_hidden_layers(self, units: Sequence[int]) -> None:
        """Refuse options that do not fit a model whose hidden weighted layers have ``units``
        output features each: a per-layer option with another number of values."""
        value = self.values.get(self.per_layer) if self.per_layer else None
        if isinstance(value, tuple) and len(value) != len(units):
            raise GraiaValueError(
                f"rule {self.name!r}: option {self.per_layer} has {len(value)} values for a model "
                f"with {len(units)} hidden weighted layer(s)"
            )

    def params(self) -> np.ndarray:
        """The rule's options as the i64 parameter vector backends receive."""
        flat: list[int] = []
        for key in self.options:
            value = self.values[key]
            flat.extend(value if isinstance(value, tuple) else (value,))
        return np.array(flat, np.int64)

    def get_config(self) -> dict:
        """JSON-friendly description, enough to rebuild the rule with :func:`get`."""
        return {
            "name": self.name,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.values.items()},
            "step_decay": self.step_decay,
        }

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.values.items())
        decay = ", step_decay=True" if self.step_decay else ""
        return f"{type(self).__name__}({opts}{decay})"


class DFA(Rule):
    """Direct feedback alignment with a sign-momentum (Lion-like) integer step (§7.2).

    Locality: a synapse uses its pre-synaptic activity, its post-synaptic unit's slope, and the
    output error broadcast through a fixed random ternary matrix regenerated from the hash.
    """

    name = "dfa"
    rule_id = 0
    # Step 2048 decaying over the fit: chosen on 13 datasets' validation splits
    # (benchmarks/defaults_search.py, docs/journal/2026-12-07-defaults.md).
    step_decay_default = True
    options: ClassVar[dict[str, tuple[int, int, int]]] = {
        "step": (2048, 1, 1 << 16),
        # 16 bits of one random word each (§7.2, arithmetic revision 2).
        "beta1_shift": (3, 0, BETA_SHIFT_MAX),
        "beta2_shift": (7, 0, BETA_SHIFT_MAX),
        "decay_shift": (0, 0, 20),
        "target_on": (255, 0, 255),
        "target_off": (0, 0, 255),
        "dropout": (0, 0, 255),
    }
    wide_options = ("step",)
    kernel = "dfa"
    distributable = True


class LocalHeads(Rule):
    """Layer-local heads: every hidden layer learns from the error of its own local classifier
    (§7.4); only the output layer sees the network's output error.

    Locality: a synapse uses its pre-synaptic activity, its unit's slope, and the error of its
    own layer's local classifier against the target presented to that layer, sent back through
    a fixed random ternary matrix. No error travels between layers. Same integer sign-momentum
    step as ``dfa``.

    The heads start as that fixed ternary matrix. With ``head_step`` > 0 they learn from their
    own error by the same step (power-of-two weights with ``head_kmax``); 0 keeps them fixed.
    ``head_shift`` is one shift for every hidden layer's head, or a sequence with one per hidden
    weighted layer (a convolution block's output and a narrow Dense layer want different ones).
    """

    name = "local_heads"
    rule_id = 2
    step_decay_default = True  # as dfa's
    options: ClassVar[dict[str, tuple[int, int, int]]] = {
        **DFA.options,
        # 10% dropout by default (the same search).
        "dropout": (26, 0, 255),
        # Heads that learn, chosen on the validation splits of 13 datasets and of a Conv2D
        # model on digits (docs/journal/2026-12-07-defaults-3.md).
        "head_step": (4096, 0, 1 << 16),
        "head_kmax": (4, 0, 8),
        "head_shift": (4, 0, 24),
    }
    per_layer = "head_shift"
    wide_options = ("step", "head_step")
    kernel = "dfa"
    local_heads = True
    distributable = True

    def check_hidden_layers(self, units: Sequence[int]) -> None:
        """Also refuse heads whose sums could overflow 32 bits (§7.4's bound)."""
        super().check_hidden_layers(units)
        kmax = int(self.values["head_kmax"])
        for layer, n_out in enumerate(units):
            if n_out * (255 << kmax) > I32_MAX:
                raise GraiaValueError(
                    f"rule {self.name!r}: hidden layer {layer}'s {n_out} outputs with "
                    f"head_kmax={kmax} could overflow its head's 32-bit sums (at most "
                    f"{I32_MAX // (255 << kmax)}; lower head_kmax, see docs/arithmetic.md §7.4)"
                )


def heads_learn(rule_id: int, params: np.ndarray) -> bool:
    """Whether a rule's parameter vector makes the local heads learn (§7.4: a rule with
    ``local_heads`` and ``head_step > 0``)."""
    rule = by_id(rule_id)
    if not rule.local_heads:
        return False
    at = list(rule.options).index("head_step")
    return len(params) > at and int(params[at]) > 0


class SeedHebbian(Rule):
    """The original Graia's rule (2024), kept as the baseline (§7.3). It does not learn well.

    Locality: pre- and post-synaptic activity and one global bit, "the loss went down".
    """

    name = "seed_hebbian"
    rule_id = 1
    options: ClassVar[dict[str, tuple[int, int, int]]] = {}
    online = True
    supports_conv = False
    kernel = "seed_hebbian"


def by_id(rule_id: int) -> type[Rule]:
    """The rule whose id is ``rule_id`` (what backends receive).

    Raises:
        GraiaValueError: no rule has that id.
    """
    for rule in REGISTRY.values():
        if rule.rule_id == rule_id:
            return rule
    raise GraiaValueError(f"unknown rule id {rule_id}; valid: {sorted(REGISTRY)}")


#: A short fit's first step under ``step_decay`` (docs/arithmetic.md §7.2): a ``fit`` of fewer
#: than ``SHORT_FIT_UPDATES`` updates starts from a larger step, at most ``SHORT_FIT_BOOST``
#: times ``step`` (chosen on 13 datasets' validation splits, docs/journal/2026-12-07-defaults-2.md).
SHORT_FIT_UPDATES = 300
SHORT_FIT_BOOST = 8


def first_step(
    step: int,
    updates: int | None,
    short_fit_updates: int = SHORT_FIT_UPDATES,
    boost: int = SHORT_FIT_BOOST,
) -> int:
    """The step that ``step_decay`` starts from in a ``fit`` of ``updates`` updates (epochs times
    batches an epoch; ``None`` when unknown): ``min(step * boost,
    max(step, step * short_fit_updates // updates))``, and at most the largest ``step``
    (65536, ``DFA.options``), so a short fit on a small dataset moves its weights as far as a
    longer one. The two constants are parameters for searches (benchmarks/defaults.py)."""
    if not updates:
        return step
    boosted = max(step, step * short_fit_updates // updates)
    return min(step * boost, boosted, max(step, DFA.options["step"][2]))


#: The rule ``compile()`` uses when none is named (chosen over ``dfa`` on 13 datasets).
DEFAULT_RULE = "local_heads"


def get(rule: str | Rule | None = None, **options: int | Sequence[int]) -> Rule:
    """A rule instance from a name (with options), an instance, or ``None`` (the default rule)."""
    if isinstance(rule, Rule):
        if options:
            raise GraiaValueError("pass rule options either to the rule instance or to compile()")
        return rule
    name = DEFAULT_RULE if rule is None else rule
    if not isinstance(name, str) or name not in REGISTRY:
        raise GraiaValueError(f"unknown rule {rule!r}; valid: {sorted(REGISTRY)}")
    return REGISTRY[name](**options)
