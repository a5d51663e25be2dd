"""Turning raw exec output into text or JSON, with every failure reported as ParseError.

The exec layer hands us whatever istio-proxy printed: bytes that may be truncated mid-character, an
error page instead of JSON, or nesting deep enough to exhaust Python's recursion limit. Each parser
starts here so none of those library exceptions leaks out of the envoy package.
"""

from __future__ import annotations

import gc
import json
import threading
import typing
from collections.abc import Mapping

from kubectl_meshdoctor.errors import ParseError

# orjson (compiled) decodes a sweep's config_dumps in a fraction of the stdlib's time, and the decode
# is most of the plugin's CPU (bench/RESULTS.md, issue 9). Without it (no wheel for the platform),
# the stdlib decoder gives the same objects. What orjson refuses (NaN, lone surrogate escapes, nesting
# past 1024 levels) goes to the stdlib decoder, which accepts it or words the error as before; the
# one difference left: integers beyond 64 bits become floats (Envoy writes 64-bit integers as strings).
try:
    import orjson as _orjson
except ImportError:
    _orjson = None


def as_text(raw: bytes | str, what: str, *, lenient: bool = False) -> str:
    """Decode ``raw`` as UTF-8; with ``lenient`` undecodable bytes become U+FFFD instead of an error."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            text = raw if isinstance(raw, (bytes, bytearray)) else bytes(raw)  # no copy of a bytearray
            return text.decode("utf-8", errors="replace" if lenient else "strict")
        except UnicodeDecodeError as exc:
            raise ParseError(f"{what}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    raise ParseError(f"{what}: expected bytes or text, got {type(raw).__name__}")


class _GcPaused:
    """Pauses the cyclic garbage collector while JSON is decoded, across threads.

    Decoding a 5 MB config_dump allocates hundreds of thousands of dicts and lists, which triggers
    hundreds of collections, some of them over every object of the process; JSON cannot contain a
    reference cycle, so all that work finds nothing. Measured: a large part of a sweep's CPU.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._active += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._was_enabled:
                gc.enable()


_gc_paused = _GcPaused()
# For parsers that walk what they decoded: the hundreds of thousands of fresh containers would otherwise
# all sit in the youngest GC generation when the collector is re-enabled, and the next allocation
# would traverse every one of them (measured: ~0.15x a config_dump's parse time, for nothing).
gc_paused = _gc_paused


def load_json(raw: bytes | str, what: str) -> typing.Any:
    if _orjson is not None and isinstance(raw, (bytes, bytearray, str)):
        try:  # the exec output as it came: no UTF-8 decode into a str copy first
            with _gc_paused:
                return _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass  # the stdlib decoder below says what is wrong, in the same words as without orjson
    text = as_text(raw, what)
    if not text or text.isspace():  # not strip(): that would copy megabytes
        raise ParseError(f"{what}: empty output")
    try:
        with _gc_paused:
            return json.loads(text)
    except RecursionError:
        raise ParseError(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise ParseError(f"{what}: not valid JSON ({exc})") from None


def load_json_object(raw: bytes | str, what: str) -> dict[str, typing.Any]:
    data = load_json(raw, what)
    if not isinstance(data, dict):
        raise ParseError(f"{what}: expected a JSON object, got {json_type(data)}")
    return data


def optional_object(what: str, value: typing.Any, where: str) -> dict[str, typing.Any]:
    """``value`` as a JSON object, {} when absent (Envoy leaves empty messages out of its JSON).

    ``what`` first, so a parser binds its name once: ``functools.partial(optional_object, _WHAT)``.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParseError(f"{what}: {where} should be an object, got {json_type(value)}")
    return value


def snake_or_camel(entry: Mapping[str, typing.Any], snake: str) -> typing.Any:
    """A field as Envoy prints it (snake_case) or as protobuf's JSON mapping does (camelCase)."""
    value = entry.get(snake)
    return entry.get(camel(snake)) if value is None else value


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
