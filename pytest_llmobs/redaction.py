"""Masking personal data and secrets before anything is stored, reported or uploaded.

Built-in maskers replace what they find with a typed placeholder:

============  ==============================================================================
``<SECRET>``  API keys (``sk-...``, ``pk-lf-...``, ``sk-lf-...``), bearer tokens, AWS access keys,
              ``password=``/``api_key=``/``token=``/``secret=`` pairs (the value is masked,
              unless it is exactly one prompt template ``{{variable}}``)
``<EMAIL>``   e-mail addresses
``<IBAN>``    IBANs whose mod-97 checksum holds
``<CARD>``    payment card numbers (13–19 digits) whose Luhn checksum holds
``<IP>``      IPv4 and IPv6 addresses (not loopback ones such as 127.0.0.1 and ::1)
``<PHONE>``   phone numbers in international (``+`` prefix) or North American format
============  ==============================================================================

``strict`` adds ``<NUMBER>`` for any run of 6 or more digits and ``<TOKEN>`` for long hex or
base64-like strings. Placeholders hold no digits or masked characters, so masking is idempotent.
"""

from __future__ import annotations

import ipaddress
import os
import re
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

Masker = Callable[[str], str]
RedactMode = Literal["off", "default", "strict"]
REDACT_MODES: tuple[RedactMode, ...] = ("off", "default", "strict")

_SECRET_PAIR = re.compile(
    # a secret's name, alone or ending a longer one (DB_PASSWORD, GITHUB_TOKEN, the _SECRET of
    # AWS_SECRET_ACCESS_KEY): "_" and "-" may come before it, a letter or digit may not
    r"(?i)(?<![A-Za-z0-9])"
    r"((?:password|passwd|pwd|api[_-]?key|secret|token|access[_-]?token|client[_-]?secret)"
    r"(?:[_-](?:access[_-])?key)?)"
    r"([\"']?\s*[=:]\s*)"  # a JSON key's closing quote too
    # the value: quoted, or up to a separator, a {{ variable }}'s inner spaces included
    r"(\"[^\"]*\"|'[^']*'|(?:\{\{\s*[\w.]+\s*\}\}|[^\s,;&\"'])+)"
)
PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")
"""A prompt template's ``{{variable}}`` (group 1: its name): what `pytest_llmobs.prompts`
compiles, and what masking keeps as a secret-named pair's value."""
_SECRET_TOKENS = re.compile(
    r"\b(?:sk|pk|rk)-(?:lf-|proj-|live-|test-)?[A-Za-z0-9_\-]{16,}"
    r"|\b(?i:bearer)\s+[A-Za-z0-9._~+/\-]{12,}=*"  # (auth schemes ignore case)
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b"
    r"|\bxox[abpr]-[A-Za-z0-9-]{10,}"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
# not the digits of a decimal fraction (0.4242424242424242) or of a long number's integer part
_CARD = re.compile(r"(?<![\d-])(?<!\d\.)(?:\d[ -]?){12,18}\d(?![\d-]|\.\d)")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")  # a full stop may follow
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])")
_PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}(?!\d)"
    r"|(?<![\w(])\(?\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}(?!\d)"
)
_LONG_NUMBER = re.compile(r"\d{6,}")
_LONG_TOKEN = re.compile(
    r"\b(?=[A-Za-z0-9+/_\-]*\d)(?=[A-Za-z0-9+/_\-]*[A-Za-z])[A-Za-z0-9+/_\-]{32,}={0,2}"
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


_SECRET_NAME = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:password|passwd|pwd|api[_-]?key|secret|token|access[_-]?token"
    r"|client[_-]?secret)(?:[_-](?:access[_-])?key)?$"
)
"""A mapping key naming a secret (``password``, ``DB_PASSWORD``, ``api_key``, ``token``), as
`_SECRET_PAIR` names one in text."""


def is_secret_name(key: str) -> bool:
    """Whether a mapping's ``key`` names a secret, whose value is then masked whole."""
    return _SECRET_NAME.search(key) is not None


