"""Resolution of integration options: database > environment > default, read through the shared cache."""

import logging
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import DatabaseError

from integrations import options
from integrations.bluesky import options as bluesky_options
from integrations.models import IntegrationOption

URL_KEY = bluesky_options.SERVICE_URL.key
STATUS_KEY = bluesky_options.STATUS.key
ENV_VAR = "BLUESKY_SERVICE_URL"
SETTING = "INTEGRATIONS_BLUESKY_SERVICE_URL"  # what the project fills from ENV_VAR

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_env_service_url(monkeypatch):
    """Whatever the developer's shell exports must not leak into these tests."""
    monkeypatch.setattr(django_settings, SETTING, "")


def store(key: str, value: str) -> IntegrationOption:
    return IntegrationOption.objects.create(key=key, value=value)


# --- precedence ---------------------------------------------------------------------------------------------------
def test_default_applies_when_nothing_is_set():
    resolved = options.resolve(URL_KEY)
    assert resolved == options.ResolvedOption("https://bsky.social", options.Source.DEFAULT, None)


def test_env_overrides_default(monkeypatch):
    monkeypatch.setattr(django_settings, SETTING, "  https://pds.example.com  ")
    resolved = options.resolve(URL_KEY)
    assert resolved.value == "https://pds.example.com"
    assert resolved.source is options.Source.ENV
    assert resolved.raw_env == "https://pds.example.com"


def test_db_overrides_env_and_still_reports_the_env_value(monkeypatch):
    monkeypatch.setattr(django_settings, SETTING, "https://env.example.com")
    store(URL_KEY, "https://db.example.com")
    resolved = options.resolve(URL_KEY)
    assert resolved.value == "https://db.example.com"
    assert resolved.source is options.Source.DB
    assert resolved.raw_env == "https://env.example.com"


def test_db_overrides_default_without_env():
    store(URL_KEY, "https://db.example.com")
    assert options.resolve(URL_KEY) == options.ResolvedOption("https://db.example.com", options.Source.DB, None)


def test_blank_env_is_ignored(monkeypatch):
    monkeypatch.setattr(django_settings, SETTING, "   ")
    assert options.resolve(URL_KEY).source is options.Source.DEFAULT


@pytest.mark.parametrize("blank", ["", "   ", "\n\t "])
def test_empty_db_value_means_not_overridden(monkeypatch, blank):
    store(URL_KEY, blank)
    assert options.resolve(URL_KEY) == options.ResolvedOption("https://bsky.social", options.Source.DEFAULT, None)

    options.invalidate()
    monkeypatch.setattr(django_settings, SETTING, "https://env.example.com")
    resolved = options.resolve(URL_KEY)
    assert (resolved.value, resolved.source) == ("https://env.example.com", options.Source.ENV)


def test_db_value_is_stripped():
    store(URL_KEY, "  https://db.example.com \n")
    assert options.resolve(URL_KEY).value == "https://db.example.com"


def test_option_without_env_var_ignores_environment(monkeypatch):
    monkeypatch.setattr(django_settings, SETTING, "https://env.example.com")
    assert options.resolve(STATUS_KEY) == options.ResolvedOption("enabled", options.Source.DEFAULT, None)


def test_unknown_key_is_refused():
    with pytest.raises(KeyError):
        options.resolve("no-such-option")


# --- bluesky_service_url ------------------------------------------------------------------------------------------
def test_service_url_default():
    assert bluesky_options.service_url() == options.ResolvedOption("https://bsky.social", options.Source.DEFAULT)


def test_service_url_from_env_is_normalised(monkeypatch):
    monkeypatch.setattr(django_settings, SETTING, "HTTPS://PDS.Example.com/")
    resolved = bluesky_options.service_url()
    assert resolved.value == "https://pds.example.com"
    assert resolved.source is options.Source.ENV
    assert resolved.raw_env == "HTTPS://PDS.Example.com/"


def test_invalid_env_service_url_raises_a_validation_error(monkeypatch):
    monkeypatch.setattr(django_settings, SETTING, "ftp://pds.example.com")
    with pytest.raises(ValidationError) as excinfo:
        bluesky_options.service_url()
    assert "https://" in " ".join(excinfo.value.messages)


def test_db_service_url_wins_over_an_invalid_env_value(monkeypatch):
    monkeypatch.setattr(django_settings, SETTING, "ftp://broken")
    store(URL_KEY, "https://db.example.com")
    resolved = bluesky_options.service_url()
    assert (resolved.value, resolved.source) == ("https://db.example.com", options.Source.DB)


# --- bluesky_enabled ----------------------------------------------------------------------------------------------
def test_enabled_by_default():
    assert bluesky_options.enabled() is True


@pytest.mark.parametrize(("stored", "enabled"), [("disabled", False), ("enabled", True), ("", True), ("  ", True)])
def test_enabled_follows_the_stored_status(stored, enabled):
    store(STATUS_KEY, stored)
    assert bluesky_options.enabled() is enabled


# --- cache --------------------------------------------------------------------------------------------------------
def test_cold_read_is_one_query_and_warm_reads_none(django_assert_num_queries):
    store(URL_KEY, "https://db.example.com")
    options.invalidate()
    with django_assert_num_queries(1):
        assert options.resolve(URL_KEY).value == "https://db.example.com"
    with django_assert_num_queries(0):
        # One cache entry holds every option: the other option costs no query either.
        assert options.resolve(URL_KEY).value == "https://db.example.com"
        assert bluesky_options.enabled() is True
        assert bluesky_options.service_url().value == "https://db.example.com"


