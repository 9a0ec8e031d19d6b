"""Bot4 settings, composed once at start-up from ``BOT4_*`` environment variables and an
optional TOML config file.

Nested fields use ``__``: ``BOT4_KAFKA__BOOTSTRAP=127.0.0.1:29092``,
``BOT4_POSTGRES__PASSWORD=...``. ``BOT4_CONFIG_FILE=path.toml`` adds a file whose tables mirror
the sections (``[kafka]``, ``[postgres]``...). Precedence: explicit arguments, then the
environment, then the file, then the defaults. A bad value fails here, at start-up, naming the
field and the reason (:func:`load_settings` turns pydantic's error into a
:class:`~core.errors.ConfigError`).
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.config import StrictConfig
from core.errors import ConfigError
from models.config import ModelsConfig
from risk.config import RiskLimits

Mode = Literal["backtest", "paper", "shadow", "testnet", "live"]


class KafkaSettings(StrictConfig):
    """Where the broker is and how Bot4 produces to it."""

    bootstrap: str = "127.0.0.1:29092"
    client_id: str = "bot4"
    #: librdkafka batching: larger batches raise throughput, cost a little latency.
    linger_ms: int = Field(default=20, ge=0, le=1000)
    batch_size: int = Field(default=1_000_000, ge=1)
    compression: Literal["none", "lz4", "zstd", "snappy", "gzip"] = "lz4"
    topics_file: Path | None = None
    #: Prepended to every topic name (isolates tests or tenants sharing one broker).
    topic_prefix: str = ""

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @field_validator("bootstrap")
    @classmethod
    def _host_port(cls, value: str) -> str:
        for part in value.split(","):
            host, sep, port = part.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"bootstrap entry {part!r} is not host:port")
        return value


class PostgresSettings(StrictConfig):
    """PostgreSQL (TimescaleDB where the extension exists) holding the history."""

    host: str = "127.0.0.1"
    port: int = Field(default=25432, ge=1, le=65535)
    dbname: str = "bot4"
    user: str = "postgres"
    password: SecretStr = SecretStr("")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "disable"

    def conninfo(self) -> str:
        """libpq connection string (the password is included: never log it)."""
        parts = {
            "host": self.host,
            "port": str(self.port),
            "dbname": self.dbname,
            "user": self.user,
            "sslmode": self.sslmode,
        }
        if self.password.get_secret_value():
            parts["password"] = self.password.get_secret_value()
        return " ".join(f"{k}={v}" for k, v in parts.items())


class RedisSettings(StrictConfig):
    """Redis, Feast's online store outside the embedded demo."""

    host: str = "127.0.0.1"
    port: int = Field(default=26379, ge=1, le=65535)
    password: SecretStr = SecretStr("")


