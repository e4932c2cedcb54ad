from django.contrib.auth.models import AbstractUser
from django.db import models


class Member(AbstractUser):
    """The host project's own user model: Skyport must only ever use settings.AUTH_USER_MODEL."""

    team = models.CharField(max_length=100, blank=True)
