"""``--help`` that shows every default exactly once (shared by the scripts).

argparse's ``ArgumentDefaultsHelpFormatter`` appends ``(default: ...)`` only to options that have a
help text, and appends it even when the text already names the default, which gave both
"(default 3) (default: None)" and options with no default shown at all. This formatter appends
``(default: X)`` to every option whose default is a real value and whose help does not already say
"default"; flags (``store_true``) and options without a default (``None``) get nothing.
"""

from __future__ import annotations

import argparse
import copy

__all__ = ["DefaultsHelpFormatter", "RawDefaultsHelpFormatter", "config_file_defaults"]


def _with_default(action: argparse.Action, text: str | None) -> str:
    text = text or ""
    default = action.default
    if (
        default is None
        or default is False
        or default is argparse.SUPPRESS
        or isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._StoreConstAction))
        or not action.option_strings
        or "default" in text.lower()
    ):
        return text
    return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class _DefaultsMixin:
    def _get_help_string(self, action: argparse.Action) -> str:
        return _with_default(action, action.help)

    def _format_action(self, action: argparse.Action) -> str:
        # argparse prints no help line at all for an option without help text; give it its default
        if not action.help and action.help is not argparse.SUPPRESS and _with_default(action, ""):
            action = copy.copy(action)
            action.help = _with_default(action, "")
        return super()._format_action(action)  # type: ignore[misc]


class DefaultsHelpFormatter(_DefaultsMixin, argparse.HelpFormatter):
    """Every real default shown once, after the option's help."""


class RawDefaultsHelpFormatter(_DefaultsMixin, argparse.RawDescriptionHelpFormatter):
    """The same, keeping the description's line breaks (for scripts whose description has examples)."""


def config_file_defaults(parser: argparse.ArgumentParser, path: str) -> dict:
    """The options of a JSON file (``--config FILE``: an object whose keys are flag names, ``-`` or ``_``)
    as defaults for ``parser``: explicit flags still win. Values are checked like the flags' own (type,
    choices); an unknown key, a bad value or an unreadable file is one :class:`~gnnpretrain.errors.UserError`."""
    import json
    from pathlib import Path

    from gnnpretrain.errors import UserError

    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"--config {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(f"--config {path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"--config {path}: expected a JSON object of options, got {type(data).__name__}")
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}
    dests = {key: str(key).lstrip("-").replace("-", "_") for key in data}
    unknown = [str(key) for key, dest in dests.items() if dest not in actions]
    if unknown:
        raise UserError(f"--config {path}: unknown option(s) {', '.join(unknown)} (keys are the flags of "
                        f"{parser.prog}, e.g. lr, batch_size)")
    return {dests[key]: _config_value(actions[dests[key]], value, path, key) for key, value in data.items()}


def _config_value(action: argparse.Action, value, path: str, key: str):
    from gnnpretrain.errors import UserError

    def bad(why: str) -> UserError:
        return UserError(f"--config {path}: {key} = {value!r} {why}")

    flag = action.nargs == 0  # store_true / store_false / BooleanOptionalAction
    if flag:
        if not isinstance(value, bool):
            raise bad("is not true or false")
        return value
    if isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        value = ",".join(str(v) for v in value)  # e.g. target_columns, seeds
    if value is not None and action.type is not None:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise bad("is not a single value")
        if action.type is int and isinstance(value, float):
            if not value.is_integer():
                raise bad("is not an integer")
            value = int(value)
        try:
            value = action.type(value)
        except (TypeError, ValueError) as exc:
            raise bad(f"is not valid ({exc})") from None
    elif value is not None and not isinstance(value, str):
        raise bad("is not text")
    if action.choices is not None and value is not None and value not in action.choices:
        raise bad(f"is not one of {', '.join(map(str, action.choices))}")
    return value
