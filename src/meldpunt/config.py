"""Settings, from (weakest to strongest) defaults, a TOML file, ``MELDPUNT_*`` environment variables
and keyword arguments.

The TOML file is the one named by ``MELDPUNT_CONFIG``, else ``./meldpunt.toml`` when it exists.
Its keys are the field names below, at the top level::

    database_url = "postgresql+psycopg://meldpunt@db/meldpunt"
    pdq_min_quality = 60

Relative paths are relative to the working directory. Code reads settings through
``get_settings()``; tests call ``reset_settings()`` after changing the environment.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "ConfigError",
    "Settings",
    "config_file",
    "get_settings",
    "load_settings",
    "reset_settings",
]

ENV_PREFIX = "MELDPUNT_"
CONFIG_ENV_VAR = "MELDPUNT_CONFIG"
DEFAULT_CONFIG_FILE = Path("meldpunt.toml")
DEFAULT_DATA_DIR = Path("var")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ConfigError(ValueError):
    """The configuration is unusable; the message names the setting and where it came from."""


def config_file() -> Path | None:
    """The TOML file to read, or None. A file named by ``MELDPUNT_CONFIG`` must exist."""
    named = os.environ.get(CONFIG_ENV_VAR)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV_VAR}={named}: no such file")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _sqlite_url(path: Path) -> str:
    # "sqlite:///var/x.db" is a relative path but reads like /var; spell relative ones "./var/x.db".
    shown = path.as_posix() if path.is_absolute() else f"./{path.as_posix()}"
    return f"sqlite:///{shown}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means SQLite at <data_dir>/meldpunt.db.",
    )
    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Where local state is kept.")
    pdq_min_quality: int = Field(
        default=50,
        ge=0,
        le=100,
        description="PDQ hashes with a lower quality are kept but marked low quality, not matched.",
    )
    max_image_pixels: int = Field(
        default=200_000_000,
        gt=0,
        description="Images with more pixels are refused (decompression bombs).",
    )
    max_image_bytes: int = Field(
        default=512 * 1024 * 1024, gt=0, description="Files larger than this are refused."
    )
    exif_transpose: bool = Field(
        default=True, description="Apply the EXIF orientation before hashing."
    )
    pdq_trim: bool = Field(
        default=True,
        description="Also hash a picture without its uniform border (letterboxing, padding, "
        "frames), as a second PDQ hash.",
    )
    match_orientation_estimates: bool = Field(
        default=True,
        description="Also search the 7 orientations estimated from a PDQ hash sent alone "
        "(a check can say otherwise with 'orientations').",
    )
    match_estimated_threshold: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="The most bits an estimated orientation may be from an entry (empty: the "
        "set's threshold).",
    )
    match_features: bool = Field(
        default=True,
        description="Look up pictures that meldpunt hashes (file checks, fetches, match) by "
        "their local features too, against entries made from pictures.",
    )
    match_feature_min_inliers: int = Field(
        default=15,
        ge=8,
        le=128,
        description="Local features that must agree on one placement for a verified match.",
    )
    match_feature_radius: int = Field(
        default=32, ge=8, le=64, description="Bits between two local features that correspond."
    )
    match_feature_min_votes: int = Field(
        default=6,
        ge=2,
        le=128,
        description="Features that must find an entry before it is checked.",
    )
    log_level: LogLevel = "INFO"
    hit_recheck_after_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 366,
        allow_inf_nan=False,
        description="A hit with a public URL is re-fetched this many hours after it was made.",
    )
    max_upload_bytes: int = Field(
        default=50 * 1024 * 1024, gt=0, description="The service refuses larger uploaded files."
    )
    max_upload_files: int = Field(default=100, gt=0, le=10_000, description="Files per check.")
    max_upload_pixels: int = Field(
        default=50_000_000,
        gt=0,
        description="The service refuses uploaded pictures with more pixels (the command line's "
        "limit is max_image_pixels).",
    )
    max_body_bytes: int | None = Field(
        default=None,
        gt=0,
        description="The service refuses larger JSON bodies; unset: derived from the largest "
        "valid check request (10 MiB).",
    )
    max_multipart_bytes: int = Field(
        default=256 * 1024 * 1024, gt=0, description="The service refuses larger file uploads."
    )
    decode_budget_bytes: int = Field(
        default=1024 * 1024 * 1024,
        gt=0,
        description="Memory the service lends to decoding pictures, all requests together; past "
        "it, uploads are answered 503 with Retry-After.",
    )
    max_parallel_parses: int = Field(
        default=2, gt=0, le=64, description="Large JSON bodies the service parses at once."
    )
    rate_per_second: float = Field(
        default=500.0,
        ge=0,
        allow_inf_nan=False,
        description="Requests a second per API key (0: no limit); bursts up to rate_burst.",
    )
    rate_burst: int = Field(default=1_000, gt=0)
    key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        allow_inf_nan=False,
        description="How long the service trusts a key check (a revoked key works that long).",
    )
    key_cache_entries: int = Field(
        default=10_000,
        gt=0,
        description="Keys the service remembers; when full, the least recently used goes.",
    )
    auth_failures_per_minute: float = Field(
        default=60.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "Failed authentications a client address may have a minute, in bursts of as many "
            "(0: no limit); past that it gets 429 with Retry-After."
        ),
    )
    poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        allow_inf_nan=False,
        description="How often the service applies registry changes to its index.",
    )
    hit_outcome_due_hours: float = Field(
        default=72.0,
        gt=0,
        le=24 * 366,
        allow_inf_nan=False,
        description="A hit without an outcome after this many hours is overdue.",
    )
    metrics_token: str | None = Field(
        default=None,
        min_length=16,
        description="GET /metrics needs 'Authorization: Bearer <this>'; unset: loopback only.",
    )
    metrics_org_labels: bool = Field(
        default=False, description="Label /metrics counters by organisation name."
    )
    probing_min_close: int = Field(
        default=24,
        ge=2,
        description="Matched PDQ checks of a key close to one another that count as probing.",
    )
    probing_min_edge: int = Field(
        default=16,
        ge=2,
        description="Matches of one entry at the edge of its threshold that count as probing.",
    )
    probing_throttle_minutes: float = Field(
        default=60.0, gt=0, le=7 * 24 * 60, allow_inf_nan=False,
        description="How long a key suspected of probing is slowed down.",
    )  # fmt: skip
    probing_throttled_per_minute: float = Field(
        default=6.0, ge=0, allow_inf_nan=False,
        description="Requests a minute a key suspected of probing may make meanwhile.",
    )  # fmt: skip

    fetch_allow_networks: list[str] = Field(
        default_factory=list,
        description=(
            "Networks (CIDR) inside the network that the fetcher may still reach, for example "
            "'127.0.0.0/8' for tests; every other private or special address is refused."
        ),
    )
    fetch_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, allow_inf_nan=False, description="Per connect and read."
    )
    fetch_total_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="A whole fetch (connect, TLS, headers, body, redirects) ends after this long.",
    )
    fetch_max_bytes: int = Field(
        default=20 * 1024 * 1024, gt=0, description="The fetcher reads at most this much body."
    )
    fetch_ca_file: str | None = Field(
        default=None,
        description=(
            "A PEM file of the certificate authorities the fetcher trusts for https, instead of "
            "the system's (an organisation's own CA, a test CA)."
        ),
    )

    resolver_hosts_file: Path | None = Field(
        default=None,
        description=(
            "A name table (lines of 'address name...', like /etc/hosts) the resolver reads "
            "before DNS; the simulation writes one."
        ),
    )

    # --- the hotline: intake, grading, notice-and-takedown ---
    hotline_name: str = Field(
        default="meldpunt", min_length=1, max_length=200,
        description="Who notifies: the name notices and receipts are signed with.",
    )  # fmt: skip
    hotline_country: str = Field(
        default="NL", pattern=r"^[A-Z]{2}$",
        description="The hotline's country: a hoster abroad gets a forward record, not a notice.",
    )  # fmt: skip
    hotline_set: str = Field(
        default="hotline", min_length=1, max_length=200,
        description="The registry set that new material graded illegal is added to.",
    )  # fmt: skip
    hotline_second_analyst: bool = Field(
        default=False, description="Grades of new material need a second analyst to agree."
    )
    hotline_max_children: int = Field(
        default=50, ge=0, le=1000,
        description="Pictures and videos of one reported page that become items of their own.",
    )  # fmt: skip
    hotline_fetch_attempts: int = Field(
        default=5, ge=1, le=100, description="Fetches of a new item before it is given up."
    )
    hotline_fetch_retry_minutes: float = Field(
        default=10.0, gt=0, allow_inf_nan=False,
        description="First wait before a failed fetch is tried again (doubling after).",
    )  # fmt: skip
    hotline_report_urls: int = Field(
        default=1000, ge=1, le=100_000, description="URLs one report (or API call) may name."
    )
    report_form_per_hour: float = Field(
        default=20.0, ge=0, allow_inf_nan=False,
        description="Reports an address may send through the public form an hour (0: no limit).",
    )  # fmt: skip
    public_url: str = Field(
        default="http://127.0.0.1:8000", max_length=500,
        description="Where the service is reached from outside: status and answer links use it.",
    )  # fmt: skip
    link_secret: str | None = Field(
        default=None, min_length=32,
        description=(
            "Key that signs the links in notices (hosters' answers); unset: one is made and "
            "kept in data_dir."
        ),
    )  # fmt: skip
    takedown_group_seconds: int = Field(
        default=120, ge=0, le=7 * 24 * 3600,
        description="An abuse contact's default grouping window: items ready in it share a notice.",
    )  # fmt: skip
    takedown_first_check_minutes: float = Field(
        default=15.0, gt=0, allow_inf_nan=False, description="First re-check after a notice."
    )
    takedown_check_minutes: float = Field(
        default=60.0, gt=0, allow_inf_nan=False, description="Re-checks of online items after that."
    )
    takedown_offline_misses: int = Field(
        default=3, ge=1, le=100, description="Consecutive misses that make an item offline."
    )
    takedown_miss_spacing_minutes: float = Field(
        default=3.0, ge=0, allow_inf_nan=False,
        description="Misses count only this far apart (the next check after a miss comes then).",
    )  # fmt: skip
    takedown_renotice_hours: float = Field(
        default=24.0, gt=0, allow_inf_nan=False,
        description="Still online this long after the last notice: a re-notice.",
    )  # fmt: skip
    takedown_escalation_hours: float = Field(
        default=24.0, gt=0, allow_inf_nan=False,
        description="Still online this long after the first notice: escalation to the authority.",
    )  # fmt: skip
    # --- the authority: orders, penalty payments, fines ---
    authority_name: str = Field(
        default="the authority", min_length=1, max_length=200,
        description="Who issues orders and fines: the name orders are signed with.",
    )  # fmt: skip
    authority_order_hours: float = Field(
        default=12.0, gt=0, allow_inf_nan=False,
        description="An order's deadline unless the authority gives a shorter one (hours).",
    )  # fmt: skip
    authority_max_order_hours: float = Field(
        default=12.0, gt=0, le=24 * 365, allow_inf_nan=False,
        description="The longest deadline an order may have (hours).",
    )  # fmt: skip
    authority_legal_basis: str = Field(
        default="the power to order the removal of online child sexual abuse material",
        min_length=1, max_length=2000,
        description="The legal basis an order states unless the authority gives another.",
    )  # fmt: skip
    authority_penalty_euros: float = Field(
        default=1000.0, ge=0, allow_inf_nan=False,
        description="Default penalty payment per period an order stays unmet (euros).",
    )  # fmt: skip
    authority_penalty_period_hours: float = Field(
        default=24.0, gt=0, allow_inf_nan=False,
        description="Default period of a penalty payment (hours).",
    )  # fmt: skip
    authority_penalty_cap_euros: float = Field(
        default=50000.0, ge=0, allow_inf_nan=False,
        description="Default cap on the penalty payments of one order (euros).",
    )  # fmt: skip
    authority_fine_max_share: float = Field(
        default=0.04, gt=0, le=1, allow_inf_nan=False,
        description="The largest share of a hoster's yearly turnover a fine may be.",
    )  # fmt: skip
    authority_fine_max_euros: float = Field(
        default=10_000_000.0, gt=0, allow_inf_nan=False,
        description="The largest fine when no turnover is recorded (euros).",
    )  # fmt: skip
    authority_objection_days: float = Field(
        default=42.0, gt=0, allow_inf_nan=False,
        description="Time a hoster has to object to a fine (days).",
    )  # fmt: skip

    # --- the public monitor ---
    monitor_name_after_order: bool = Field(
        default=True, description="A hoster that received an order is named on public pages."
    )
    monitor_name_min_notified: int = Field(
        default=100, ge=0,
        description=(
            "A hoster with at least this many URLs notified in a period is named in it (0: "
            "every hoster is named); below the rule it appears as an anonymous rank."
        ),
    )  # fmt: skip
    monitor_refresh_seconds: float = Field(
        default=1.0, gt=0, le=3600, allow_inf_nan=False,
        description="How often the worker brings the monitor's figures up to date.",
    )  # fmt: skip
    exchange_pull_seconds: float = Field(
        default=60.0, gt=0, le=86400, allow_inf_nan=False,
        description="How often the worker pulls each partner's feeds (docs/exchange.md).",
    )  # fmt: skip
    selfhash_max_pictures: int = Field(
        default=50, ge=1, le=10_000,
        description="The most pictures one self-hashing case may hold (docs/selfhash.md).",
    )  # fmt: skip
    selfhash_per_hour: int = Field(
        default=20, ge=1, le=1_000_000,
        description="Self-hashing requests one address may make per hour (new cases, additions, "
        "PIN attempts).",
    )  # fmt: skip

    # --- triage of seized collections ---
    triage_video_seconds_per_frame: float = Field(
        default=1.0, gt=0, le=3600, allow_inf_nan=False,
        description="A video's frames are sampled and PDQ-hashed this many seconds apart.",
    )  # fmt: skip
    triage_video_max_frames: int = Field(
        default=600, ge=1, le=100_000, description="Frames sampled from one video at most."
    )
    triage_video_known_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="A video is known when at least this share of its usable sampled frames "
        "match the registry (and at least triage_video_known_frames of them).",
    )
    triage_video_known_frames: int = Field(
        default=1, ge=1, description="Matching frames a known video needs at least."
    )
    triage_max_video_bytes: int = Field(
        default=8 * 1024**3, gt=0, description="Larger videos are digested, not decoded."
    )
    triage_max_member_bytes: int = Field(
        default=256 * 1024 * 1024, gt=0,
        description="An archive member is held in memory up to this size; larger ones are "
        "digested only and named too large.",
    )  # fmt: skip
    triage_max_expanded_bytes: int = Field(
        default=64 * 1024**3, gt=0,
        description="The archives of one source file expand to at most this many bytes "
        "(zip bombs stop here, named).",
    )  # fmt: skip
    triage_max_archive_members: int = Field(
        default=1_000_000, gt=0, description="Members of one source file's archives at most."
    )
    triage_max_archive_depth: int = Field(
        default=6, ge=1, le=64, description="Archives nested deeper are named, not opened."
    )
    triage_batch_files: int = Field(
        default=32, ge=1, le=10_000, description="Files a worker hashes per task."
    )

    smtp_host: str = Field(default="127.0.0.1", description="The mail relay notices go through.")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(
        default="meldpunt@localhost", max_length=320, description="Sender of notices."
    )
    smtp_starttls: bool = Field(default=False, description="Use STARTTLS with the relay.")
    smtp_username: str | None = Field(default=None)
    smtp_password: str | None = Field(default=None)
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, le=600, allow_inf_nan=False)
    smtp_retry_minutes: float = Field(
        default=5.0, gt=0, allow_inf_nan=False,
        description="First wait before a failed send is tried again (doubling, at most a day).",
    )  # fmt: skip
    smtp_attempts: int = Field(
        default=12, ge=1, le=1000, description="Sends of a notice before it is marked failed."
    )

    @field_validator("fetch_allow_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"{network!r} is not a network (CIDR): {exc}") from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _default_database_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("database_url"):
            data_dir = Path(data.get("data_dir") or DEFAULT_DATA_DIR)
            data = {**data, "database_url": _sqlite_url(data_dir / "meldpunt.db")}
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = config_file()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Fresh settings from all sources; ``overrides`` win over everything else."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed TOML file
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"cannot read configuration file {config_file()}: {exc}") from None


def _describe(exc: ValidationError) -> str:
    toml_file = config_file()
    lines = ["invalid meldpunt configuration:"]
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(settings)"
        if error["type"] == "extra_forbidden":
            lines.append(f"  {field}: unknown setting (in {toml_file or 'the arguments'})")
            continue
        where = f"{ENV_PREFIX}{field.upper()}"
        if toml_file is not None:
            where += f" or '{field}' in {toml_file}"
        shown = "" if error["type"] == "missing" else f" (got {error.get('input')!r})"
        lines.append(f"  {field}: {error['msg']}{shown} [set with {where}]")
    return "\n".join(lines)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()


def reset_settings() -> None:
    """Forget the cached settings so the next ``get_settings()`` reads the sources again."""
    get_settings.cache_clear()
