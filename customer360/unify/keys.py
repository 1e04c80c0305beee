"""Match keys: the normalised forms rules compare and block on, written once as Spark SQL
expressions; Spark runs them as they are and DuckDB runs them transpiled by sqlglot
(customer360.unify.sql_dialects), so both engines give the same keys.

The silver standardisation (trim, lower-case e-mail, E.164 phone, ISO country, typed dates) has
already run; these keys go further only where matching needs it: accents, punctuation and case
removed from names, `+tags` removed from e-mails, phones reduced to digits when not E.164.
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from customer360.unify.schema import NODE_SEPARATOR

MATCH_KEYS = (
    "email_key", "phone_key", "name_key", "firstname_key", "lastname_key",
    "postcode_key", "city_key",
)  # fmt: skip

# Latin letters with diacritics → base letter (Spark has no Unicode normalisation function).
_FOLD = {
    "a": "àáâãäåāăąǎ", "c": "çćĉċč", "d": "ďđðɗ", "e": "èéêëēĕėęěẹ", "g": "ĝğġģ", "h": "ĥħ",
    "i": "ìíîïĩīĭįıǐịі", "j": "ĵ", "k": "ķ", "l": "ĺļľŀł", "n": "ñńņňŉ",
    "o": "òóôõöøōŏőǒọ", "r": "ŕŗř", "s": "śŝşšș", "t": "ţťŧț", "u": "ùúûüũūŭůűųǔụư",
    "w": "ŵ", "y": "ýÿŷ", "z": "źżž",
}  # fmt: skip
_FOLD_FROM = "".join(_FOLD.values())
_FOLD_TO = "".join(base * len(chars) for base, chars in _FOLD.items())
_LIGATURES = {"æ": "ae", "œ": "oe", "ß": "ss", "þ": "th"}


def name_sql(value: str) -> str:
    """'  Zoë  O'Brien-Smith ' → 'zoe obrien smith'; blank → null (Spark SQL over `value`)."""
    text = f"lower({value})"
    # Folding only where there is something to fold: most names are ASCII, and translate over
    # a long alphabet is the costliest step of the keys.
    folded = text
    for ligature, plain in _LIGATURES.items():
        folded = f"replace({folded}, '{ligature}', '{plain}')"
    folded = f"translate({folded}, '{_FOLD_FROM}', '{_FOLD_TO}')"
    folded = f"regexp_replace({folded}, '\\\\p{{M}}+', '')"  # combining accents
    text = f"CASE WHEN {text} RLIKE '[^\\\\x00-\\\\x7F]' THEN {folded} ELSE {text} END"
    text = f"regexp_replace({text}, '[\\'’`]', '')"  # O'Brien → obrien, not "o brien"
    text = f"trim(regexp_replace({text}, '[^\\\\p{{L}}\\\\p{{N}}]+', ' '))"
    return f"nullif({text}, '')"


def email_sql(value: str) -> str:
    """Lower-case, trimmed, `+tag` removed from the local part; null unless it has one '@'."""
    text = f"lower(trim({value}))"
    local = f"regexp_replace(regexp_replace({text}, '@.*$', ''), '\\\\+.*$', '')"
    domain = f"regexp_replace({text}, '^[^@]*@', '')"
    valid = f"{text} RLIKE '^[^@\\\\s]+@[^@\\\\s]+$'"
    return f"CASE WHEN {valid} AND {local} <> '' THEN concat({local}, '@', {domain}) END"


def phone_sql(e164: str, raw: str) -> str:
    """E.164 when the silver layer could make it; else the raw digits if there are ≥ 7."""
    digits = f"regexp_replace({raw}, '[^0-9]', '')"
    return f"coalesce({e164}, CASE WHEN length({digits}) >= 7 THEN {digits} END)"


def key_sql() -> dict[str, str]:
    """node and every MATCH_KEYS column as a Spark SQL expression over the record columns."""
    postcode = "upper(regexp_replace(postcode, '\\\\s+', ''))"
    return {
        "node": f"concat(source, '{NODE_SEPARATOR}', source_key)",
        "email_key": email_sql("email"),
        "phone_key": phone_sql("telephone_e164", "telephone"),
        "name_key": name_sql("coalesce(name, concat_ws(' ', firstname, lastname))"),
        "firstname_key": name_sql("firstname"),
        "lastname_key": name_sql("lastname"),
        "postcode_key": f"nullif({postcode}, '')",
        "city_key": name_sql("city"),
    }


def _sql_of(value: Column | str) -> str:
    """A column's Spark SQL text: a name or SQL as given; a Column by its rendering
    (`Column<'lower(name)'>`), which is Spark SQL for the expressions callers pass."""
    if isinstance(value, str):
        return value
    found = re.fullmatch(r"Column<'(.*)'>", str(value), re.S)
    if not found:
        raise ValueError(f"cannot read the SQL of {value}")
    return found.group(1)


def node_id(source: Column, source_key: Column) -> Column:
    """Internal record id; string order equals (source, source_key) tuple order."""
    return F.concat(source, F.lit(NODE_SEPARATOR), source_key)


def normalize_name(value: Column | str) -> Column:
    """name_sql as a Spark column."""
    return F.expr(name_sql(_sql_of(value)))


def normalize_email(value: Column | str) -> Column:
    """email_sql as a Spark column."""
    return F.expr(email_sql(_sql_of(value)))


def normalize_phone(e164: Column | str, raw: Column | str) -> Column:
    """phone_sql as a Spark column."""
    return F.expr(phone_sql(_sql_of(e164), _sql_of(raw)))


def match_keys(records: DataFrame) -> DataFrame:
    """`records` + `node` + the MATCH_KEYS columns."""
    return records.withColumns({name: F.expr(sql) for name, sql in key_sql().items()})
