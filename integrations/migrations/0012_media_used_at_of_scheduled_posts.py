from django.db import migrations
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce, Greatest

FINISHED = ["published", "cancelled"]


def move_uploads_to_their_posts_time(apps, schema_editor):
    """Uploads linked by 0011 kept their upload time as their last use, so every keep-alive sweep walked the uploads
    of posts scheduled days ahead (the clean-up's cost grew with the scheduled posts stored). Give them the time of
    the latest post that needs them, as attaching one does from now on (`publishing._link_media`)."""
    Media = apps.get_model("integrations", "Media")
    Post = apps.get_model("integrations", "Post")
    latest_due = (
        Post.objects.filter(parts__media=OuterRef("pk"))
        .exclude(status__in=FINISHED)
        .annotate(due=Coalesce("scheduled_at", "created_at"))
        .order_by("-due")
        .values("due")[:1]
    )
    Media.objects.filter(parts__isnull=False).distinct().update(
        used_at=Greatest("used_at", Coalesce(Subquery(latest_due), "used_at"))
    )


class Migration(migrations.Migration):
    dependencies = [("integrations", "0011_rate_counters_media_in_use_deleting")]

    operations = [migrations.RunPython(move_uploads_to_their_posts_time, migrations.RunPython.noop)]