class ObservabilitySettings(StrictConfig):
    """The Prometheus server that scrapes every flow's /metrics (``bot4 status`` queries it)."""

    prometheus_url: str = "http://127.0.0.1:29090"
    #: Seconds ``bot4 status`` waits for one Prometheus query.
    query_timeout_s: float = Field(default=3.0, gt=0, le=60)

    @field_validator("prometheus_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"prometheus_url {value!r} must start with http:// or https://")
        return value.rstrip("/")


class QualitySettings(StrictConfig):
    """Per-event contracts applied in the flows before anything is stored."""

    #: Instrument keys (``exchange:SYMBOL``) accepted; empty means any key is accepted.
    known_symbols: tuple[str, ...] = (
        "binance:BTC/USDT",
        "binance:ETH/USDT",
        "binanceusdm:BTC/USDT:USDT",
        "binance:XRP/ETH",
        "binance:ETH/BTC",
        "ftx:BTC/USD:USD",
    )
    #: How far back in event time a trade may arrive (per key) before it is out of order.
    max_backwards_ms: int = Field(default=5_000, ge=0)
    #: How many recent trade ids per key are remembered to catch duplicates.
    dedup_window: int = Field(default=100_000, ge=1)


class ExchangeSettings(StrictConfig):
    """Exchange access. Keys are only read when a live or testnet venue is configured."""

    api_key: SecretStr = SecretStr("")
    api_secret: SecretStr = SecretStr("")
    testnet: bool = True
    live_trading_enabled: bool = False
    #: Point ccxt's REST calls at this origin instead of the exchange's (a local mirror or proxy;
    #: tests). None: the exchange itself.
    api_url_override: str | None = None


class TradingSettings(StrictConfig):
    """What the trading flow trades: the account, its strategies, its bars and its starting cash.

    ``markets_dir`` holds the exchange's cached rules (``bot4 markets sync``); the paper venue and
    the risk gate read precision, lot limits, minimum notional and fees from there.
    """

    account: str = Field(default="paper", min_length=1)
    strategies: tuple[str, ...] = ("ema_cross_rsi",)
    exchange: str = "binance"
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
    timeframe: str = "1m"
    bars_from: Literal["trades", "candles"] = "trades"
    quote_currency: str = "USDT"
    initial_cash: Decimal = Field(default=Decimal(10_000), gt=0)
    markets_dir: Path = Path("data/markets")
    #: Online models whose predictions strategies such as ``model_fusion`` read (none by default:
    #: the EMA-cross rule needs no model). E.g. BOT4_TRADING__MODELS__MODELS='["logreg"]'.
    models: ModelsConfig = ModelsConfig(models=())
    #: Market events per source batch (smaller: lower latency and finer recovery epochs).
    batch_size: int = Field(default=1000, ge=1)
    #: Where approved orders are executed: ``inprocess`` (the trading flow's own order manager, one
    #: process) or ``kafka`` (published on ``orders.v1`` for the execution flow, ``bot4 execute``,
    #: whose order events and fills come back on ``fills.v1``). Both flows must use the same value.
    execution: Literal["inprocess", "kafka"] = "inprocess"
    #: With several symbols, the account takes their records in event-time order (so one worker,
    #: several workers and several processes decide alike); a record waits at most this long (ms)
    #: for a quiet symbol. 0 takes records in arrival order (lowest latency, order not reproducible).
    merge_hold_ms: int = Field(default=250, ge=0)
    #: Market events each source partition hands the flow per second at most (catching up after
    #: a restart or a backlog): keeps Bytewax's epochs, and recovery snapshots, closing every
    #: second or so instead of one epoch swallowing the whole backlog. Above the flow's own
    #: throughput it costs nothing. 0: no cap.
    max_events_per_s: int = Field(default=3000, ge=0)


class StorageSettings(StrictConfig):
    """How the PostgreSQL sink batches its writes."""

    batch_rows: int = Field(default=5_000, ge=1)
    flush_interval_ms: int = Field(default=500, ge=1)


class ConsoleSettings(StrictConfig):
    """The operator console (``bot4 serve``): where it listens and who may send commands.

    Reading is open to whoever reaches the port, so it binds 127.0.0.1 unless told otherwise.
    Commands (kill switch, reset) need ``Authorization: Bearer <token>``; without a token the
    console is read-only whatever ``read_only`` says.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=29200, ge=1, le=65535)
    #: Bearer token for commands; None refuses every command. Its length (at least 16) is checked
    #: by ``bot4 serve``, not here, because a validation error would echo the value.
    token: SecretStr | None = None
    #: Refuse every command even when a token is configured.
    read_only: bool = False
    #: Backtest reports: one folder per run holding report.json and report.html.
    reports_dir: Path = Path("out/reports")

    @property
    def commands_enabled(self) -> bool:
        return self.token is not None and not self.read_only


class Bot4Settings(BaseSettings):
    """Every setting of a Bot4 process. Frozen: read once, passed down."""

    model_config = SettingsConfigDict(
        env_prefix="BOT4_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        validate_default=True,
    )

    mode: Mode = "paper"
    data_dir: Path = Path("out")
    metrics_port: int = Field(default=29100, ge=0, le=65535)
    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    redis: RedisSettings = RedisSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    quality: QualitySettings = QualitySettings()
    exchange: ExchangeSettings = ExchangeSettings()
    storage: StorageSettings = StorageSettings()
    trading: TradingSettings = TradingSettings()
    #: The risk gate's limits (risk/config.py): BOT4_RISK__MAX_POSITION_PCT=0.01 and so on.
    risk: RiskLimits = RiskLimits()
    console: ConsoleSettings = ConsoleSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFileSource(settings_cls))


class _TomlFileSource(PydanticBaseSettingsSource):
    """Values from the TOML file named by ``BOT4_CONFIG_FILE`` (absent: contributes nothing)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data().get(field_name), field_name, False

    def _data(self) -> dict[str, Any]:
        path = os.environ.get("BOT4_CONFIG_FILE")
        if not path:
            return {}
        try:
            with open(path, "rb") as fh:
                return tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"BOT4_CONFIG_FILE={path!r}: file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"BOT4_CONFIG_FILE={path!r}: not valid TOML: {exc}") from None

    def __call__(self) -> dict[str, Any]:
        return self._data()


#: Words in a setting's name that mark its value as a secret (never echoed in an error).
_SECRET_WORDS = ("key", "secret", "password", "token", "passphrase")


def _shown_input(err: Any) -> str:
    """What a validation error may echo of the bad value: scalars of ordinary settings only.

    A secret's value is never shown, nor is the value of an unknown setting (``API_KY`` is a typo
    of a key's name, so its value is a key), nor a whole section (it may hold the keys).
    """
    names = [str(p).lower() for p in err["loc"]]
    value = err.get("input")
    if err.get("type") == "extra_forbidden" or any(w in n for n in names for w in _SECRET_WORDS):
        return "value hidden"
    if not isinstance(value, str | int | float | bool) and value is not None:
        return f"a {type(value).__name__}, not shown"
    return f"got {value!r}"


def load_settings(**overrides: Any) -> Bot4Settings:
    """Build the settings or raise :class:`ConfigError` naming each bad field and why.

    The error echoes a bad value only where it cannot be a secret:

    >>> import os
    >>> os.environ["BOT4_EXCHANGE__API_KY"] = "AK-not-a-real-key"
    >>> try:
    ...     load_settings()
    ... except ConfigError as exc:
    ...     print(str(exc).splitlines()[0])
    invalid Bot4 settings: exchange.api_ky: Extra inputs are not permitted (value hidden)
    >>> del os.environ["BOT4_EXCHANGE__API_KY"]
    """
    try:
        return Bot4Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} ({_shown_input(err)})" for err in exc.errors()
        )
        raise ConfigError(f"invalid Bot4 settings: {problems}") from None


