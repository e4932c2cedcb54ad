"""A separate process that counts hits against one rate limit (for the test that limits hold across processes).

Usage: python -m tests.support.ratelimit_worker HITS LIMIT  (env TEST_DATABASE_URL names the test database)
Prints "ready", waits for a line on stdin, hits, prints how many hits were allowed.
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()
    from integrations.security.throttling import over_rate

    hits, limit = int(sys.argv[1]), int(sys.argv[2])
    print("ready", flush=True)
    sys.stdin.readline()
    allowed = sum(over_rate("test-processes", "one", limit, 3600, now=1_800_000_000) is None for _ in range(hits))
    print(allowed, flush=True)


if __name__ == "__main__":
    main()
