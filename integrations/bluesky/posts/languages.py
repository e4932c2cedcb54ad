"""A post's languages: BCP-47 tags in their conventional case, at most three, and the default a post gets."""

import logging
from collections.abc import Iterable

from django.conf import settings

from integrations.bluesky.identity import identifiers
from integrations.conf import app_settings
from integrations.exceptions import IntegrationError

logger = logging.getLogger(__name__)

MAX_LANGS = 3  # app.bsky.feed.post langs.maxLength


class InvalidLanguage(IntegrationError):
    """A language is not a well-formed BCP-47 tag, or there are more than the lexicon allows."""

    code = "invalid_language"


def canonical_lang(tag: str) -> str:
    """A BCP-47 tag with the conventional case (`en-us` -> `en-US`, `zh-hant` -> `zh-Hant`); raises
    `InvalidLanguage` when it is not well-formed. Django's `LANGUAGE_CODE` style is accepted."""
    tag = tag.strip().replace("_", "-")
    refused = InvalidLanguage(f"{tag!r} is not a language tag (BCP 47, e.g. 'en', 'pt-BR', 'zh-Hant').")
    if not identifiers.is_well_formed_language(tag):
        raise refused
    subtags = tag.split("-")
    out = [subtags[0].lower()]
    for subtag in subtags[1:]:
        if len(out[-1]) == 1:  # after a singleton (extension or x-): leave the rest as written
            out.extend(subtags[len(out) :])
            break
        if len(subtag) == 2 and subtag.isalpha():
            subtag = subtag.upper()
        elif len(subtag) == 4 and subtag.isalpha():
            subtag = subtag.title()
        else:
            subtag = subtag.lower()
        out.append(subtag)
    canonical = "-".join(out)
    if not identifiers.is_language(canonical):  # e.g. a four-letter primary subtag, or a variant given twice
        raise refused
    return canonical


def normalize_langs(langs: Iterable[str] | None, default: str | None) -> list[str]:
    """The post's `langs`: the given tags (well-formed, conventional case, no repeats), or `[default]` when none
    are given, or `[]` when there is no default either. More than three is an error, never cut silently."""
    given = [canonical_lang(lang) for lang in (langs or []) if lang.strip()]
    if not given and default:
        given = [canonical_lang(default)]
    unique = list(dict.fromkeys(given))
    if len(unique) > MAX_LANGS:
        raise InvalidLanguage(f"A post has at most {MAX_LANGS} languages; {len(unique)} were given.")
    return unique


def default_lang(request_language: str | None) -> str:
    """The default language of a post: `INTEGRATIONS_POST_DEFAULT_LANG` when set, else the request's language
    (`request.LANGUAGE_CODE`), else the project's `LANGUAGE_CODE`. Never a language of its own choosing."""
    for candidate in (app_settings.POST_DEFAULT_LANG, request_language, settings.LANGUAGE_CODE):
        if candidate:
            try:
                return canonical_lang(candidate)
            except InvalidLanguage:
                logger.warning("Ignoring %r as a post language: it is not a BCP-47 tag.", candidate)
    return ""