def test_empty_table_is_cached_too(django_assert_num_queries):
    options.resolve(URL_KEY)
    with django_assert_num_queries(0):
        assert options.resolve(URL_KEY).source is options.Source.DEFAULT


def test_values_are_cached_in_the_shared_cache():
    store(URL_KEY, "https://db.example.com")
    options.resolve(URL_KEY)
    assert options.cached_values() == {URL_KEY: "https://db.example.com"}


def test_create_is_seen_immediately():
    assert options.resolve(URL_KEY).source is options.Source.DEFAULT  # warm the cache
    store(URL_KEY, "https://db.example.com")
    assert options.resolve(URL_KEY).value == "https://db.example.com"


def test_save_invalidates_the_cache():
    option = store(URL_KEY, "https://one.example.com")
    assert options.resolve(URL_KEY).value == "https://one.example.com"
    option.value = "https://two.example.com"
    option.save()
    assert options.cached_values() is None
    assert options.resolve(URL_KEY).value == "https://two.example.com"


def test_status_switch_is_seen_immediately():
    option = store(STATUS_KEY, "enabled")
    assert bluesky_options.enabled() is True
    option.value = "disabled"
    option.save()
    assert bluesky_options.enabled() is False


def test_delete_invalidates_the_cache(monkeypatch):
    monkeypatch.setattr(django_settings, SETTING, "https://env.example.com")
    option = store(URL_KEY, "https://db.example.com")
    assert options.resolve(URL_KEY).source is options.Source.DB
    option.delete()
    resolved = options.resolve(URL_KEY)
    assert (resolved.value, resolved.source) == ("https://env.example.com", options.Source.ENV)


def test_queryset_delete_invalidates_the_cache():
    store(URL_KEY, "https://db.example.com")
    assert options.resolve(URL_KEY).source is options.Source.DB
    IntegrationOption.objects.filter(key=URL_KEY).delete()
    assert options.resolve(URL_KEY).source is options.Source.DEFAULT


def test_value_written_by_another_process_is_seen_after_invalidate():
    store(URL_KEY, "https://one.example.com")
    assert options.resolve(URL_KEY).value == "https://one.example.com"
    # Another process writes without our signals firing here; it only clears the shared cache entry.
    IntegrationOption.objects.filter(key=URL_KEY).update(value="https://two.example.com")
    assert options.resolve(URL_KEY).value == "https://one.example.com"  # still served from the cache
    options.invalidate()
    assert options.resolve(URL_KEY).value == "https://two.example.com"


def test_cache_is_cleared_again_on_commit(django_capture_on_commit_callbacks):
    option = store(URL_KEY, "https://old.example.com")
    with django_capture_on_commit_callbacks(execute=True):
        option.value = "https://new.example.com"
        option.save()
        # Meanwhile a reader in another process, which still sees the old row, re-caches the old value.
        cache.set(options._values_key(options._current_version()), {URL_KEY: "https://old.example.com"})
    assert options.resolve(URL_KEY).value == "https://new.example.com"


def test_reader_that_loaded_before_the_commit_cannot_bring_the_old_value_back():
    option = store(URL_KEY, "https://old.example.com")
    assert options.resolve(URL_KEY).value == "https://old.example.com"
    # Another process starts a cold read: it notes the version and loads the (still old) rows...
    version_seen = options._current_version()
    old_rows = {URL_KEY: "https://old.example.com"}
    # ...the admin saves and commits...
    option.value = "https://new.example.com"
    option.save()
    # ...and only then the slow reader stores what it loaded, under the version it saw.
    cache.set(options._values_key(version_seen), old_rows)
    assert options.resolve(URL_KEY).value == "https://new.example.com"


# --- table missing (before `migrate`) -----------------------------------------------------------------------------
def test_unreadable_table_falls_back_to_env_and_default(monkeypatch, caplog):
    store(URL_KEY, "https://db.example.com")
    store(STATUS_KEY, "disabled")
    options.invalidate()
    failing = mock.patch.object(
        IntegrationOption.objects, "values_list", side_effect=DatabaseError("no such table: integrations_option")
    )
    with failing, caplog.at_level(logging.WARNING, logger="integrations.options"):
        assert options.resolve(URL_KEY) == options.ResolvedOption("https://bsky.social", options.Source.DEFAULT)
        assert bluesky_options.enabled() is True
        monkeypatch.setattr(django_settings, SETTING, "https://env.example.com")
        resolved = bluesky_options.service_url()
        assert (resolved.value, resolved.source) == ("https://env.example.com", options.Source.ENV)
    assert "not readable" in caplog.text
    # The failure is not cached: once the table is readable, stored values apply without a restart.
    assert options.cached_values() is None
    assert options.resolve(URL_KEY).value == "https://db.example.com"
    assert bluesky_options.enabled() is False


def test_a_warm_read_costs_one_cache_read_and_a_new_version_is_seen_at_once(monkeypatch):
    store(URL_KEY, "https://one.example.com")
    assert options.resolve(URL_KEY).value == "https://one.example.com"
    reads = []
    real_get = cache.get
    monkeypatch.setattr(cache, "get", lambda key, *args: reads.append(key) or real_get(key, *args))
    assert options.resolve(URL_KEY).value == "https://one.example.com"
    assert reads == [options.VERSION_KEY]  # the values of an unchanged version are not read again
    IntegrationOption.objects.filter(key=URL_KEY).update(value="https://two.example.com")
    options.invalidate()  # what every save does, in whichever process
    assert options.resolve(URL_KEY).value == "https://two.example.com"
