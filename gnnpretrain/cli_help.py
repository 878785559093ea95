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

__all__ = ["DefaultsHelpFormatter", "RawDefaultsHelpFormatter"]


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
