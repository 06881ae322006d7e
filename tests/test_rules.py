"""Every registered rule learns on digits, identically on every backend; the seed rule's table."""

from __future__ import annotations

import numpy as np
import pytest

import graia
from graia import rules
from graia.backends.numba import _seed_step
from graia.errors import GraiaValueError

QUICK = {  # a few seconds each on a 2-core CPU
    "dfa": {
        "hidden": (64,),
        "options": {},  # the defaults
        "epochs": 8,
        "batch_size": 32,
        "at_least": 0.85,
    },
    "local_heads": {
        "hidden": (64,),
        "options": {},  # the defaults
        "epochs": 8,
        "batch_size": 32,
        "at_least": 0.85,
    },
    "seed_hebbian": {"hidden": (32,), "options": {}, "epochs": 1, "batch_size": 1, "at_least": 0.0},
}


@pytest.fixture(scope="module")
def digits():
    return graia.datasets.digits.load_data()


def test_every_rule_has_a_quick_recipe():
    assert set(QUICK) == set(rules.REGISTRY)


@pytest.mark.parametrize("rule", sorted(rules.REGISTRY))
def test_rule_learns_on_digits(rule, digits, backend_name):
    (x, y), (xt, yt) = digits
    recipe = QUICK[rule]
    init = "codes" if rule == "seed_hebbian" else "uniform"
    with graia.backend.use(backend_name):
        model = graia.Sequential(
            [graia.layers.Input((8, 8))]
            + [graia.layers.Dense(u, initializer=init, kmax=7) for u in recipe["hidden"]]
            + [graia.layers.Dense(10, initializer=init, kmax=7)],
            seed=1,
        )
        model.compile(rule, **recipe["options"])
        model.fit(x, y, epochs=recipe["epochs"], batch_size=recipe["batch_size"], verbose=0)
        accuracy = model.evaluate(xt, yt)[1]
    assert accuracy >= recipe["at_least"], f"{rule}: {accuracy:.3f}"


@pytest.mark.slow  # eight epochs to a test accuracy; the rules learn in the fast set too
def test_default_rule_far_above_chance(digits):
    (x, y), (xt, yt) = digits
    model = graia.Sequential(
        [graia.layers.Input((8, 8)), graia.layers.Dense(64), graia.layers.Dense(10)], seed=0
    )
    model.compile()
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert model.evaluate(xt, yt)[1] > 0.9


def test_seed_step_table():
    n = 8
    assert [_seed_step(c, True, n) for c in (1, 3, n, -1, -3, -n, 0)] == [
        1,
        2,
        n - 1,
        -2,
        -4,
        n - 1,
        0,
    ]
    assert [_seed_step(c, False, n) for c in (1, 3, n, -1, -3, -n, 0)] == [
        2,
        4,
        -(n - 1),
        -1,
        -2,
        -(n - 1),
        0,
    ]


def test_seed_rule_hand_checked_case():
    """One input, one output, one sample: the loss went down from 255, the unit fired: excite."""
    model = graia.Sequential(
        [graia.layers.Input(1), graia.layers.Dense(1, kmax=7, use_bias=False, initializer="codes")],
        seed=0,
    )
    model.compile("seed_hebbian")
    model.set_weights([np.array([[1 << 18]])])  # code +3: weight 1/4
    model.fit(np.array([[200]], np.uint8), np.array([0]), epochs=1, verbose=0, shuffle=False)
    # output = 200/4 = 50 > 0, loss = |50 - 255| = 205 < 255: was better and fired -> excite: +2
    assert model.get_codes()[0][0, 0] == 2
    model.fit(np.array([[200]], np.uint8), np.array([0]), epochs=1, verbose=0, shuffle=False)
    # output 100, loss 155 < 205, fired -> excite again: +1 (weight 1)
    assert model.get_codes()[0][0, 0] == 1


def test_head_shift_per_hidden_layer():
    """``head_shift`` takes one value per hidden layer; the values end the parameter vector."""
    rule = rules.get("local_heads", head_shift=[9, 6, 3])
    assert rule.values["head_shift"] == (9, 6, 3)
    assert list(rule.params()[7:]) == [4096, 4, 9, 6, 3]  # head_step, head_kmax, then the shifts
    assert rule.get_config()["options"]["head_shift"] == [9, 6, 3]
    assert list(rules.get("local_heads", head_shift=5).params()[7:]) == [4096, 4, 5]
    for bad, message in (([], "empty sequence"), ([3, 25], "out of range"), ([3, "4"], "int")):
        with pytest.raises(GraiaValueError, match=message):
            rules.get("local_heads", head_shift=bad)
    with pytest.raises(GraiaValueError, match="must be an int, got"):
        rules.get("dfa", step=(256, 128))
    # A hostile value: the message stays one short line.
    with pytest.raises(GraiaValueError) as excinfo:
        rules.get("local_heads", head_shift=[[1] * 100000])
    assert len(str(excinfo.value)) < 200


def test_head_shifts_must_match_the_hidden_layers(tmp_path, digits):
    (x, y), _ = digits
    model = graia.Sequential(
        [graia.layers.Input((8, 8)), graia.layers.Dense(16), graia.layers.Dense(10)], seed=0
    )
    with pytest.raises(GraiaValueError, match="2 values for a model with 1 hidden"):
        model.compile("local_heads", head_shift=(3, 4))
    assert model.rule is None or model.rule.name != "local_heads"
    model.compile("local_heads", head_shift=(3,))
    model.fit(x[:64], y[:64], epochs=1, verbose=0)
    model.save(tmp_path / "m.graia")
    loaded = graia.load_model(tmp_path / "m.graia")
    assert loaded.rule.values["head_shift"] == (3,)


def test_learned_heads_options_and_bound():
    """``head_step`` and ``head_kmax`` come before the per-layer ``head_shift``; a head whose
    sums could overflow 32 bits is refused when compiled (§7.4)."""
    rule = rules.get("local_heads", head_step=4096, head_kmax=6, head_shift=(5, 2))
    assert list(rule.params()[7:]) == [4096, 6, 5, 2]
    assert rules.heads_learn(rule.rule_id, rules.get("local_heads").params())  # 4096 by default
    assert not rules.heads_learn(rule.rule_id, rules.get("local_heads", head_step=0).params())
    assert rules.heads_learn(rule.rule_id, rule.params())
    wide = graia.Sequential(
        [graia.layers.Input(4), graia.layers.Dense(40000, kmax=2), graia.layers.Dense(3, kmax=2)],
        seed=0,
    )
    with pytest.raises(GraiaValueError, match="40000 outputs with head_kmax=8 could overflow"):
        wide.compile("local_heads", head_kmax=8)
    wide.compile("local_heads", head_kmax=4)
