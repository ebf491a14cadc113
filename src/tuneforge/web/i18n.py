"""Translations: flat JSON catalogs (i18n/en.json, i18n/zh.json) and the request's language.

The language comes from the `lang` cookie (set by the header's switch), else the browser's Accept-Language
(any zh* → zh), else English.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from fastapi import Request

LANGUAGES: tuple[str, ...] = ("en", "zh")
DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "lang"


@cache
def catalog(lang: str) -> dict[str, str]:
    """The flat key → text catalog of one language (read once per process)."""
    text = resources.files("tuneforge.web").joinpath("i18n", f"{lang}.json").read_text(encoding="utf-8")
    return json.loads(text)


def choose_language(request: Request) -> str:
    cookie = request.cookies.get(LANG_COOKIE, "")
    if cookie in LANGUAGES:
        return cookie
    return language_from_header(request.headers.get("accept-language", ""))


def language_from_header(header: str) -> str:
    """The first supported language in an Accept-Language header, honouring q-values (zh-CN, zh-TW → zh)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def translator(lang: str) -> Callable[..., str]:
    """t('key', name=value): the text in `lang`, else English, else the key itself (visible, so a missing key is
    noticed rather than hidden); `{name}` placeholders are filled from the keyword arguments."""
    own, fallback = catalog(lang), catalog(DEFAULT_LANGUAGE)

    def t(key: str, **values: Any) -> str:
        text = own.get(key) or fallback.get(key) or key
        return text.format(**values) if values else text

    return t
