"""Model methods of the app (`integrations/models.py`)."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from integrations.bluesky.posts.media import store_media
from integrations.models import Media

pytestmark = pytest.mark.django_db


def test_a_discarded_upload_is_gone_from_the_storage_and_the_database(user):
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), "navy").save(buffer, "PNG")
    media = store_media(user, SimpleUploadedFile("x.png", buffer.getvalue()))
    storage, name = media.file.storage, media.file.name
    assert storage.exists(name)

    media.discard()

    assert not storage.exists(name)
    assert not Media.objects.filter(pk=media.pk).exists()