def is_placeholder(value: str) -> bool:
    """Whether ``value`` is exactly one prompt template placeholder (``{{key}}``,
    ``{{ key }}``): a variable compiling fills in, not a secret."""
    return PLACEHOLDER.fullmatch(value) is not None


def _masked_pair(match: re.Match[str]) -> str:
    value = match.group(3)
    quote = value[0] if value[:1] in ("'", '"') else ""  # JSON stays JSON: "token": "<SECRET>"
    if is_placeholder(value[1:-1] if quote else value):
        return match.group(0)  # api_key={{key}} in a template: masked it would lose the variable
    return f"{match.group(1)}{match.group(2)}{quote}<SECRET>{quote}"


def mask_secrets(text: str) -> str:
    text = _SECRET_TOKENS.sub("<SECRET>", text)
    return _SECRET_PAIR.sub(_masked_pair, text)


def mask_emails(text: str) -> str:
    return _EMAIL.sub("<EMAIL>", text)


def mask_ibans(text: str) -> str:
    return _IBAN.sub(lambda m: "<IBAN>" if _iban_ok(m.group(0)) else m.group(0), text)


def mask_cards(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return "<CARD>" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)

    return _CARD.sub(replace, text)


def mask_ips(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if ":" in text and sum(1 for group in text.split(":") if group) < 2:
            return text  # "::", "py::dead" in a pytest node id: not an address worth masking
        if len(text) == 7 and ":" not in text:
            return text  # 2.1.3.4, every part one digit: a section or version number far more
            # often than a person's address (the few such are public DNS servers: 8.8.8.8)
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return match.group(0)
        # Loopback and unspecified addresses name this machine, never a person: kept, so error
        # messages still say which local server failed.
        return match.group(0) if address.is_loopback or address.is_unspecified else "<IP>"

    return _IPV6.sub(replace, _IPV4.sub(replace, text))


def mask_phones(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if "." in text and " " in text:
            return text  # "+20.5 21.3 22.1": decimals in a list; a number uses one separator
        digits = sum(c.isdigit() for c in text)
        return "<PHONE>" if 9 <= digits <= 15 else text

    return _PHONE.sub(replace, text)


def mask_long_numbers(text: str) -> str:
    return _LONG_NUMBER.sub("<NUMBER>", text)


def mask_long_tokens(text: str) -> str:
    return _LONG_TOKEN.sub("<TOKEN>", text)


DEFAULT_MASKERS: tuple[Masker, ...] = (
    mask_secrets,
    mask_emails,
    mask_ibans,
    mask_cards,
    mask_ips,
    mask_phones,
)
STRICT_MASKERS: tuple[Masker, ...] = (*DEFAULT_MASKERS, mask_long_tokens, mask_long_numbers)


IDENTIFIER_KEYS = frozenset(
    {
        "id",
        "trace_id",
        "parent_id",
        "observation_id",
        "node_id",
        "name",
        "item_id",
        "run_id",
        "dataset_version",
        "hash",
        "version",
        "prompt_version",
        "data_type",
        "type",
        "level",
        "outcome",
        "status",
        "datasets",
        "model",
        "prompt_name",
        "dataset",
        "thresholds",
        "git_commit",
        "git_branch",
        "plugin_version",
        "python",
        "pytest",
    }
)
"""Fields of the plugin's own records (run header and summary, item, trace, observation, score,
prompt reference, dataset item) whose values are identifiers, versions or enums it links data by:
never masked. ``datasets`` maps dataset names to versions, and a version or a commit is a hash,
which strict masking would take for a number or a token; ``thresholds`` are gate expressions from
code and configuration, parsed back from the stored item.

``name`` is among them: test, span, score, prompt and dataset names are chosen in code and link
objects (a judge generation by its name, a prompt version by its name), and a trace's name is its
node id, which is kept as it is anyway. Personal data belongs in inputs and outputs, not in test
ids. These keys are identifiers only where the plugin writes them: see `IDENTIFIERS_WITHIN`."""

GENERATION_METADATA_KEYS = frozenset(
    {"cache_key", "response_id", "requested_model", "finish_reason"}
)
"""The identifier keys the plugin writes at the top of a generation's ``metadata`` (its cache key,
the server's answer id, the model asked for, why the answer ended): kept there only. Every other
``metadata`` mapping (a span's, a trace's, a score's, a dataset item's) is the user's."""

ROOT_METADATA_KEYS = ("dataset", "item_id", "outcome")
"""What the plugin writes into a test's root span's ``metadata``, as the item's own fields: kept
where they equal those (see `Governance.item`)."""

NO_IDENTIFIERS: frozenset[str] = frozenset()

IDENTIFIERS_WITHIN: Mapping[str, frozenset[str]] = {
    "input": NO_IDENTIFIERS,
    "output": NO_IDENTIFIERS,
    "expected_output": NO_IDENTIFIERS,
    "model_parameters": NO_IDENTIFIERS,
    "metadata": NO_IDENTIFIERS,  # a generation's: GENERATION_METADATA_KEYS
    "prompt": NO_IDENTIFIERS,  # a prompt version's template and config
    "config": NO_IDENTIFIERS,
}
"""The identifier keys inside a record field that holds user or model data; any deeper mapping
has none. So a user's ``{"name": "jane@example.com"}`` input, or ``{"model": ...}`` in span
metadata or a prompt's config, is masked like any other free text."""


_MIGHT_HOLD_BUILTIN_MATCH = re.compile(r"[\d@:=]")
"""Every built-in pattern needs a digit, ``@``, ``:`` or ``=`` unless it starts with one of
`_SECRET_PREFIXES`: text without any of them is returned unscanned (most text in a run)."""
_SECRET_PREFIXES = ("k-", "Bearer", "bearer", "BEARER", "AKIA", "ASIA", "xox")
_DIGIT = re.compile(r"\d")  # the digits the patterns' ``\d`` match, Unicode ones included
_MEMO_LIMIT = 65_536
MASKING_FAILED = "<MASKING FAILED>"
"""What a text becomes when a custom masker raised on it or returned something not a string:
stored unmasked it could leak what the masker was there to hide."""


def masker_name(masker: Masker) -> str:
    """``module:qualname`` of a masker, as ``--llm-redact-maskers`` names one."""
    module = getattr(masker, "__module__", None) or "?"
    return f"{module}:{getattr(masker, '__qualname__', type(masker).__name__)}"


def _might_hold_builtin_match(text: str) -> bool:
    return _MIGHT_HOLD_BUILTIN_MATCH.search(text) is not None or _might_hold_secret_token(text)


def _might_hold_secret_token(text: str) -> bool:
    return any(prefix in text for prefix in _SECRET_PREFIXES) or (
        "gh" in text and "_" in text  # GitHub tokens: gh[pousr]_...
    )


_NEEDS: dict[Masker, Callable[[str, int], bool]] = {
    mask_secrets: lambda text, _: "=" in text or ":" in text or _might_hold_secret_token(text),
    mask_emails: lambda text, _: "@" in text,
    mask_ibans: lambda _, digits: digits >= 2,  # the check digits after the country code
    mask_cards: lambda _, digits: digits >= 13,
    mask_ips: lambda text, digits: (digits >= 4 and "." in text) or text.count(":") >= 2,
    mask_phones: lambda _, digits: digits >= 9,  # fewer are never masked as a phone number
    mask_long_numbers: lambda _, digits: digits >= 6,
    mask_long_tokens: lambda text, digits: digits >= 1 and len(text) >= 32,
}
"""What a built-in masker's pattern cannot match without, given the text and its number of
digits: a masker whose need fails is not run (most text has a digit or a colon, and few
digits). Placeholders hold no digit, ``@``, ``.``, ``:`` or ``=``, so masking never adds what
a later masker needs."""


def _mask_builtin(maskers: tuple[Masker, ...], text: str) -> str:
    if not _might_hold_builtin_match(text):
        return text
    digits = len(_DIGIT.findall(text))
    for masker in maskers:
        if _NEEDS[masker](text, digits):
            masked = masker(text)
            if masked != text:
                text, digits = masked, len(_DIGIT.findall(masked))
    return text


class Redactor:
    """Applies maskers to a string (`Governance` walks stored values and masks their strings).

    Maskers must be pure functions of their text: results are memoised per string, because the
    same strings (questions, model names, node ids) recur many times in one run.
    """

    def __init__(self, mode: RedactMode = "default", extra: Iterable[Masker] = ()) -> None:
        if mode not in REDACT_MODES:
            raise ValueError(f"{mode!r} is not a redaction mode; valid: {', '.join(REDACT_MODES)}")
        self.mode = mode
        self.builtin: tuple[Masker, ...] = {
            "off": (),
            "default": DEFAULT_MASKERS,
            "strict": STRICT_MASKERS,
        }[mode]
        self.custom: tuple[Masker, ...] = tuple(extra)
        self.maskers: tuple[Masker, ...] = (*self.builtin, *self.custom)
        self._memo: dict[str, str] = {}
        self.failures: dict[str, str] = {}
        """Custom masker name → the first error it gave (the run then fails, saying so)."""
        self.failed_texts: dict[str, int] = {}
        """Custom masker name → how many distinct texts it left as `MASKING_FAILED`."""
        self._plugin_texts: set[str] = set()

    def add(self, maskers: Iterable[Masker]) -> None:
        """Apply ``maskers`` too, after the others (texts masked so far are masked again)."""
        self.custom = (*self.custom, *maskers)
        self.maskers = (*self.builtin, *self.custom)
        self._memo.clear()

    @property
    def active(self) -> bool:
        return bool(self.maskers)

    def secret_key(self, key: str) -> bool:
        """Whether the value under ``key`` in user data is masked whole (built-in modes)."""
        return bool(self.builtin) and is_secret_name(key)

    def keep_from_custom(self, text: str) -> None:
        """Mask ``text``, a line the plugin writes about a failing custom masker, with the
        built-in maskers only: a custom masker that failed on it would store it as
        `MASKING_FAILED`, hiding which masker failed."""
        self._plugin_texts.add(text)
        self._memo.pop(text, None)

    def text(self, value: str) -> str:
        memo = self._memo
        masked = memo.get(value)
        if masked is not None:
            return masked
        masked = _mask_builtin(self.builtin, value) if self.builtin else value
        if value not in self._plugin_texts:
            for masker in self.custom:
                masked = self._custom(masker, masked)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[value] = masked
        return masked

    def _custom(self, masker: Masker, text: str) -> str:
        """``masker(text)``; `MASKING_FAILED` (remembered) when it raises or returns no str."""
        if text == MASKING_FAILED:
            return text
        try:
            masked = masker(text)
        except Exception as exc:
            self.note_failure(masker_name(masker), _raised(exc))
            return MASKING_FAILED
        if not isinstance(masked, str):
            self.note_failure(masker_name(masker), f"returned {type(masked).__name__}, not str")
            return MASKING_FAILED
        return masked

    def note_failure(self, name: str, error: str, texts: int = 1) -> None:
        """Count ``texts`` left as `MASKING_FAILED` by the custom masker ``name``, keeping its
        first ``error`` (also those an xdist worker's redactor counted)."""
        self.failures.setdefault(name, error)
        self.failed_texts[name] = self.failed_texts.get(name, 0) + texts


def _raised(exc: BaseException) -> str:
    """What a custom masker raised, and where: never the exception's message, which often quotes
    the text the masker was given (``KeyError: 'CUST-2002'``), the text it was to hide."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return f"raised {type(exc).__name__}{where} (its message is not shown: it may quote the text)"
