"""A separate process that makes one authenticated call through the lifecycle (for the multi-process test).

Usage: python -m tests.support.lifecycle_worker CHANNEL_ID  (env TEST_DATABASE_URL names the test database)
Prints "ready", waits for a line on stdin, calls, prints one JSON line with the outcome.
"""

import json
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()
    from integrations.bluesky.accounts import door
    from integrations.bluesky.xrpc import errors
    from integrations.models import Channel

    channel = Channel.objects.get(pk=int(sys.argv[1]))
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        did = door.call(channel, lambda client, token: client.get_session(token)["did"])
        print(json.dumps({"ok": did == channel.did}), flush=True)
    except errors.BlueskyError as exc:
        print(json.dumps({"ok": False, "error": exc.code}), flush=True)


if __name__ == "__main__":
    main()
