"""The TensorFlow backend: TF thread pools, tf.config devices, MirroredStrategy, tf.function.

Thread caps are TensorFlow's own variables (``TF_NUM_INTRAOP_THREADS``/``TF_NUM_INTEROP_THREADS``,
read on import) plus OMP/MKL/OpenBLAS; inside the worker they are set through ``tf.config.threading``
as well, so ``get_*_parallelism_threads`` report the values really in use.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from bench.backends.base import BLAS_THREAD_VARS, Backend, Scope

THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS") + BLAS_THREAD_VARS
BUILD_KEYS = ("cuda_version", "cudnn_version", "is_cuda_build", "is_rocm_build", "cuda_compute_capabilities")

# The probe a fresh process runs (bench.engines.devices): which GPUs TensorFlow sees, and its build.
_PROBE = (
    "import json, tensorflow as tf\n"
    "b = tf.sysconfig.get_build_info()\n"
    "print(json.dumps({'gpus': [d.name for d in tf.config.list_physical_devices('GPU')],"
     " 'build': ('CUDA %s build' % b.get('cuda_version', '')) if b.get('is_cuda_build') else 'a build without CUDA'}))\n"
)


class TensorFlowBackend(Backend):
    """Keras on TensorFlow (the default backend)."""

    name = "tensorflow"
    label = "TensorFlow"
    module = "tensorflow"
    dist = "tensorflow"
    extra = ""
    compiler = "tf.function"
    gpu_hint = "pip install 'tensorflow[and-cuda]'"
    non_nvidia_gpu_packages = ("tensorflow-metal", "tensorflow-rocm", "intel-extension-for-tensorflow",
                               "tensorflow-directml-plugin")
    env_vars = THREAD_VARS + ("TF_FORCE_GPU_ALLOW_GROWTH",)

    def thread_env(self, intra: int, inter: int, parent=None) -> dict[str, str]:
        return {"TF_NUM_INTRAOP_THREADS": str(intra), "TF_NUM_INTEROP_THREADS": str(inter),
                **super().thread_env(intra, inter, parent)}

    def device_env(self, kind: str, parent=None, logical_cpus: int | None = None) -> dict[str, str]:
        return {"TF_FORCE_GPU_ALLOW_GROWTH": "true"} if kind == "gpu" else {}

    # ------------------------------------------------------------ worker side

    def import_framework(self) -> Any:
        import tensorflow as tf
        import keras  # noqa: F401 - imported with the framework, so the import time counts both

        return tf

    def mark_clean(self) -> None:
        self._clean_gradients = set(_gradient_registry() or ())

    def release_trial_state(self) -> int:
        """Unregisters the gradient functions traced since :meth:`mark_clean`.

        ``tf.custom_gradient`` in graph mode (TensorFlow's default distribution strategy uses it in
        every Keras train step) registers a ``CustomGradient-<n>`` entry that is never removed and
        whose closure holds the whole traced train-step graph: without this a worker keeps every
        model it ever trained (~15k Python objects per small MLP, ~70k and ~70 MB per LSTM stack),
        and each later garbage collection, inside trials too, walks them all. An entry is only read
        while a gradient is being traced, so once its model is gone nothing needs it.
        """
        registry = _gradient_registry()
        clean = getattr(self, "_clean_gradients", None)
        if registry is None or clean is None:
            return 0
        stale = [k for k in registry if k not in clean and str(k).startswith("CustomGradient-")]
        for key in stale:
            registry.pop(key, None)
        return len(stale)

    def apply_threads(self, env=None) -> dict[str, Any]:
        import tensorflow as tf

        env = os.environ if env is None else env
        intra, inter = env.get("TF_NUM_INTRAOP_THREADS"), env.get("TF_NUM_INTEROP_THREADS")
        if intra:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra))
        if inter:
            tf.config.threading.set_inter_op_parallelism_threads(int(inter))
        return {"intra_op_threads": int(tf.config.threading.get_intra_op_parallelism_threads()),
                "inter_op_threads": int(tf.config.threading.get_inter_op_parallelism_threads()),
                "source": "tf.config.threading"}

    def facts(self) -> dict[str, Any]:
        import tensorflow as tf

        return {
            "version": tf.__version__,
            "build": self._build_info(tf),
            "visible_devices": [d.name for d in tf.config.list_logical_devices()],
            "physical_devices": [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()],
        }

    @staticmethod
    def _build_info(tf) -> dict:
        """What TensorFlow was built with: CUDA / cuDNN versions, CUDA or ROCm build, GPU targets."""
        try:
            info = tf.sysconfig.get_build_info()
        except (AttributeError, ImportError):  # builds without tf.sysconfig.get_build_info: no build facts
            return {}
        return {k: (v if isinstance(v, bool) else str(v)) for k, v in info.items() if k in BUILD_KEYS}

    def gpus(self) -> list[str]:
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]

    def setup_cpu(self) -> dict:
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):  # a plug-in ignoring CUDA_VISIBLE_DEVICES
            tf.config.set_visible_devices([], "GPU")
        return {"kind": "cpu", "devices": [d.name for d in tf.config.list_logical_devices()]}

    def setup_gpu(self) -> dict:
        import tensorflow as tf

        gpus = self._gpus_or_refuse(tf, "refusing to run a 'gpu' strategy on the CPU")
        return {"kind": "gpu", "devices": [d.name for d in tf.config.list_logical_devices("GPU")],
                "gpus": _gpu_details(tf, gpus)}

    def _gpus_or_refuse(self, tf, what: str) -> list:
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            raise RuntimeError(
                "no GPU visible to TensorFlow in this worker "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); {what}"
            )
        _memory_growth(tf, gpus)
        return gpus

    def multi_device(self, logical_cpus: int | None) -> Scope:
        """``tf.distribute.MirroredStrategy`` over N logical CPU devices or over the visible GPUs."""
        import tensorflow as tf

        if logical_cpus:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(int(logical_cpus))]
            )
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            kind, details = "cpu-logical", {}
        else:
            gpus = self._gpus_or_refuse(tf, "use mirrored:cpuN to mirror over logical CPU devices")
            devices = [d.name for d in tf.config.list_logical_devices("GPU")]
            kind, details = "gpu", {"gpus": _gpu_details(tf, gpus)}
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        replicas = int(strategy.num_replicas_in_sync)
        return Scope(scope=strategy.scope, replicas=replicas,
                     info={"kind": kind, "devices": devices, "strategy": type(strategy).__name__,
                           "replicas": replicas, **details})

    def compile_predict(self, model, x) -> Callable:
        """``tf.function`` of ``model(t, training=False)`` with an input signature of any batch size."""
        import tensorflow as tf

        spec = tf.TensorSpec((None,) + tuple(x.shape[1:]), tf.as_dtype(x.dtype))
        fn = tf.function(lambda t: model(t, training=False), input_signature=[spec])
        return lambda batch: fn(batch).numpy()

    def gpu_probe_code(self) -> str:
        return _PROBE


def _memory_growth(tf, gpus) -> None:
    for g in gpus:
        try:
            tf.config.experimental.set_memory_growth(g, True)
        except (RuntimeError, ValueError):  # already initialised / set by TF_FORCE_GPU_ALLOW_GROWTH
            pass


def _gpu_details(tf, gpus) -> list[dict]:
    out = []
    for g in gpus:
        try:
            d = tf.config.experimental.get_device_details(g)
        except (ValueError, RuntimeError, AttributeError, tf.errors.OpError):  # details are optional: not a
            # device TensorFlow listed, a malformed compute capability, no such call in this TensorFlow, a driver error
            d = {}
        cc = d.get("compute_capability")
        out.append({"name": g.name, "device_name": d.get("device_name"),
                    "compute_capability": ".".join(map(str, cc)) if cc else None})
    return out


def _gradient_registry() -> dict | None:
    """TensorFlow's gradient-function registry (a private dict; None where a version moved it)."""
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry  # noqa: SLF001 - no public way to unregister
    except (ImportError, AttributeError):
        return None
    return registry if isinstance(registry, dict) else None