#: The limits an account must set itself before real money trades: both bound, in the quote
#: currency, what one order and the whole account can put at stake. The defaults suit paper runs.
LIVE_REQUIRED_LIMITS = ("max_order_notional", "max_gross_exposure")


def require_live_limits(settings: Bot4Settings) -> None:
    """Refuse live trading unless the account's own limits are configured (not the defaults).

    Checked after the venue's own refusals (the explicit setting, testnet off, both keys), so the
    operator learns the missing pieces in that order.

    >>> require_live_limits(Bot4Settings(mode="paper"))  # only live needs them
    >>> try:
    ...     require_live_limits(Bot4Settings(mode="live", risk={"max_order_notional": "500"}))
    ... except ConfigError as exc:
    ...     print(str(exc).split(";")[0])
    live trading refused: the account's limits BOT4_RISK__MAX_GROSS_EXPOSURE are not set
    """
    if settings.mode != "live":
        return
    risk = settings.risk
    missing = [
        f"BOT4_RISK__{name.upper()}"
        for name in LIVE_REQUIRED_LIMITS
        if name not in risk.model_fields_set or getattr(risk, name) is None
    ]
    if missing:
        raise ConfigError(
            f"live trading refused: the account's limits {' and '.join(missing)} are not set; the defaults "
            "are for paper runs and do not bound real money (set them in the quote currency)"
        )


def masked_dump(settings: Bot4Settings) -> dict[str, Any]:
    """Effective settings as plain data with every secret shown as ``**********``."""
    return settings.model_dump(mode="json")
