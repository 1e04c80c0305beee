"""Match keys: the normalised forms rules compare and block on (pure Spark column expressions).

The silver standardisation (trim, lower-case e-mail, E.164 phone, ISO country, typed dates) has
already run; these keys go further only where matching needs it: accents, punctuation and case
removed from names, `+tags` removed from e-mails, phones reduced to digits when not E.164.
"""

from __future__ import annotations

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


def node_id(source: Column, source_key: Column) -> Column:
    """Internal record id; string order equals (source, source_key) tuple order."""
    return F.concat(source, F.lit(NODE_SEPARATOR), source_key)


def normalize_name(value: Column) -> Column:
    """'  Zoë  O'Brien-Smith ' → 'zoe obrien smith'; blank → null."""
    text = F.lower(value)
    for ligature, plain in _LIGATURES.items():
        text = F.regexp_replace(text, ligature, plain)
    text = F.translate(text, _FOLD_FROM, _FOLD_TO)
    text = F.regexp_replace(text, r"\p{M}+", "")  # combining accents
    text = F.regexp_replace(text, r"['’`]", "")  # O'Brien → obrien, not "o brien"
    text = F.trim(F.regexp_replace(text, r"[^\p{L}\p{N}]+", " "))
    return F.when(text != "", text)


def normalize_email(value: Column) -> Column:
    """Lower-case, trimmed, `+tag` removed from the local part; null unless it has one '@'."""
    text = F.lower(F.trim(value))
    local = F.regexp_replace(F.substring_index(text, "@", 1), r"\+.*$", "")
    domain = F.substring_index(text, "@", -1)
    valid = text.rlike(r"^[^@\s]+@[^@\s]+$")
    return F.when(valid & (local != ""), F.concat(local, F.lit("@"), domain))


def normalize_phone(e164: Column, raw: Column) -> Column:
    """E.164 when the silver layer could make it; else the raw digits if there are ≥ 7."""
    digits = F.regexp_replace(raw, r"[^0-9]", "")
    return F.coalesce(e164, F.when(F.length(digits) >= 7, digits))


def match_keys(records: DataFrame) -> DataFrame:
    """`records` + `node` + the MATCH_KEYS columns."""
    full_name = F.coalesce(F.col("name"), F.concat_ws(" ", "firstname", "lastname"))
    postcode = F.upper(F.regexp_replace(F.col("postcode"), r"\s+", ""))
    return records.withColumns(
        {
            "node": node_id(F.col("source"), F.col("source_key")),
            "email_key": normalize_email(F.col("email")),
            "phone_key": normalize_phone(F.col("telephone_e164"), F.col("telephone")),
            "name_key": normalize_name(full_name),
            "firstname_key": normalize_name(F.col("firstname")),
            "lastname_key": normalize_name(F.col("lastname")),
            "postcode_key": F.when(postcode != "", postcode),
            "city_key": normalize_name(F.col("city")),
        }
    )
