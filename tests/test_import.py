"""`import bench` must not import an ML framework (TensorFlow, Keras, JAX, PyTorch) or initialise NVML."""

import subprocess
import sys


def test_import_bench_leaves_tensorflow_and_nvml_alone():
    code = (
        "import sys, bench, bench.cli, bench.sweep.sweep, bench.measure.sampler, bench.measure.machine,"
        " bench.request, bench.pytest.plugin, bench.pytest.fixture, bench.pytest.extra_info\n"
        "bad = [m for m in ('tensorflow', 'keras', 'jax', 'jaxlib', 'torch', 'pynvml', 'ray') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at module level: {out.stdout.strip()}"
