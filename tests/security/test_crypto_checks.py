"""Secrets at rest (Fernet, key rotation, the encrypted model field) and the app's system checks."""

import base64
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core import checks as django_checks
from django.core.management import call_command
from django.db import OperationalError, connection

from integrations import checks
from integrations.bluesky import checks as bluesky_checks
from integrations.models import Channel
from integrations.security import crypto

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
TOKEN = "secret-token-xyz"
ENV_VAR = "BLUESKY_SERVICE_URL"
SETTING = "INTEGRATIONS_BLUESKY_SERVICE_URL"  # what the project fills from ENV_VAR


@pytest.fixture
def key_a(settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_A]


# --- encrypt / decrypt --------------------------------------------------------------------------------------------
def test_round_trip(key_a):
    ciphertext = crypto.encrypt(TOKEN)
    assert TOKEN not in ciphertext
    assert crypto.decrypt(ciphertext) == TOKEN


def test_round_trip_of_non_ascii_text(key_a):
    assert crypto.decrypt(crypto.encrypt("pässwörd ✓")) == "pässwörd ✓"


def test_same_plaintext_gives_different_ciphertexts(key_a):
    assert crypto.encrypt(TOKEN) != crypto.encrypt(TOKEN)


def test_rotation_old_key_still_decrypts_and_new_key_encrypts(settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_A]
    old = crypto.encrypt(TOKEN)

    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    assert crypto.decrypt(old) == TOKEN
    new = crypto.encrypt(TOKEN)

    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_B]
    assert crypto.decrypt(new) == TOKEN  # the first key is the one that encrypts
    with pytest.raises(crypto.DecryptionError) as excinfo:
        crypto.decrypt(old)
    message = str(excinfo.value)
    assert "INTEGRATIONS_ENCRYPTION_KEYS" in message
    assert old not in message


@pytest.mark.parametrize("garbage", ["not-a-token", "", "gAAAAAB", "é"])
def test_undecryptable_values_raise_instead_of_returning_ciphertext(key_a, garbage):
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(garbage)


def test_keys_are_stripped_and_blanks_ignored(settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_A]
    ciphertext = crypto.encrypt(TOKEN)
    settings.INTEGRATIONS_ENCRYPTION_KEYS = ["", "  ", f"  {KEY_A}\n"]
    assert crypto.uses_fallback_key() is False
    assert crypto.decrypt(ciphertext) == TOKEN


