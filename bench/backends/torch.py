"""The PyTorch backend: torch thread pools, torch.cuda, torch.compile.

Threads: ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` (read on import) and, in the worker,
``torch.set_num_threads`` / ``torch.set_num_interop_threads`` (the inter-op count travels in
``XPUBENCH_TORCH_INTEROP_THREADS``: torch reads no variable for it); the hello records what
``torch.get_num_threads`` / ``get_num_interop_threads`` report. No multi-device strategy here
(Keras's distribution API is JAX-only). The compiled call is ``torch.compile``; where it does not
work (no C compiler, a platform Inductor does not support) it raises :class:`Unavailable` with the
reason and the trial records it.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from bench.backends.base import Backend, Unavailable

INTEROP_VAR = "XPUBENCH_TORCH_INTEROP_THREADS"

_PROBE = (
    "import json, torch\n"
    "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
    "gpus = ['cuda:%d %s' % (i, torch.cuda.get_device_name(i)) for i in range(n)]\n"
    "build = ('CUDA %s build' % torch.version.cuda) if torch.version.cuda else 'a build without CUDA'\n"
    "print(json.dumps({'gpus': gpus, 'build': build}))\n"
)


class TorchBackend(Backend):
    """Keras on PyTorch."""

    name = "torch"
    label = "PyTorch"
    module = "torch"
    dist = "torch"
    extra = "torch"
    compiler = "torch.compile"
    gpu_hint = "install a CUDA build of torch (https://pytorch.org/get-started/locally/)"
    env_vars = (INTEROP_VAR,)

    def thread_env(self, intra: int, inter: int, parent=None) -> dict[str, str]:
        return {**super().thread_env(intra, inter, parent), INTEROP_VAR: str(inter)}

    # ------------------------------------------------------------ worker side

    def import_framework(self) -> Any:
        import torch
        import keras  # noqa: F401 - imported with the framework, so the import time counts both

        return torch

    def apply_threads(self, env=None) -> dict[str, Any]:
        import torch

        env = os.environ if env is None else env
        intra, inter = env.get("OMP_NUM_THREADS"), env.get(INTEROP_VAR)
        if intra:
            torch.set_num_threads(int(intra))
        if inter:
            try:
                torch.set_num_interop_threads(int(inter))
            except RuntimeError:  # inter-op work already ran (a Ray actor reused): the count in use is recorded
                pass
        return {"intra_op_threads": int(torch.get_num_threads()), "inter_op_threads": int(torch.get_num_interop_threads()),
                "source": "torch.get_num_threads / get_num_interop_threads"}

    def facts(self) -> dict[str, Any]:
        import torch

        gpus = self.gpus()
        return {"version": torch.__version__, "build": self._build_info(torch),
                "visible_devices": ["cpu"] + gpus, "physical_devices": ["CPU:cpu"] + [f"GPU:{g}" for g in gpus]}

    @staticmethod
    def _build_info(torch) -> dict:
        """CUDA / cuDNN / HIP versions torch was built with (None where it was not)."""
        cudnn = None
        try:
            cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        except (AttributeError, RuntimeError):  # build facts are optional
            pass
        return {"cuda_version": torch.version.cuda, "cudnn_version": None if cudnn is None else str(cudnn),
                "is_cuda_build": torch.version.cuda is not None, "hip_version": getattr(torch.version, "hip", None)}

    def gpus(self) -> list[str]:
        import torch

        if not torch.cuda.is_available():
            return []
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]

    def setup_cpu(self) -> dict:
        import torch

        if torch.cuda.is_available():  # CUDA_VISIBLE_DEVICES was not honoured: Keras would pick the GPU
            raise RuntimeError("PyTorch sees a GPU in a 'cpu' worker (CUDA_VISIBLE_DEVICES not honoured); "
                               "refusing to measure the GPU as the CPU")
        return {"kind": "cpu", "devices": ["cpu"]}

    def setup_gpu(self) -> dict:
        import torch

        gpus = self.gpus()
        if not gpus:
            raise RuntimeError(
                "no GPU visible to PyTorch in this worker "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                "refusing to run a 'gpu' strategy on the CPU"
            )
        details = []
        for i in range(len(gpus)):
            major, minor = torch.cuda.get_device_capability(i)
            details.append({"name": gpus[i], "device_name": torch.cuda.get_device_name(i),
                            "compute_capability": f"{major}.{minor}"})
        return {"kind": "gpu", "devices": gpus, "gpus": details}

    def compile_predict(self, model, x) -> Callable:
        """``torch.compile`` of ``model(t, training=False)`` (dynamic batch), compiled here.

        Inductor compiles on the first call, and again for the first batch of more than one row
        (torch specialises a batch of 1): both happen here, on ``x[:1]`` and ``x[:2]``, so a failure
        is raised here and the compile time is the caller's set-up, not its timed passes.

        Raises:
            Unavailable: torch.compile failed on this machine (the first line of why).
        """
        import keras
        import torch

        compiled = torch.compile(lambda t: model(t, training=False), dynamic=True)

        def call(batch):
            with torch.no_grad():
                return keras.ops.convert_to_numpy(compiled(keras.ops.convert_to_tensor(batch)))

        try:
            for rows in sorted({1, min(2, len(x))}):
                call(x[:rows])
        except Exception as exc:  # noqa: BLE001 - any failure of the compiler stack (no C compiler,
            # Inductor/Triton errors, an unsupported platform) is the reason the mode is unavailable here
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise Unavailable(f"torch.compile does not work here ({type(exc).__name__}: {first})") from exc
        return call

    def gpu_probe_code(self) -> str:
        return _PROBE
