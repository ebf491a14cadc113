"""Every string of the console exists in both languages: the catalogs have the same keys, every t('…') in a template
and every t("js.…") in a page script names a key, and the keys built at run time (statuses, nav sections, form
steps and sections) exist. The request's language comes from the cookie, then Accept-Language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tuneforge.schemas.tasks import TaskStatus
from tuneforge.web.i18n import LANGUAGES, catalog, language_from_header, translator
from tuneforge.web.parameter_form import SECTION_STEPS, STEPS
from tuneforge.web.rendering import NAV

WEB = Path(__file__).resolve().parents[3] / "src" / "tuneforge" / "web"
# t('key') or t('key', name=value): a whole literal key (t('status.' ~ s) builds one; see test_built_keys_exist).
TEMPLATE_KEY = re.compile(r"""\bt\(\s*(['"])([^'"]+)\1\s*[,)]""")
SCRIPT_KEY = re.compile(r"""\bt\(\s*(['"])(js\.[^'"]+)\1""")


def used_keys(pattern: re.Pattern[str], folder: Path, suffix: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob(f"*{suffix}")):
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match.group(2), set()).add(str(path.relative_to(WEB)))
    return found


def test_both_catalogs_have_the_same_keys_and_no_empty_text():
    en, zh = catalog("en"), catalog("zh")
    assert sorted(set(en) - set(zh)) == [], "keys missing from zh.json"
    assert sorted(set(zh) - set(en)) == [], "keys missing from en.json"
    assert [k for k, v in en.items() if not v.strip()] == []
    assert [k for k, v in zh.items() if not v.strip()] == []


def test_placeholders_match_between_languages():
    en, zh = catalog("en"), catalog("zh")
    fields = re.compile(r"\{(\w+)\}")
    differing = {k: (en[k], zh[k]) for k in en if set(fields.findall(en[k])) != set(fields.findall(zh.get(k, "")))}
    assert differing == {}


def test_every_key_used_in_templates_exists():
    used = used_keys(TEMPLATE_KEY, WEB / "templates", ".html")
    assert len(used) > 50  # the pattern does find the keys
    missing = {key: files for key, files in used.items() if key not in catalog("en")}
    assert missing == {}


def test_every_key_used_in_scripts_exists_and_reaches_the_page():
    used = used_keys(SCRIPT_KEY, WEB / "static", ".js")
    assert len(used) > 20
    missing = {key: files for key, files in used.items() if key not in catalog("en")}
    assert missing == {}


def test_built_keys_exist():
    """Keys templates build from data: a status badge, a nav link, a form step or section."""
    built = [f"status.{s.value}" for s in TaskStatus] + [f"nav.{section}" for section, _ in NAV]
    built += [f"form.step.{step}" for step in STEPS] + [f"form.section.{s}" for s in SECTION_STEPS]
    built += [f"lang.{code}" for code in LANGUAGES]
    assert [key for key in built if key not in catalog("en")] == []


@pytest.mark.parametrize(("header", "expected"), [
    ("", "en"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh"), ("zh-TW", "zh"), ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
    ("fr-FR,zh;q=0.5", "zh"), ("de-DE", "en"), ("en;q=0.2, zh;q=0.9", "zh"), ("zh;q=0", "en"), ("garbage;;", "en"),
])
def test_language_from_accept_language(header, expected):
    assert language_from_header(header) == expected


def test_translator_fills_values_and_shows_unknown_keys():
    t = translator("zh")
    assert t("tasks.total", total=3) == "共 3 个任务"
    assert t("no.such.key") == "no.such.key"  # visible, so a missing key is noticed
