"""What the post lifecycle asks of the background worker, as signals (`integrations.tasks` connects them in the
app's `ready()`): the domain never imports the tasks that carry them out. Internal: the public ones are in
`integrations.signals`.

Each is sent with `sender=Post` and the post as `post`:

- `retry_wanted`: the post waits for a retry at `post.next_attempt_at` (sent once the transaction commits).
- `due_soon`: a post now falls due at its scheduled time (sent once the transaction commits).
- `wake_ups_obsolete`: the runs waiting for this post are of no use any more (sent at once, inside the transaction
  that changes it), with `due_times`: when they were enqueued to run.
"""

from django.dispatch import Signal

from integrations.models import Post
from integrations.signals import send_on_commit

retry_wanted = Signal()
due_soon = Signal()
wake_ups_obsolete = Signal()


def schedule_retry(post: Post) -> None:
    """Have the next attempt run when the post is due again, once the post is committed."""
    send_on_commit(retry_wanted, Post, post=post)


def wake_at(post: Post) -> None:
    """Have a worker look for due posts at this post's time, once the post is committed: the waiting run of
    `publish_due_posts` is brought forward to it when it is the next post due (no task waits for this post alone)."""
    send_on_commit(due_soon, Post, post=post)


def cancel_wake_ups(post: Post) -> None:
    """Remove the task runs still waiting for this post (at its scheduled time or its retry time, as stored)."""
    wake_ups_obsolete.send(sender=Post, post=post, due_times=[post.scheduled_at, post.next_attempt_at])
