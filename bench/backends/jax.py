"""The JAX backend: XLA CPU flags, jax.devices(), keras.distribution.DataParallel, jax.jit.

Threads: XLA has no flag that sets its CPU thread-pool size (jax 0.10: the pool is sized by the
process's CPU affinity). ``intra_op_parallelism_threads=N``, often suggested, is not an XLA flag:
alone in ``XLA_FLAGS`` it is read as a file name and aborts the process; after another flag it is
accepted and changes nothing (measured: the same threads stay busy). What can be set is set: at
one thread ``--xla_cpu_multi_thread_eigen=false`` (Eigen's intra-op pool off; measured on jax
0.10.2, a large matmul still keeps 3 threads busy with it), and OMP/MKL/OpenBLAS everywhere. The
worker records what is in place, not what was wished: the flag as XLA reads it and, as
``intra_op_threads``, the pool size the affinity gives. Flags the user put in ``XLA_FLAGS`` are
kept (merged flag by flag).

Devices: ``cpu`` sets ``JAX_PLATFORMS=cpu`` (and the device strategy hides GPUs); ``gpu`` sets
``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (JAX otherwise takes 75 % of the GPU's memory and a second
worker on it fails); logical CPU devices for ``data_parallel`` come from
``--xla_force_host_platform_device_count=N``.
"""

from __future__ import annotations

import os
from importlib import metadata
from typing import Any, Callable

from bench.backends.base import Backend, Scope, flag_value

EIGEN_FLAG = "--xla_cpu_multi_thread_eigen"
DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
_CUDA_PLUGINS = ("jax-cuda13-plugin", "jax-cuda12-plugin")

_PROBE = (
    "import json, jax, jaxlib\n"
    "try:\n"
    "    gpus = [str(d) for d in jax.devices('gpu')]\n"
    "except RuntimeError:\n"
    "    gpus = []\n"
    "from importlib import metadata\n"
    "plugins = []\n"
    f"for p in {_CUDA_PLUGINS!r}:\n"
    "    try:\n"
    "        plugins.append(p + ' ' + metadata.version(p))\n"
    "    except metadata.PackageNotFoundError:\n"
    "        pass\n"
    "print(json.dumps({'gpus': gpus, 'build': 'jaxlib ' + jaxlib.__version__ + ', ' +"
    " (', '.join(plugins) or 'no CUDA plugin')}))\n"
)


