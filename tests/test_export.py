"""Deployment (docs/deploy.md): the exported C and ONNX models give exactly ``model.predict``'s
bytes; the C compiles cleanly, is shifts and adds only; ``graia export``/``graia summary``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import graia
from graia.cli import main
from graia.errors import GraiaError, GraiaValueError
from graia.export.plan import DensePlan, code_bits
from graia.spec import LATENT_ONE_BITS

HARNESS = Path(__file__).with_name("export_harness.c")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need(tool: str) -> str:
    """The path of ``tool``: skipped locally when missing, a failure in CI."""
    path = shutil.which(tool)
    if path is None:
        if IN_CI:
            pytest.fail(f"{tool} not found (scripts/install-toolchain installs it)")
        pytest.skip(f"{tool} not found")
    return path


def _compilers() -> list[str]:
    """gcc (required), and clang when installed."""
    return [_need("gcc")] + [c for c in (shutil.which("clang"),) if c]


def _onnxruntime():
    if IN_CI:
        import onnxruntime

        return onnxruntime
    return pytest.importorskip("onnxruntime")


def _latent(code: int) -> int:
    """The canonical latent weight of a code (§6)."""
    return 0 if code == 0 else int(np.sign(code)) << (LATENT_ONE_BITS - (abs(code) - 1))


def run_c(model: graia.Sequential, x: np.ndarray, directory: Path, compiler: str = "gcc"):
    """Export ``model`` to C, compile it strictly with the harness, run it over ``x``; return
    (predict's outputs, classify's classes, the self-test's failures)."""
    model.export(directory, format="c", samples=x[:3])
    obj = directory / "graia_model.o"
    subprocess.run(
        [compiler, *STRICT, "-O2", "-c", str(directory / "graia_model.c"), "-o", str(obj)],
        check=True,
    )
    exe = directory / "harness"
    subprocess.run(
        [compiler, "-std=c99", "-O2", f"-I{directory}", str(HARNESS), str(obj), "-o", str(exe)],
        check=True,
    )
    rows = np.ascontiguousarray(x.reshape(len(x), -1), np.uint8)
    rows.tofile(directory / "inputs.bin")
    done = subprocess.run(
        [str(exe), str(directory / "inputs.bin"), str(directory / "outputs.bin")],
        check=True,
        capture_output=True,
        text=True,
    )
    raw = np.fromfile(directory / "outputs.bin", np.uint8)
    n, classes = len(x), model.classes
    failures = int(re.search(r"self_test (\d+)", done.stdout).group(1))
    return raw[: n * classes].reshape(n, classes), raw[n * classes :], failures


@pytest.fixture(scope="module")
def digits():
    return graia.datasets.digits.load_data()


#: Both kinds of weighted layer: with a bias (the default) and without.
BIASES = pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])


def _digits_model(seed: int = 3, use_bias: bool = True) -> graia.Sequential:
    """Two hidden layers (both activation buffers), kmax 8, 2 and 0 (5-, 3- and 2-bit codes)."""
    return graia.Sequential(
        [
            graia.layers.Input((8, 8)),
            graia.layers.Dense(24, use_bias=use_bias),
            graia.layers.Dense(16, kmax=2, shift=3, use_bias=use_bias),
            graia.layers.Dense(10, kmax=0, shift=0, use_bias=use_bias),
        ],
        seed=seed,
    )


def _numba_digits_model(digits, use_bias: bool) -> graia.Sequential:
    """The digits model trained by numba (batches of 64: its outputs vary from sample to
    sample, with or without biases, so that comparing them checks something)."""
    (x, y), _ = digits
    with graia.backend.use("numba"):
        model = _digits_model(use_bias=use_bias)
        model.compile("dfa")
        model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def numba_digits_model(digits):
    return _numba_digits_model(digits, use_bias=True)


@pytest.fixture(scope="module", params=[True, False], ids=["bias", "no_bias"])
def each_numba_digits_model(digits, request):
    """The digits model trained by numba, with and without biases."""
    return _numba_digits_model(digits, use_bias=request.param)


