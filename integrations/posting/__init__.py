"""The provider-neutral life of a post: taking it for an attempt under a lease (`lease`), what a failed attempt
means for it (`retry`), which posts are due and claiming them (`due`), and what it asks of the background worker
(`signals`). A provider hands in its own attempt; nothing here imports a provider."""