def _affinity() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class JaxBackend(Backend):
    """Keras on JAX."""

    name = "jax"
    label = "JAX"
    module = "jax"
    dist = "jax"
    extra = "jax"
    compiler = "jax.jit"
    gpu_hint = "pip install 'jax[cuda12]'"
    non_nvidia_gpu_packages = ("jax-metal", "jax-rocm60-plugin")
    env_vars = ("XLA_FLAGS", "JAX_PLATFORMS", "XLA_PYTHON_CLIENT_PREALLOCATE")
    flag_vars = ("XLA_FLAGS",)

    def thread_env(self, intra: int, inter: int, parent=None) -> dict[str, str]:
        env = super().thread_env(intra, inter, parent)
        if intra == 1:
            env["XLA_FLAGS"] = f"{EIGEN_FLAG}=false"
        return env

    def device_env(self, kind: str, parent=None, logical_cpus: int | None = None) -> dict[str, str]:
        if kind == "gpu":
            return {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
        env = {"JAX_PLATFORMS": "cpu"}
        if logical_cpus:
            env["XLA_FLAGS"] = f"{DEVICE_COUNT_FLAG}={int(logical_cpus)}"
        return env

    # ------------------------------------------------------------ worker side

    def import_framework(self) -> Any:
        import jax
        import keras  # noqa: F401 - imported with the framework, so the import time counts both

        return jax

    def apply_threads(self, env=None) -> dict[str, Any]:
        env = os.environ if env is None else env
        flags = env.get("XLA_FLAGS", "")
        eigen = flag_value(flags, EIGEN_FLAG)
        pool = _affinity()
        return {"intra_op_threads": pool, "inter_op_threads": 0,
                "xla_cpu_multi_thread_eigen": str(eigen).lower() not in ("false", "0"),
                "omp_num_threads": env.get("OMP_NUM_THREADS"),
                "source": "XLA CPU pool = the process's CPU affinity (no XLA flag sets it); "
                          f"{EIGEN_FLAG} as XLA_FLAGS sets it"}

    def facts(self) -> dict[str, Any]:
        import jax

        physical = []
        for platform in ("cpu", "gpu"):
            try:
                physical += [f"{d.platform.upper()}:{d}" for d in jax.devices(platform)]
            except RuntimeError:  # that platform is not initialised here (JAX_PLATFORMS, no plugin)
                continue
        return {"version": jax.__version__, "build": self._build_info(),
                "visible_devices": [str(d) for d in jax.devices()], "physical_devices": physical}

    @staticmethod
    def _build_info() -> dict:
        """jaxlib's version, the CUDA plugin installed (if any) and the CUDA / cuDNN versions it reports."""
        import jax
        import jaxlib

        info: dict[str, Any] = {"jaxlib": jaxlib.__version__, "default_backend": jax.default_backend()}
        for plugin in _CUDA_PLUGINS:
            try:
                info["cuda_plugin"] = f"{plugin} {metadata.version(plugin)}"
                break
            except metadata.PackageNotFoundError:
                continue
        try:
            from jax._src.lib import cuda_versions  # None without the CUDA plugin
        except ImportError:  # a jax without this private module: the plugin version above stands
            cuda_versions = None
        if cuda_versions is not None and jax.default_backend() == "gpu":
            try:
                info["cuda_version"] = str(cuda_versions.cuda_runtime_get_version())
                info["cudnn_version"] = str(cuda_versions.cudnn_get_version())
            except (AttributeError, RuntimeError):  # build facts are optional
                pass
        info["is_cuda_build"] = "cuda_plugin" in info
        return info

    def gpus(self) -> list[str]:
        import jax

        try:
            return [str(d) for d in jax.devices("gpu")]
        except RuntimeError:  # no GPU platform in this process
            return []

    def setup_cpu(self) -> dict:
        import jax

        return {"kind": "cpu", "devices": [str(d) for d in jax.devices()], "platform": jax.default_backend()}

    def _gpus_or_refuse(self, what: str) -> list:
        import jax

        gpus = []
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:  # no GPU platform: refused below
            pass
        if not gpus or jax.default_backend() != "gpu":
            raise RuntimeError(
                "no GPU visible to JAX in this worker "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); {what}"
            )
        return gpus

    def setup_gpu(self) -> dict:
        gpus = self._gpus_or_refuse("refusing to run a 'gpu' strategy on the CPU")
        return {"kind": "gpu", "devices": [str(d) for d in gpus], "gpus": _gpu_details(gpus)}

    def multi_device(self, logical_cpus: int | None) -> Scope:
        """``keras.distribution.DataParallel`` over N logical CPU devices or the visible GPUs, set for the
        whole worker (``set_distribution``: ``fit``/``predict`` read it when they run)."""
        import jax
        import keras

        if logical_cpus:
            found = jax.devices("cpu")
            if len(found) != int(logical_cpus):
                raise RuntimeError(
                    f"JAX sees {len(found)} CPU device(s), not the {logical_cpus} asked "
                    f"(XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r})"
                )
            kind, details, devices = "cpu-logical", {}, keras.distribution.list_devices("cpu")
        else:
            gpus = self._gpus_or_refuse("use data_parallel:cpuN for logical CPU devices")
            kind, details, devices = "gpu", {"gpus": _gpu_details(gpus)}, keras.distribution.list_devices("gpu")
        dist = keras.distribution.DataParallel(devices=devices)
        keras.distribution.set_distribution(dist)
        replicas = int(dist.device_mesh.shape[0])
        return Scope(scope=dist.scope, replicas=replicas,
                     info={"kind": kind, "devices": list(devices), "strategy": type(dist).__name__,
                           "replicas": replicas, **details})

    def compile_predict(self, model, x) -> Callable:
        """``jax.jit`` of ``model.stateless_call``, given the model's variables at each call.

        The variables' current arrays are read on every call (a list per call, as Keras's own jitted
        steps do): Keras's jax trainer donates and replaces them, so arrays kept from compile time
        would be deleted by the next ``predict_on_batch``/``fit``.
        """
        import jax
        import numpy as np

        @jax.jit
        def forward(trainable, non_trainable, batch):
            outputs, _ = model.stateless_call(trainable, non_trainable, batch, training=False)
            return outputs

        def call(batch):
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            return np.asarray(forward(trainable, non_trainable, batch))

        return call

    def gpu_probe_code(self) -> str:
        return _PROBE


def _gpu_details(gpus) -> list[dict]:
    return [{"name": str(d), "device_name": getattr(d, "device_kind", None),
             "compute_capability": getattr(d, "compute_capability", None)} for d in gpus]