@pytest.mark.parametrize("bias", [1, 0])
def test_packing_round_trips_every_code_width(bias):
    rng = np.random.default_rng(0)
    rows = 5 + bias  # the bias row is packed like an input's
    for kmax in (0, 1, 2, 3, 6, 7, 8, 14):
        codes = rng.integers(-(kmax + 1), kmax + 2, size=(rows, 13)).astype(np.int8)
        layer = DensePlan("d", 5, 13, kmax, kmax, codes, bias)
        bits = code_bits(kmax)
        packed = layer.packed()
        assert packed.shape == (rows, (13 * bits + 7) // 8) and layer.table_bytes == packed.size
        assert layer.params == rows * 13 and layer.macs == 5 * 13
        fields = np.unpackbits(packed, axis=1, bitorder="little")[:, : 13 * bits]
        fields = (fields.reshape(rows, 13, bits) << np.arange(bits)).sum(axis=2)
        magnitude, negative = fields & ((1 << (bits - 1)) - 1), fields >> (bits - 1)
        np.testing.assert_array_equal(np.where(negative == 1, -magnitude, magnitude), codes)


@BIASES
def test_c_export_equals_predict_on_digits_for_each_backend(
    backend_name, use_bias, digits, tmp_path
):
    (x, y), (x_test, _) = digits
    with graia.backend.use(backend_name):
        model = _digits_model(use_bias=use_bias)
        model.compile("dfa")
        model.fit(x, y, epochs=2, batch_size=64, verbose=0)
        expected = model.predict(x_test)
        classes = model.predict_classes(x_test)
    for compiler in _compilers():
        out, got_classes, failures = run_c(model, x_test, tmp_path / Path(compiler).name, compiler)
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(got_classes, classes)
        assert failures == 0


def test_c_export_equals_predict_on_a_fashion_mnist_subset(tmp_path):
    (x, y), (x_test, _) = graia.datasets.fashion_mnist.load_data(download=False)
    with graia.backend.use("numba"):
        model = graia.Sequential(
            [graia.layers.Input((28, 28)), graia.layers.Dense(32, shift=9), graia.layers.Dense(10)],
            seed=1,
        )
        model.compile("dfa")
        model.fit(x[:2000], y[:2000], epochs=1, batch_size=64, verbose=0)
        subset = x_test[:1000]
        expected = model.predict(subset)
    out, classes, failures = run_c(model, subset, tmp_path)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(classes, np.argmax(expected, axis=1))
    assert failures == 0


def _extreme_model(use_bias: bool) -> tuple[graia.Sequential, np.ndarray]:
    """A sum near the i32 bound where float32 rounding would change the shifted result:
    z = 127 * 2^24 - 1, so z >> 24 = 126 (float32 would give 127). 514 weights a unit, the
    largest fan-in for kmax 14; with a bias, its input 255 stands in for the first input's."""
    b = int(use_bias)
    model = graia.Sequential(
        [graia.layers.Input(514 - b), graia.layers.Dense(2, kmax=14, shift=24, use_bias=use_bias)],
        seed=0,
    )
    latent = np.zeros((514, 2), np.int64)
    latent[: 510 - b, :] = _latent(1)  # W = 2^14
    latent[510 - b, 0] = _latent(-15)  # W = -1
    if use_bias:
        latent[513, :] = _latent(1)  # the bias row: W = 2^14
    model.set_weights([latent])
    x = np.zeros((2, 514 - b), np.uint8)
    x[:, : 509 - b], x[:, 509 - b], x[:, 510 - b] = 255, 253, 1
    x[1, 510 - b] = 0  # second sample: z = 127 * 2^24 exactly
    return model, x


@BIASES
def test_exact_near_the_sum_bound_in_c_and_onnx(use_bias, tmp_path):
    model, x = _extreme_model(use_bias)
    expected = model.predict(x)
    assert expected[:, 0].tolist() == [126, 127]
    out, _, failures = run_c(model, x, tmp_path)
    np.testing.assert_array_equal(out, expected)
    assert failures == 0
    ort = _onnxruntime()
    model.export(tmp_path, format="onnx")
    session = ort.InferenceSession(str(tmp_path / "graia_model.onnx"))
    np.testing.assert_array_equal(session.run(["activations"], {"input": x})[0], expected)


def _disassembly(obj: Path) -> list[tuple[str, str]]:
    """(function, mnemonic) for every instruction of an object file."""
    text = subprocess.run(
        [_need("objdump"), "-d", "--no-show-raw-insn", str(obj)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    instructions, function = [], "?"
    for line in text.splitlines():
        if header := re.match(r"^[0-9a-f]+ <([^>]+)>:$", line):
            function = header.group(1)
        elif insn := re.match(r"^\s+[0-9a-f]+:\s+([a-z][a-z0-9.]*)", line):
            instructions.append((function, insn.group(1)))
    return instructions


#: Multiplications, divisions and floating point on x86-64 (SSE/AVX/x87); integer SIMD moves
#: and adds are allowed.
FORBIDDEN = re.compile(
    r"^(v?p?mul\w*|i?mul\w*|v?p?div\w*|i?div\w*|v?p?madd\w*|vfn?m\w*|"
    r"v?(add|sub|min|max|sqrt|rcp|rsqrt|cmp)(ss|sd|ps|pd)|v?cvt\w*|f[a-z]+)$"
)


def test_inference_path_is_shifts_and_adds_only(numba_digits_model, tmp_path):
    model = numba_digits_model
    model.export(tmp_path, format="c")
    source = (tmp_path / "graia_model.c").read_text()
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)
    assert re.findall(r"#include\s*[<\"]([^>\"]+)", code) == ["graia_model.h", "stddef.h"]
    for word in ("float", "double", "malloc", "free", "alloca", "/", "%"):
        assert word not in code, word
    for level in ("-O0", "-O2"):
        obj = tmp_path / f"model{level}.o"
        subprocess.run(
            [_need("gcc"), *STRICT, level, "-c", str(tmp_path / "graia_model.c"), "-o", str(obj)],
            check=True,
        )
        instructions = _disassembly(obj)
        functions = {f for f, _ in instructions}
        assert {"graia_model_predict", "graia_model_classify", "graia_model_self_test"} <= functions
        bad = [(f, m) for f, m in instructions if FORBIDDEN.match(m)]
        assert not bad, (level, bad)


def test_onnx_export_equals_predict(each_numba_digits_model, digits, tmp_path):
    ort = _onnxruntime()
    import onnx

    _, (x_test, _) = digits
    model = each_numba_digits_model
    exported = model.export(tmp_path, format="onnx")
    path = tmp_path / "graia_model.onnx"
    assert exported.files == (str(path),)
    proto = onnx.load(str(path))
    ops = {node.op_type for node in proto.graph.node}
    biases = {"Add"} if model.weighted_layers[0].use_bias else set()
    assert ops == {"Cast", "MatMul", "Clip", "BitShift", "Identity", "ArgMax"} | biases
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)
    assert all(init.data_type not in floats for init in proto.graph.initializer)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    activations, classes = session.run(
        ["activations", "class"], {"input": x_test.reshape(len(x_test), -1)}
    )
    assert activations.dtype == np.uint8
    np.testing.assert_array_equal(activations, model.predict(x_test))
    np.testing.assert_array_equal(classes, model.predict_classes(x_test))


def test_summary_reports_deployed_sizes(each_numba_digits_model, capsys):
    model = each_numba_digits_model
    b = int(model.weighted_layers[0].use_bias)  # one more row of weights a layer with a bias
    model.summary()
    text = capsys.readouterr().out
    # 64 * ceil(24 * 5 / 8) + 24 * ceil(16 * 3 / 8) + 16 * ceil(10 * 2 / 8) bytes of packed codes,
    # plus a row of each table with the biases.
    packed = (64 + b) * 15 + (24 + b) * 6 + (16 + b) * 3
    params = (64 + b) * 24 + (24 + b) * 16 + (16 + b) * 10
    assert f"weights:     {packed:,} bytes of packed codes vs {4 * params:,} bytes float32" in text
    nonzero = sum(int(np.count_nonzero(c)) for c in model.get_codes())
    assert f"{nonzero:,} shift-adds per sample" in text
    assert f"vs {64 * 24 + 24 * 16 + 16 * 10:,} multiply-accumulates" in text
    assert f"Total params: {params:,}" in text
    row = next(line for line in text.splitlines() if line.startswith("dense_0"))
    assert row.split()[3:5] == [f"{(64 + b) * 24}", f"{(64 + b) * 15}"]  # Params, Bytes
    shift = model.weighted_layers[0].shift
    assert f"    8 {shift:>5} {'yes' if b else 'no':>4}  " in row  # kmax, shift, bias
    # Sums of the widest layer and terms of 5-bit codes (i32), the hidden buffers, the output.
    assert f"activations: {4 * (24 + 32) + 24 + 16 + 10:,} bytes peak" in text


@BIASES
def test_summary_of_a_conv_model_counts_its_biases(use_bias, tmp_path, capsys):
    """One bias per filter and per unit, in Params and the bias column; export still refuses."""
    model = graia.Sequential(
        [
            graia.layers.Input((6, 6)),
            graia.layers.Conv2D(4, 3, use_bias=use_bias),
            graia.layers.Flatten(),
            graia.layers.Dense(3, use_bias=use_bias),
        ],
        seed=0,
    )
    model.summary()
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    b, bias = int(use_bias), "yes" if use_bias else "no"
    assert rows["conv2d_0"].split()[5:9] == [f"{(9 + b) * 4}", "8", "8", bias]
    assert rows["dense_2"].split()[3:7] == [f"{(64 + b) * 3}", "8", "8", bias]
    assert f"Total params: {(9 + b) * 4 + (64 + b) * 3:,}" in rows["Total"]
    with pytest.raises(GraiaValueError, match="Dense layers only so far; layer 'conv2d_0'"):
        model.export(tmp_path, format="c")


def test_the_docs_c_example_builds_and_runs(numba_digits_model, tmp_path):
    docs = (Path(__file__).parent.parent / "docs" / "deploy.md").read_text()
    example = re.search(r"```c\n(.*?)```", docs, flags=re.DOTALL).group(1)
    numba_digits_model.export(tmp_path, format="c")
    (tmp_path / "main.c").write_text(example)
    exe = tmp_path / "classify"
    sources = [str(tmp_path / "main.c"), str(tmp_path / "graia_model.c")]
    subprocess.run([_need("gcc"), *STRICT, "-O2", *sources, "-o", str(exe)], check=True)
    done = subprocess.run([str(exe)], check=False, capture_output=True, text=True)
    expected = numba_digits_model.predict_classes(np.zeros((1, 64), np.uint8))[0]
    assert (done.returncode, done.stdout) == (0, f"class {expected}\n")


def test_export_argument_errors(numba_digits_model, tmp_path):
    model = numba_digits_model
    with pytest.raises(GraiaValueError, match="format must be one of"):
        model.export(tmp_path, format="tflite")
    with pytest.raises(GraiaValueError, match="at most 64 golden inputs"):
        model.export(tmp_path, samples=np.zeros((65, 64), np.uint8))
    with pytest.raises(GraiaValueError, match="C export only"):
        model.export(tmp_path, format="onnx", samples=np.zeros((1, 64), np.uint8))
    with pytest.raises(GraiaError, match="needs an Input layer"):
        graia.Sequential([graia.layers.Input(4)]).export(tmp_path)
    assert not list(tmp_path.iterdir())


def test_cli_export_and_summary(numba_digits_model, tmp_path, capsys):
    path = tmp_path / "model.graia"
    numba_digits_model.save(path)
    assert main(["summary", str(path)]) == 0
    assert "shift-adds per sample" in capsys.readouterr().out
    out_dir = tmp_path / "c"
    assert main(["export", str(path), "--format", "c", "--output", str(out_dir)]) == 0
    line = capsys.readouterr().out.strip()
    assert re.search(r"ROM [\d,]+ bytes of constant data .* RAM [\d,]+ bytes static$", line), line
    assert sorted(os.listdir(out_dir)) == ["graia_model.c", "graia_model.h"]
    header = (out_dir / "graia_model.h").read_text()
    for define in ("INPUTS 64", "OUTPUTS 10", "LAYERS 3"):
        assert f"#define GRAIA_MODEL_{define}\n" in header
    _onnxruntime()
    assert main(["export", str(path), "--format", "onnx", "--output", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "graia_model.onnx").stat().st_size > 0


def test_cli_export_of_a_corrupt_model_is_one_error_line(numba_digits_model, tmp_path, capsys):
    path = tmp_path / "model.graia"
    numba_digits_model.save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))
    out_dir = tmp_path / "out"
    for fmt in ("c", "onnx"):
        code = main(["export", str(path), "--format", fmt, "--output", str(out_dir)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"graia: error: {path}") and "Traceback" not in err
    assert not out_dir.exists()


PREPROCESS_HARNESS = Path(__file__).with_name("export_preprocess_harness.c")


def _raw_features() -> np.ndarray:
    """Float features of any range, with the cases §8's rounding and saturation must get right:
    exact halves of 2^-16 (both signs), values past ±2^30, zeros of both signs."""
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 30.0, (120, 6))
    x[0] = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5]) / 65536
    x[1] = [1e300, -1e300, 1e14, -1e14, 0.0, -0.0]
    x[2] = [2.0**30, -(2.0**30), 3 + 0.5 / 65536, 7 / 131072, -7 / 131072, 5.0]
    return x


