"""Every user-facing string goes through Django's translation machinery: with a (tiny) catalogue for another
language, the channel pages, the health words registered by the Bluesky provider and the messages speak it."""

import struct
from array import array
from pathlib import Path

import pytest
from django.utils import translation

from integrations.bluesky import services

pytestmark = [pytest.mark.pds, pytest.mark.django_db]

FRENCH = {
    "Channels": "Canaux",
    "Active": "Actif",
    "Connect Bluesky": "Connecter Bluesky",
    "Refreshed @%(handle)s.": "@%(handle)s rafraîchi.",
    "Enter the app password.": "Saisissez le mot de passe d'application.",
}


def write_mo(path: Path, catalogue: dict[str, str]) -> None:
    """A GNU gettext .mo file (the format msgfmt writes), so the test needs no gettext tools."""
    entries = {"": "Content-Type: text/plain; charset=UTF-8\n", **catalogue}
    keys = sorted(entries)
    ids = strs = b""
    offsets = []
    for key in keys:
        key_bytes, value_bytes = key.encode(), entries[key].encode()
        offsets.append((len(ids), len(key_bytes), len(strs), len(value_bytes)))
        ids += key_bytes + b"\0"
        strs += value_bytes + b"\0"
    key_start = 7 * 4 + 16 * len(keys)
    value_start = key_start + len(ids)
    key_table, value_table = [], []
    for id_offset, id_length, str_offset, str_length in offsets:
        key_table += [id_length, id_offset + key_start]
        value_table += [str_length, str_offset + value_start]
    header = struct.pack("Iiiiiii", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + len(keys) * 8, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array("i", key_table).tobytes() + array("i", value_table).tobytes() + ids + strs)


@pytest.fixture
def french(tmp_path, settings):
    write_mo(tmp_path / "fr" / "LC_MESSAGES" / "django.mo", FRENCH)
    settings.LOCALE_PATHS = [str(tmp_path)]  # resets Django's loaded catalogues
    yield
    translation.activate(settings.LANGUAGE_CODE)


def test_the_channel_pages_speak_the_browsers_language(french, channel, alice_client):
    page = alice_client.get("/app/channels", headers={"accept-language": "fr"}).content.decode()
    assert 'lang="fr"' in page
    assert "Canaux" in page  # the template's own words
    assert "Actif" in page  # the health label registered by the Bluesky provider
    assert "Connecter Bluesky" in page
    english = alice_client.get("/app/channels", headers={"accept-language": "en"}).content.decode()
    assert "Canaux" not in english and "Channels" in english


def test_messages_and_form_errors_are_translated(french, channel, alice_client):
    services_refreshed = alice_client.post(
        f"/app/channels/{channel.pk}/refresh", headers={"accept-language": "fr"}, follow=True
    )
    assert f"@{channel.handle} rafraîchi." in services_refreshed.content.decode()
    form = alice_client.post(
        "/app/channels/connect/bluesky",
        {"identifier": "alice.example.com", "app_password": "   "},
        headers={"accept-language": "fr"},
    )
    assert "Saisissez le mot de passe d&#x27;application." in form.content.decode()


def test_health_words_follow_the_active_language(french, channel):
    with translation.override("fr"):
        assert services.health(channel).label == "Actif"
    assert services.health(channel).label == "Active"