def test_fallback_key_is_derived_from_secret_key(settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = ["", " "]
    assert crypto.uses_fallback_key() is True
    ciphertext = crypto.encrypt(TOKEN)
    assert crypto.decrypt(ciphertext) == TOKEN
    settings.SECRET_KEY = "another-secret-key"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(ciphertext)


def test_generated_keys_work(settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [crypto.generate_key()]
    assert crypto.decrypt(crypto.encrypt(TOKEN)) == TOKEN


# --- EncryptedTextField -------------------------------------------------------------------------------------------
@pytest.fixture
def channel(db, key_a, django_user_model):
    user = django_user_model.objects.create_user("carol", password="carol-password-123")
    return Channel.objects.create(
        user=user,
        did="did:plc:ewvi7nxzyoun6zhxrhs64oiz",
        handle="carol.bsky.social",
        service_url="https://bsky.social",
        access_jwt=TOKEN,
        refresh_jwt="refresh-token-abc",
    )


def raw_tokens(pk: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_jwt, refresh_jwt FROM integrations_channel WHERE id = %s", [pk])
        return cursor.fetchone()


def test_tokens_are_stored_encrypted_and_read_back_in_clear(channel):
    access, refresh = raw_tokens(channel.pk)
    assert TOKEN not in access
    assert "refresh-token-abc" not in refresh
    assert crypto.decrypt(access) == TOKEN
    assert crypto.decrypt(refresh) == "refresh-token-abc"

    fresh = Channel.objects.get(pk=channel.pk)
    assert (fresh.access_jwt, fresh.refresh_jwt) == (TOKEN, "refresh-token-abc")
    assert channel.access_jwt == TOKEN  # the in-memory instance is not altered by saving


def test_queryset_update_encrypts_too(channel):
    Channel.objects.filter(pk=channel.pk).update(access_jwt="updated-token")
    access, _ = raw_tokens(channel.pk)
    assert "updated-token" not in access
    assert Channel.objects.get(pk=channel.pk).access_jwt == "updated-token"


def test_empty_token_stays_empty(channel):
    channel.access_jwt = ""
    channel.save()
    assert raw_tokens(channel.pk)[0] == ""
    fresh = Channel.objects.get(pk=channel.pk)
    assert fresh.access_jwt == ""
    assert fresh.has_session is True  # the refresh token is still there


def test_stored_tokens_survive_key_rotation(channel, settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    assert Channel.objects.get(pk=channel.pk).access_jwt == TOKEN


def test_lost_key_reads_as_an_unreadable_empty_secret_instead_of_raising_or_leaking(channel, settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_B]
    fresh = Channel.objects.get(pk=channel.pk)
    for value in (fresh.access_jwt, fresh.refresh_jwt):
        assert isinstance(value, crypto.Secret)
        assert value == "" and value.readable is False
    assert fresh.session_unreadable is True


def test_read_values_are_readable_secrets_with_a_masked_repr(channel):
    fresh = Channel.objects.get(pk=channel.pk)
    assert isinstance(fresh.access_jwt, crypto.Secret) and fresh.access_jwt.readable
    assert TOKEN not in repr(fresh.access_jwt)
    assert fresh.session_unreadable is False


# --- key_index: which key made a ciphertext, without decrypting ---------------------------------------------------
def test_key_index_names_the_key_that_encrypted(settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_A]
    old = crypto.encrypt(TOKEN)
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    assert crypto.key_index(old) == 1
    assert crypto.key_index(crypto.encrypt(TOKEN)) == 0
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_B]
    assert crypto.key_index(old) is None


def test_key_index_works_with_the_fallback_key(settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = []
    assert crypto.key_index(crypto.encrypt(TOKEN)) == 0


@pytest.mark.parametrize("garbage", ["", "not-a-token", "gAAAAAB", "é", "=" * 5, "gA" + "A" * 200])
def test_key_index_of_garbage_is_none(key_a, garbage):
    assert crypto.key_index(garbage) is None


def test_key_index_agrees_with_decrypt_on_a_tampered_token(key_a):
    token = bytearray(base64.urlsafe_b64decode(crypto.encrypt(TOKEN)))
    token[30] ^= 1
    tampered = base64.urlsafe_b64encode(bytes(token)).decode()
    assert crypto.key_index(tampered) is None
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(tampered)


# --- system checks: encryption keys -------------------------------------------------------------------------------
def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_missing_keys_in_production_is_an_error(settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = []
    settings.DEBUG = False
    messages = checks.check_encryption_keys()
    assert ids(messages) == ["integrations.E001"]
    assert messages[0].level == django_checks.ERROR
    assert "integrations_generate_key" in messages[0].hint


def test_missing_keys_in_development_is_a_warning(settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = []
    settings.DEBUG = True
    messages = checks.check_encryption_keys()
    assert ids(messages) == ["integrations.W001"]
    assert messages[0].level == django_checks.WARNING


@pytest.mark.parametrize("keys", [["not-a-fernet-key"], [KEY_A, "not-a-fernet-key"]])
def test_invalid_key_is_an_error_that_does_not_echo_the_key(settings, keys):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = keys
    settings.DEBUG = False
    messages = checks.check_encryption_keys()
    assert ids(messages) == ["integrations.E002"]
    assert "not a Fernet key" in messages[0].msg
    assert "not-a-fernet-key" not in messages[0].msg


@pytest.mark.parametrize("debug", [True, False])
def test_valid_keys_pass(settings, debug):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    settings.DEBUG = debug
    assert checks.check_encryption_keys() == []


def test_missing_keys_are_reported_by_manage_py_check(settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = []
    settings.DEBUG = False
    assert "integrations.E001" in ids(django_checks.run_checks())


# --- system checks: BLUESKY_SERVICE_URL ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["ftp://x", "https://", "https://user:pw@pds.example.com"])
def test_unusable_env_service_url_is_an_error(monkeypatch, value):
    monkeypatch.setattr(django_settings, SETTING, value)
    messages = bluesky_checks.check_service_url_env()
    assert ids(messages) == ["integrations.E003"]
    assert "BLUESKY_SERVICE_URL is not a usable PDS URL" in messages[0].msg
    assert "pw@" not in messages[0].msg  # the value is not echoed: it may carry credentials


@pytest.mark.parametrize("value", ["https://ok.example", "https://ok.example/", "  https://ok.example  "])
def test_good_env_service_url_passes(monkeypatch, value):
    monkeypatch.setattr(django_settings, SETTING, value)
    assert bluesky_checks.check_service_url_env() == []


@pytest.mark.parametrize("value", [None, "", "   "])
def test_unset_env_service_url_passes(monkeypatch, value):
    if value is None:
        monkeypatch.setattr(django_settings, SETTING, "")
    else:
        monkeypatch.setattr(django_settings, SETTING, value)
    assert bluesky_checks.check_service_url_env() == []


def test_local_http_pds_needs_the_insecure_setting(monkeypatch, settings):
    monkeypatch.setattr(django_settings, SETTING, "http://localhost:2583")
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = True
    assert bluesky_checks.check_service_url_env() == []
    settings.INTEGRATIONS_ALLOW_INSECURE_PDS = False
    messages = bluesky_checks.check_service_url_env()
    assert ids(messages) == ["integrations.E003"]
    assert "INTEGRATIONS_ALLOW_INSECURE_PDS" in messages[0].hint


# --- system checks: option cache ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "backend", ["django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.dummy.DummyCache"]
)
def test_per_process_cache_in_production_is_a_warning(settings, backend):
    settings.CACHES = {"default": {"BACKEND": backend}}
    settings.DEBUG = False
    messages = checks.check_option_cache()
    assert ids(messages) == ["integrations.W002"]
    assert messages[0].level == django_checks.WARNING


def test_per_process_cache_in_development_passes(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.DEBUG = True
    assert checks.check_option_cache() == []


def test_shared_cache_in_production_passes(settings, tmp_path):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    }
    settings.DEBUG = False
    assert checks.check_option_cache() == []


def test_option_cache_alias_setting_is_honoured(settings, tmp_path):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)},
        "options": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    settings.INTEGRATIONS_CACHE_ALIAS = "options"
    settings.DEBUG = False
    messages = checks.check_option_cache()
    assert ids(messages) == ["integrations.W002"]
    assert "'options'" in messages[0].msg


# --- system checks: stored secrets and the keys that made them ----------------------------------------------------
def secret_checks(databases=("default",)) -> list[str]:
    return ids(checks.check_stored_secrets(databases=list(databases)))


def test_secrets_all_under_the_first_key_pass(channel, settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_A, KEY_B]
    assert secret_checks() == []


def test_secrets_under_an_older_key_are_a_warning(channel, settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    messages = checks.check_stored_secrets(databases=["default"])
    assert ids(messages) == ["integrations.W003"]
    assert messages[0].level == django_checks.WARNING
    assert "2 stored secret(s)" in messages[0].msg
    assert "integrations_reencrypt" in messages[0].hint
    call_command("integrations_reencrypt", stdout=StringIO())
    assert secret_checks() == []


def test_secrets_no_key_decrypts_are_a_separate_warning(channel, settings):
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_B]
    messages = checks.check_stored_secrets(databases=["default"])
    assert ids(messages) == ["integrations.W004"]
    assert "cannot be decrypted with any key" in messages[0].msg
    assert "integrations_reencrypt" in messages[0].hint
    for raw in raw_tokens(channel.pk):
        assert raw not in messages[0].msg


def test_stored_secrets_are_checked_only_when_a_database_is_asked_for(channel, settings):
    """Every `manage.py` start runs the checks: this one reads every secret, so only `check --database`."""
    settings.INTEGRATIONS_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    assert "integrations.W003" not in ids(django_checks.run_checks())
    assert "integrations.W003" in ids(django_checks.run_checks(databases=["default"]))
    out = StringIO()
    call_command("check", "--database", "default", stdout=out, stderr=out)
    assert "integrations.W003" in out.getvalue()


def test_stored_secrets_check_before_migrate_says_nothing(db, monkeypatch):
    monkeypatch.setattr(type(connection.introspection), "table_names", lambda self, *a, **k: [])
    assert secret_checks() == []


def test_stored_secrets_check_with_an_unreachable_database_says_nothing(monkeypatch):
    def unreachable(self, *args, **kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(type(connection.introspection), "table_names", unreachable)
    assert secret_checks() == []