def _preprocessed_models() -> list[graia.Sequential]:
    """A trained Dense model behind each preprocessing layer."""
    x = _raw_features()
    y = (x[:, 0] > 5).astype(np.int64)
    normalization = graia.layers.Normalization()
    normalization.adapt(x[3:])
    models = []
    for pre in (normalization, graia.layers.Rescaling([0.01, -0.02, 0.003, 1, 2, 1e-6], 0.5)):
        model = graia.Sequential(
            [graia.layers.Input(6), pre, graia.layers.Dense(16), graia.layers.Dense(3)], seed=1
        )
        model.compile("dfa")
        model.fit(x[3:], y[3:], epochs=2, batch_size=16, verbose=0)
        models.append(model)
    return models


@pytest.mark.parametrize("index", [0, 1], ids=["Normalization", "Rescaling"])
def test_c_export_of_a_preprocessing_layer_is_bit_exact(index, tmp_path):
    model = _preprocessed_models()[index]
    x = _raw_features()
    model.export(tmp_path, format="c", samples=x[:3])
    exe = tmp_path / "harness"
    subprocess.run(
        [_need("gcc"), *STRICT, "-O2", f"-I{tmp_path}", str(PREPROCESS_HARNESS),
         str(tmp_path / "graia_model.c"), "-o", str(exe)],
        check=True,
    )  # fmt: skip
    x.tofile(tmp_path / "features.bin")
    subprocess.run(
        [str(exe), str(tmp_path / "features.bin"), str(tmp_path / "out.bin")], check=True
    )
    out = np.fromfile(tmp_path / "out.bin", np.uint8).reshape(len(x), 6 + model.classes)
    np.testing.assert_array_equal(out[:, :6], model.quantize(x))
    np.testing.assert_array_equal(out[:, 6:], model.predict(x))


@pytest.mark.parametrize("index", [0, 1], ids=["Normalization", "Rescaling"])
def test_onnx_export_of_a_preprocessing_layer_is_bit_exact(index, tmp_path):
    ort = _onnxruntime()
    model = _preprocessed_models()[index]
    x = _raw_features()
    model.export(tmp_path, format="onnx")
    session = ort.InferenceSession(str(tmp_path / "graia_model.onnx"))
    activations, classes = session.run(None, {"input": x})
    np.testing.assert_array_equal(activations, model.predict(x))
    np.testing.assert_array_equal(classes, model.predict_classes(x))


def test_export_of_an_unadapted_normalization_is_one_error(tmp_path):
    model = graia.Sequential(
        [graia.layers.Input(4), graia.layers.Normalization(), graia.layers.Dense(3)], seed=0
    )
    with pytest.raises(GraiaError, match="not adapted: call layer.adapt"):
        model.export(tmp_path)
