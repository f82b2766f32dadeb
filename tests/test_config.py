from pathlib import Path

import pytest

from meldpunt.config import ConfigError, Settings, get_settings, load_settings, reset_settings


def test_defaults_put_everything_under_the_data_dir(settings: Settings, tmp_path: Path):
    assert settings.data_dir == tmp_path / "var"
    assert settings.database_url == f"sqlite:///{tmp_path}/var/meldpunt.db"
    assert settings.pdq_min_quality == 50
    assert settings.max_image_pixels == 200_000_000
    assert settings.max_image_bytes == 512 * 1024 * 1024
    assert settings.exif_transpose is True
    assert settings.log_level == "INFO"


def test_without_a_data_dir_the_database_is_in_dot_var(settings, monkeypatch):
    monkeypatch.delenv("MELDPUNT_DATA_DIR")
    assert load_settings().database_url == "sqlite:///./var/meldpunt.db"


def test_environment_overrides_defaults(settings, monkeypatch):
    monkeypatch.setenv("MELDPUNT_PDQ_MIN_QUALITY", "70")
    monkeypatch.setenv("MELDPUNT_DATABASE_URL", "postgresql+psycopg://meldpunt@db/meldpunt")
    monkeypatch.setenv("MELDPUNT_EXIF_TRANSPOSE", "false")
    monkeypatch.setenv("MELDPUNT_LOG_LEVEL", "debug")
    loaded = load_settings()
    assert loaded.pdq_min_quality == 70
    assert loaded.database_url == "postgresql+psycopg://meldpunt@db/meldpunt"
    assert loaded.exif_transpose is False
    assert loaded.log_level == "DEBUG"


def test_toml_file_is_read_and_the_environment_wins_over_it(settings, tmp_path, monkeypatch):
    config = tmp_path / "site.toml"
    config.write_text('pdq_min_quality = 80\nmax_image_pixels = 1000\ndata_dir = "/srv/meldpunt"\n')
    monkeypatch.setenv("MELDPUNT_CONFIG", str(config))
    monkeypatch.setenv("MELDPUNT_MAX_IMAGE_PIXELS", "2000")
    monkeypatch.delenv("MELDPUNT_DATA_DIR")
    loaded = load_settings()
    assert loaded.pdq_min_quality == 80
    assert loaded.max_image_pixels == 2000
    assert loaded.data_dir == Path("/srv/meldpunt")
    assert loaded.database_url == "sqlite:////srv/meldpunt/meldpunt.db"


def test_meldpunt_toml_in_the_working_directory_is_found(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("MELDPUNT_CONFIG")
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "meldpunt.toml").write_text("pdq_min_quality = 65\n")
    monkeypatch.chdir(workdir)
    assert load_settings().pdq_min_quality == 65


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PDQ_MIN_QUALITY", "101", "less than or equal to 100"),
        ("PDQ_MIN_QUALITY", "-1", "greater than or equal to 0"),
        ("MAX_IMAGE_PIXELS", "0", "greater than 0"),
        ("MAX_IMAGE_BYTES", "lots", "valid integer"),
        ("LOG_LEVEL", "chatty", "DEBUG"),
    ],
)
def test_invalid_values_name_the_setting(settings, monkeypatch, name, value, message):
    monkeypatch.setenv(f"MELDPUNT_{name}", value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert f"MELDPUNT_{name}" in str(raised.value)
    assert message in str(raised.value)


def test_unknown_or_broken_toml_is_an_error(settings, tmp_path, monkeypatch):
    config = tmp_path / "site.toml"
    monkeypatch.setenv("MELDPUNT_CONFIG", str(config))
    config.write_text("pdq_min_qualty = 60\n")
    with pytest.raises(ConfigError, match="pdq_min_qualty: unknown setting"):
        load_settings()
    config.write_text("pdq_min_quality = \n")
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_settings()


def test_a_named_config_file_must_exist(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("MELDPUNT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()


def test_get_settings_is_cached_until_reset(settings, monkeypatch):
    assert get_settings() is settings
    monkeypatch.setenv("MELDPUNT_PDQ_MIN_QUALITY", "90")
    assert get_settings().pdq_min_quality == 50
    reset_settings()
    assert get_settings().pdq_min_quality == 90


def test_settings_are_immutable(settings):
    with pytest.raises(ValueError):
        settings.pdq_min_quality = 10
