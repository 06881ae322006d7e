"""Model persistence: save/load_model round trips on every backend, across backends, exact resume,
atomic writes, refusal of bad files (never unpickling), and checkpoint callbacks on real models."""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graia
from graia import backend
from graia import io as gio
from graia.callbacks import EarlyStopping, LambdaCallback, ModelCheckpoint
from graia.errors import GraiaError, ModelFileError

STATE_KEYS = (
    "sizes", "kmax", "shift", "latent", "momentum", "feedback", "head_latent", "head_momentum",
    "counters",
)  # fmt: skip


def small_model(seed: int = 0, rule: str = "dfa", **options: int | bool) -> graia.Sequential:
    model = graia.Sequential(
        [
            graia.layers.Input((4, 4)),
            graia.layers.Dense(12, kmax=6, initializer="codes"),
            graia.layers.Dense(3, kmax=8, shift=7),
        ],
        seed=seed,
        name="persisted",
    )
    model.compile(rule, **options)
    return model


def small_data(n: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 4, 4), dtype=np.uint8), rng.integers(0, 3, n)


def host_state(model: graia.Sequential) -> dict[str, np.ndarray]:
    return model.get_state()


def assert_same_state(a: graia.Sequential, b: graia.Sequential) -> None:
    sa, sb = host_state(a), host_state(b)
    for key in STATE_KEYS:
        assert sa[key].dtype == sb[key].dtype, key
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


def trained(seed: int = 7, rule: str = "dfa", epochs: int = 2, **options: int) -> graia.Sequential:
    model = small_model(seed=seed, rule=rule, **options)
    x, y = small_data()
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
    return model


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "rule, options",
    [
        ("dfa", {"step": 512, "beta1_shift": 2, "target_off": 16}),
        ("seed_hebbian", {}),
        ("local_heads", {"step": 512, "head_step": 16384, "head_kmax": 3}),
    ],
)
def test_round_trip_restores_everything(
    backend_name: str, tmp_path: Path, rule: str, options: dict[str, int]
) -> None:
    with backend.use(backend_name):
        model = trained(seed=2**63 + 5, rule=rule, **options)
        path = tmp_path / "m.graia"
        model.save(path)
        loaded = graia.load_model(path)
        assert loaded.get_config() == model.get_config()
        assert loaded.seed == 2**63 + 5 and loaded.name == "persisted"
        assert loaded.input_shape == (4, 4)
        assert [la.get_config() for la in loaded.layers] == [la.get_config() for la in model.layers]
        assert type(loaded.rule) is type(model.rule) and loaded.rule.values == model.rule.values
        assert_same_state(model, loaded)
        counters = host_state(loaded)["counters"]
        assert counters[1] > 0  # the global step moved, and was restored
        if rule != "seed_hebbian":
            assert np.any(host_state(loaded)["momentum"] != 0)
        if rule == "local_heads":  # the learned heads (§7.4) were saved, not rebuilt
            assert np.any(host_state(loaded)["head_momentum"] != 0)
        x, _ = small_data()
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_untrained_and_uncompiled_model_round_trip(tmp_path: Path) -> None:
    model = graia.Sequential([graia.layers.Input(5), graia.layers.Dense(2)], seed=1)
    model.save(tmp_path / "m.graia")
    loaded = graia.load_model(tmp_path / "m.graia")
    assert loaded.rule is None
    assert_same_state(model, loaded)
    with pytest.raises(GraiaError, match="compile"):
        loaded.fit(np.zeros((2, 5), np.uint8), [0, 1], verbose=0)


@pytest.mark.parametrize("saved_on", backend.NAMES)
def test_saved_on_one_backend_loads_on_another(
    backend_name: str, saved_on: str, require_backend: Any, tmp_path: Path
) -> None:
    require_backend(saved_on)
    x, _ = small_data()
    with backend.use(saved_on):
        model = trained()
        reference = model.predict(x)
        model.save(tmp_path / "m.graia")
    with backend.use(backend_name):
        loaded = graia.load_model(tmp_path / "m.graia")
        np.testing.assert_array_equal(loaded.predict(x), reference)
        assert_same_state(model, loaded)


