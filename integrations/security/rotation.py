"""Stored secrets across key rotations: which ones the first key did not encrypt, which ones no configured key
decrypts, and re-encrypting the readable ones with the first key.

Every `EncryptedTextField` of every installed model is covered (found through the app registry). The raw columns
are read through a text `Cast`, which skips the field's decryption, and judged by `crypto.key_index` (the token's
HMAC): only a value that must be re-encrypted is ever decrypted. Used by `manage.py integrations_reencrypt` and the
system checks.
"""

import functools
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import AppConfig, apps
from django.db import connections, models, transaction
from django.db.models.functions import Cast
from django.views.decorators.debug import sensitive_variables

from integrations.security import crypto
from integrations.security.fields import EncryptedTextField

DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True)
class UnreadableRow:
    """A row holding at least one secret that no configured key decrypts (described without any secret)."""

    model: type[models.Model]
    pk: Any
    fields: tuple[str, ...]

    def describe(self, using: str = "default") -> str:
        """`app.Model pk=… (str(row), DID when it has one): fields`; the encrypted columns are not even loaded."""
        label = f"{self.model._meta.label} pk={self.pk}"
        row = self.model._base_manager.using(using).defer(*self.fields).filter(pk=self.pk).first()
        if row is not None:
            did = getattr(row, "did", "")
            label += f" ({row}{' ' + did if did else ''})"
        return f"{label}: {', '.join(self.fields)}"


@dataclass
class Report:
    """What a scan found (and, when fixing, did), counted in secrets: one column of one row is one secret."""

    current: int = 0  # encrypted with the first key
    stale: int = 0  # readable, but encrypted with another configured key
    reencrypted: int = 0  # stale ones now encrypted with the first key
    unreadable: int = 0  # no configured key decrypts them
    unreadable_rows: list[UnreadableRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.current + self.stale + self.unreadable


def encrypted_models(app_configs: Iterable[AppConfig] | None = None) -> list[tuple[type[models.Model], list[str]]]:
    """Each concrete model with encrypted fields, with those fields' names (proxies share their table: skipped)."""
    found = []
    for model in apps.get_models() if app_configs is None else [m for a in app_configs for m in a.get_models()]:
        if model._meta.proxy:
            continue
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if names:
            found.append((model, names))
    return found


def _raw(name: str) -> str:
    return f"_raw_{name}"


def _batches(
    model: type[models.Model], names: list[str], using: str, batch_size: int
) -> Iterator[list[tuple[Any, ...]]]:
    """(pk, raw value per field) for rows holding any secret, in pk order, `batch_size` rows per query."""
    not_empty = functools.reduce(operator.or_, [~models.Q(**{_raw(name): ""}) for name in names])
    queryset = (
        model._base_manager.using(using)
        .annotate(**{_raw(name): Cast(name, output_field=models.TextField()) for name in names})
        .filter(not_empty)
        .order_by("pk")
    )
    last = None
    while True:
        page = queryset if last is None else queryset.filter(pk__gt=last)
        batch = list(page.values_list("pk", *(_raw(name) for name in names))[:batch_size])
        if not batch:
            return
        yield batch
        last = batch[-1][0]


def scan(
    *,
    using: str = "default",
    fix: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    app_configs: Iterable[AppConfig] | None = None,
) -> Report:
    """Judge every stored secret by the key that encrypted it; with `fix`, re-encrypt the stale ones.

    Rows no configured key decrypts are reported and left as they are (putting the dropped key back still recovers
    them). Models whose table does not exist yet (before `migrate`) are skipped.
    """
    report = Report()
    tables = set(connections[using].introspection.table_names())
    for model, names in encrypted_models(app_configs):
        if model._meta.db_table not in tables:
            continue
        for batch in _batches(model, names, using, batch_size):
            with transaction.atomic(using=using):
                for pk, *raws in batch:
                    _judge_row(report, model, pk, dict(zip(names, raws, strict=True)), using, fix)
    return report


def _judge_row(report: Report, model: type[models.Model], pk: Any, raws: dict[str, str], using: str, fix: bool) -> None:
    stale, unreadable = {}, []
    for name, raw in raws.items():
        if not raw:
            continue
        index = crypto.key_index(raw)
        if index == 0:
            report.current += 1
        elif index is None:
            unreadable.append(name)
        else:
            stale[name] = raw
    report.stale += len(stale)
    report.unreadable += len(unreadable)
    if unreadable:
        report.unreadable_rows.append(UnreadableRow(model, pk, tuple(unreadable)))
    if fix and stale:
        report.reencrypted += _reencrypt(model, pk, stale, using)


@sensitive_variables("plaintexts")
def _reencrypt(model: type[models.Model], pk: Any, raws: dict[str, str], using: str) -> int:
    """Write the secrets back through the field (which encrypts with the first key); return how many were written.

    The row is updated only while it still holds exactly these ciphertexts: a value the app stored meanwhile (a
    refresh) is already encrypted with the first key and must not be overwritten with an older token.
    """
    plaintexts = {name: crypto.decrypt(raw) for name, raw in raws.items()}
    updated = (
        model._base_manager.using(using)
        .filter(pk=pk)
        .alias(**{_raw(name): Cast(name, output_field=models.TextField()) for name in raws})
        .filter(**{_raw(name): raw for name, raw in raws.items()})
        .update(**plaintexts)
    )
    return len(raws) if updated else 0