def test_resume_after_load_is_bit_exact(backend_name: str, tmp_path: Path) -> None:
    x, y = small_data(60, seed=3)
    with backend.use(backend_name):
        # A constant step: the first fit's schedule would be over its own two epochs.
        straight = small_model(seed=11, step_decay=False)
        h_straight = straight.fit(x, y, epochs=4, batch_size=8, verbose=0)
        first = small_model(seed=11, step_decay=False)
        first.fit(x, y, epochs=2, batch_size=8, verbose=0)
        first.save(tmp_path / "half.graia")
        del first
        resumed = graia.load_model(tmp_path / "half.graia")
        h_resumed = resumed.fit(x, y, epochs=4, batch_size=8, verbose=0, initial_epoch=2)
    assert h_resumed.epoch == [2, 3]
    assert h_resumed.history["loss"] == h_straight.history["loss"][2:]
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert_same_state(straight, resumed)


def test_save_weights_and_load_weights(tmp_path: Path) -> None:
    model = trained()
    model.save_weights(tmp_path / "w.graia")
    other = small_model(seed=99)
    other.load_weights(tmp_path / "w.graia")
    for a, b in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.any(host_state(other)["momentum"])  # momenta are not part of weights
    with pytest.raises(ModelFileError, match="weights only"):
        graia.load_model(tmp_path / "w.graia")
    model.save(tmp_path / "m.graia")
    with pytest.raises(ModelFileError, match="not a weights file"):
        other.load_weights(tmp_path / "m.graia")
    wrong = graia.Sequential([graia.layers.Input(16), graia.layers.Dense(5)], seed=0)
    before = wrong.get_weights()
    with pytest.raises(ModelFileError, match="expected"):
        wrong.load_weights(tmp_path / "w.graia")
    np.testing.assert_array_equal(wrong.get_weights()[0], before[0])


# --------------------------------------------------------------------------- atomic write


@pytest.mark.parametrize("where", ["array", "fsync"])
def test_failed_save_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    model = trained()
    path = tmp_path / "m.graia"
    model.save(path)
    good = path.read_bytes()

    def broken_write_array(f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    if where == "array":
        monkeypatch.setattr(np.lib.format, "write_array", broken_write_array)
    else:
        monkeypatch.setattr(os, "fsync", broken_fsync)
    other = trained(seed=8)
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    with pytest.raises(OSError, match="disk full"):
        other.save(tmp_path / "new.graia")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.graia"]
    assert path.read_bytes() == good
    assert_same_state(model, graia.load_model(path))


# --------------------------------------------------------------------------- bad files


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """A real saved model file and its (config, metadata, arrays)."""
    path = tmp_path / "good.graia"
    trained().save(path)
    config, metadata, arrays = gio.read_model_file(path)
    config.pop("format_version")
    return path, config, metadata, arrays


def _craft(
    saved: tuple[Path, dict[str, Any], dict[str, Any], dict[str, np.ndarray]],
    config: dict[str, Any] | None = None,
    arrays: dict[str, np.ndarray] | None = None,
) -> Path:
    path, cfg, meta, arrs = saved
    out = path.with_name("bad.graia")
    gio.write_model_file(
        out, cfg if config is None else config, meta, arrs if arrays is None else arrays
    )
    return out


def _with(d: dict[str, Any], **changes: Any) -> dict[str, Any]:
    new = dict(d)
    for key, value in changes.items():
        if value is _DROP:
            new.pop(key)
        else:
            new[key] = value
    return new


_DROP = object()


def _counters(arrays: dict[str, np.ndarray], index: int, value: int) -> np.ndarray:
    c = arrays["counters"].copy()
    c[index] = value
    return c


ARRAY_CASES = [
    (lambda a: _with(a, latent=_DROP), "missing arrays latent"),
    (lambda a: _with(a, momentum=_DROP), "missing arrays momentum"),
    (lambda a: _with(a, counters=_DROP), "missing arrays counters"),
    (
        lambda a: _with(a, latent=a["latent"].astype(np.int64)),
        "'latent' has dtype int64, expected int32",
    ),
    (
        lambda a: _with(a, momentum=a["momentum"].astype(np.float32)),
        "'momentum' has dtype float32, expected int32",
    ),
    (
        lambda a: _with(a, counters=a["counters"].astype(np.uint64)),
        "'counters' has dtype uint64, expected int64",
    ),
    (lambda a: _with(a, latent=a["latent"][:-1]), r"\(242,\), expected \(243,\)"),
    (lambda a: _with(a, latent=a["latent"].reshape(9, 27)), r"\(9, 27\), expected \(243,\)"),
    (lambda a: _with(a, counters=a["counters"][:2]), r"\(2,\), expected \(3,\)"),
    (lambda a: _with(a, counters=_counters(a, 0, 12345)), "do not match the model's seed"),
    (lambda a: _with(a, counters=_counters(a, 1, -1)), "invalid training counters"),
    (lambda a: _with(a, counters=_counters(a, 2, 256)), "invalid training counters"),
    (lambda a: _with(a, latent=a["latent"] * 0 + (1 << 22)), "out of range"),
]


@pytest.mark.parametrize("change, match", ARRAY_CASES)
def test_bad_arrays_are_refused(saved: Any, change: Any, match: str) -> None:
    bad = _craft(saved, arrays=change(saved[3]))
    with pytest.raises(ModelFileError, match=match):
        graia.load_model(bad)


CONFIG_CASES = [
    (lambda c: _with(c, layers=_DROP), "missing key 'layers'"),
    (lambda c: _with(c, seed=_DROP), "missing key 'seed'"),
    (lambda c: _with(c, layers={"a": 1}), "'layers' must be a list"),
    (lambda c: _with(c, layers=["Input"]), "'layers' must be a list"),
    (lambda c: _with(c, layers=c["layers"][:1]), "at least one Dense"),
    (lambda c: _with(c, layers=c["layers"][1:]), "Input"),
    (lambda c: _with(c, layers=[{"class": "Conv"}]), "unknown layer class"),
    (lambda c: _with(c, layers=[c["layers"][0], {"class": "Dense", "units": -3}]), "units"),
    (lambda c: _with(c, layers=[c["layers"][0], {"class": "Dense", "bogus": 1}]), "bogus"),
    (lambda c: _with(c, seed="7"), "'seed' must be an int"),
    (lambda c: _with(c, seed=7.0), "'seed' must be an int"),
    (lambda c: _with(c, seed=-1), "seed"),
    (lambda c: _with(c, name=["x"]), "'name' must be a string"),
    (lambda c: _with(c, rule="dfa"), "'rule' must be an object"),
    (lambda c: _with(c, rule={"name": "backprop", "options": {}}), "unknown rule"),
    (lambda c: _with(c, rule={"name": "dfa", "options": {"stepp": 1}}), "unknown option"),
    (lambda c: _with(c, rule={"name": "dfa", "options": {"step": 0}}), "out of range"),
    (
        lambda c: _with(
            c, layers=[{"class": "Input", "shape": [40000]}, {"class": "Dense", "units": 2}]
        ),
        "overflow",
    ),
    (lambda c: _with(c, content="weights"), "weights only"),
]


@pytest.mark.parametrize("change, match", CONFIG_CASES)
def test_bad_config_is_refused(saved: Any, change: Any, match: str) -> None:
    bad = _craft(saved, config=change(saved[1]))
    with pytest.raises(ModelFileError, match=match):
        graia.load_model(bad)


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _rezip(path: Path, members: dict[str, bytes]) -> Path:
    out = path.with_name("rezipped.graia")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def test_files_before_biases_load_without_them(tmp_path: Path) -> None:
    """Weighted layers of a format-3 file say nothing of a bias and had none: they load with
    ``use_bias=False`` and predict the same bits; a format-4 file keeps what it says."""
    x = np.random.default_rng(0).integers(0, 256, (9, 6), dtype=np.uint8)
    for output_bias in (True, False):
        model = graia.Sequential(
            [
                graia.layers.Input(6),
                graia.layers.Dense(5, use_bias=False),
                graia.layers.Dense(3, use_bias=output_bias),
            ],
            seed=4,
        )
        model.compile()
        model.fit(x, np.arange(9) % 3, epochs=1, verbose=0)
        model.save(tmp_path / "m.graia")
        loaded = graia.load_model(tmp_path / "m.graia")
        assert [layer.use_bias for layer in loaded.weighted_layers] == [False, output_bias]
    # The last model, as a format-3 file held it.
    members = _members(tmp_path / "m.graia")
    config = json.loads(members["config.json"])
    config["format_version"] = 3
    for layer in config["layers"]:
        layer.pop("use_bias", None)
    members["config.json"] = json.dumps(config).encode()
    loaded = graia.load_model(_rezip(tmp_path / "m.graia", members))
    assert [layer.use_bias for layer in loaded.weighted_layers] == [False, False]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_newer_format_version_is_refused(saved: Any) -> None:
    members = _members(saved[0])
    config = json.loads(members["config.json"])
    config["format_version"] = gio.FORMAT_VERSION + 1
    members["config.json"] = json.dumps(config).encode()
    with pytest.raises(ModelFileError, match="newer than this Graia supports"):
        graia.load_model(_rezip(saved[0], members))


def test_format_version_1_files_load_with_initial_heads(saved: Any) -> None:
    """Files written before the local heads learned (format 1) lack their arrays: the heads
    start as the feedback matrices, as they did."""
    members = _members(saved[0])
    config = json.loads(members["config.json"])
    config["format_version"] = 1
    members["config.json"] = json.dumps(config).encode()
    manifest = json.loads(members["arrays.json"])
    for key in ("head_latent", "head_momentum"):
        del members[f"arrays/{key}.npy"], manifest[key]
    members["arrays.json"] = json.dumps(manifest).encode()
    loaded = graia.load_model(_rezip(saved[0], members))
    state = host_state(loaded)
    np.testing.assert_array_equal(state["head_latent"], state["feedback"].astype(np.int32) << 20)
    assert not state["head_momentum"].any()
    np.testing.assert_array_equal(state["latent"], host_state(graia.load_model(saved[0]))["latent"])
    # A format-2 file without them is refused.
    config["format_version"] = 2
    members["config.json"] = json.dumps(config).encode()
    with pytest.raises(ModelFileError, match="missing arrays head_latent, head_momentum"):
        graia.load_model(_rezip(saved[0], members))


@pytest.mark.parametrize(
    "member, match",
    [
        ("config.json", "missing member config.json"),
        ("metadata.json", "missing member metadata.json"),
        ("arrays.json", "missing member arrays.json"),
        ("arrays/latent.npy", "missing arrays latent"),
    ],
)
def test_missing_member_is_refused(saved: Any, member: str, match: str) -> None:
    members = _members(saved[0])
    del members[member]
    with pytest.raises(ModelFileError, match=match):
        graia.load_model(_rezip(saved[0], members))


def test_truncated_corrupt_missing_and_foreign_files(saved: Any, tmp_path: Path) -> None:
    raw = saved[0].read_bytes()
    target = tmp_path / "cut.graia"
    for size in (0, 10, len(raw) // 3, len(raw) // 2, len(raw) - 30, len(raw) - 1):
        target.write_bytes(raw[:size])
        with pytest.raises(ModelFileError):
            graia.load_model(target)
    # One flipped byte inside the compressed latent weights: a CRC or zlib error.
    with zipfile.ZipFile(saved[0]) as zf:
        info = zf.getinfo("arrays/latent.npy")
    name_len, extra_len = struct.unpack(
        "<HH", raw[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_len + extra_len
    corrupt = bytearray(raw)
    corrupt[start + info.compress_size // 2] ^= 0xFF
    target.write_bytes(bytes(corrupt))
    with pytest.raises(ModelFileError, match=r"corrupt|CRC|Bad|truncated|invalid"):
        graia.load_model(target)
    with pytest.raises(ModelFileError, match="no such model file"):
        graia.load_model(tmp_path / "absent.graia")
    with pytest.raises(ModelFileError, match="not a model file"):
        graia.load_model(tmp_path)  # a directory
    (tmp_path / "text.graia").write_text("not a model")
    with pytest.raises(ModelFileError, match="not a zip"):
        graia.load_model(tmp_path / "text.graia")


class _Payload:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_object_arrays_are_never_unpickled(saved: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = np.empty(228, dtype=object)
    evil[:] = [_Payload(marker)] * 228
    buf = io.BytesIO()
    np.save(buf, evil, allow_pickle=True)
    members = _members(saved[0])
    members["arrays/latent.npy"] = buf.getvalue()
    manifest = json.loads(members["arrays.json"])
    manifest["latent"] = {"dtype": "|O", "shape": [228]}
    members["arrays.json"] = json.dumps(manifest).encode()
    with pytest.raises(ModelFileError, match="only numeric and bool arrays"):
        graia.load_model(_rezip(saved[0], members))
    assert not marker.exists()


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "m.graia"
    model = graia.Sequential(
        [graia.layers.Input(6), graia.layers.Dense(4), graia.layers.Dense(2)], seed=3
    )
    model.compile("dfa")
    model.save(path)
    return path.read_bytes()


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzz_mutated_model_files_raise_only_model_file_error(
    model_bytes: bytes, tmp_path: Path, data: st.DataObject
) -> None:
    raw = bytearray(model_bytes)
    kind = data.draw(st.sampled_from(["set", "xor", "truncate", "insert", "delete"]))
    if kind in ("set", "xor"):
        for _ in range(data.draw(st.integers(1, 6))):
            i = data.draw(st.integers(0, len(raw) - 1))
            value = data.draw(st.integers(0 if kind == "set" else 1, 255))
            raw[i] = value if kind == "set" else raw[i] ^ value
    elif kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "insert":
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = data.draw(st.binary(min_size=1, max_size=32))
    else:
        i = data.draw(st.integers(0, len(raw) - 1))
        del raw[i : i + data.draw(st.integers(1, 32))]
    path = tmp_path / f"fuzz-{os.getpid()}.graia"
    path.write_bytes(bytes(raw))
    try:
        model = graia.load_model(path)
    except ModelFileError as exc:
        assert str(exc)
    else:  # a mutation the format does not protect (a timestamp, padding): still a sound model
        assert model.predict(np.zeros((1, 6), np.uint8)).shape == (1, 2)


# --------------------------------------------------------------------------- callbacks


@pytest.fixture(scope="module")
def digits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    return graia.datasets.digits.load_data()


def digits_model(seed: int = 0) -> graia.Sequential:
    model = graia.Sequential(
        [graia.layers.Input((8, 8)), graia.layers.Dense(32), graia.layers.Dense(10)], seed=seed
    )
    model.compile("dfa", step=1024)
    return model


@pytest.mark.slow
def test_model_checkpoint_save_best_only(backend_name: str, digits: Any, tmp_path: Path) -> None:
    (x, y), _ = digits
    path = tmp_path / "ckpt" / "best.graia"
    checkpoint = ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)
    with backend.use(backend_name):
        model = digits_model()
        history = model.fit(x, y, epochs=5, validation_split=0.2, callbacks=[checkpoint], verbose=0)
        val = history.history["val_accuracy"]
        best = int(np.argmax(val))
        assert checkpoint.best == val[best] and checkpoint.last_saved == str(path)
        cut = int(len(x) * 0.8)
        restored = graia.load_model(path)
        loss, acc = restored.evaluate(x[cut:], y[cut:])
    assert acc == val[best]
    assert loss == history.history["val_loss"][best]


@pytest.mark.slow
def test_early_stopping_restores_best_weights(
    backend_name: str, digits: Any, tmp_path: Path
) -> None:
    (x, y), (x_test, y_test) = digits
    seen: list[list[np.ndarray]] = []
    recorder = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(model.get_weights()))
    stopper = EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=True)
    with backend.use(backend_name):
        model = digits_model(seed=1)
        history = model.fit(
            x,
            y,
            epochs=40,
            validation_data=(x_test, y_test),
            callbacks=[recorder, stopper],
            verbose=0,
        )
        assert stopper.stopped_epoch > 0, "training was expected to stop early"
        assert len(history.epoch) == stopper.stopped_epoch + 1 < 40
        best = stopper.best_epoch
        assert stopper.best == max(history.history["val_accuracy"])
        for a, b in zip(model.get_weights(), seen[best], strict=True):
            np.testing.assert_array_equal(a, b)
        assert model.evaluate(x_test, y_test)[1] == stopper.best
        model.save(tmp_path / "best.graia")
        np.testing.assert_array_equal(
            graia.load_model(tmp_path / "best.graia").predict(x_test), model.predict(x_test)
        )
