"""Reading Singer input (lines and BATCH files), and checking each message's shape before the SDK acts on it.

Whatever a line holds (bytes that are not UTF-8, numbers too long for Python's int, nesting deeper
than the parser's recursion limit, a field of the wrong type), it reaches the sink as a value to
reject, or ends here as a one-line input error naming the line (and the stream, when there is one),
never as a traceback. The line's text is never quoted: it may hold customers' personal data.
"""

from __future__ import annotations

import decimal
import functools
import gzip
import json
import os
import re
import stat
import typing as t
import zlib
from collections import Counter

import msgspec
from typing_extensions import override

from target_hubspot_upsert.core.errors import InputError
from target_hubspot_upsert.singer.sdk_adapter import AdaptedReader

#: Digits of an integer Python converts from text (`sys.get_int_max_str_digits()`, 4,300 by default);
#: longer ones are read as Decimal, which the serializer then refuses as out of range.
_INT_DIGITS = 4000


def _decimal(text: str) -> decimal.Decimal:
    """A number that is not an integer, exactly as written; beyond what a Decimal holds, one the serializer refuses.

    A Decimal's exponent stops at `decimal.MAX_EMAX` (about 10**18): `1e99999999999999999999`
    is read as a number with that exponent (and its signs), which is out of range for HubSpot,
    so its record is rejected with that reason rather than ending the run.
    """
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:
        mantissa, _, exponent = text.lower().partition("e")
        return decimal.Decimal(
            f"{'-' if mantissa.startswith('-') else ''}1e{'-' if exponent.startswith('-') else ''}{decimal.MAX_EMAX}",
        )


_DECODER = json.JSONDecoder(parse_float=_decimal)


def _int(text: str) -> int | decimal.Decimal:
    return int(text) if len(text) <= _INT_DIGITS else _decimal(text)


_LENIENT = json.JSONDecoder(parse_float=_decimal, parse_int=_int)
# A JSON string or a bracket: enough to follow nesting without parsing.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_STREAM_KEY = re.compile(r'\s*:\s*"((?:[^"\\]|\\.)*)"')


def read_as_utf8(source: t.IO[str]) -> None:
    """Read Singer input as UTF-8, bytes that are not reaching the record as lone surrogates.

    Python reads stdin (and `--input` files) in the locale's encoding, strictly unless the locale
    is C or POSIX: one bad byte would end the run with a traceback. Values holding such text are
    rejected records (not valid Unicode), like lone surrogates in JSON escapes.
    """
    reconfigure = getattr(source, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(encoding="utf-8", errors="surrogateescape")


#: The longest input line read (characters): HubSpot refuses request bodies far smaller, so a
#: longer RECORD line is a rejected record (RECORD_TOO_LARGE), read past with bounded memory.
MAX_LINE_CHARS = 16 * 1024 * 1024
LINE_HEAD_CHARS = 1000  # the start of an oversized line kept for the rejected-records file
_SKIP_CHUNK = 1024 * 1024
_RECORD_TYPE = re.compile(r'"type"\s*:\s*"RECORD"')


class OversizedLine(t.NamedTuple):
    """An input line longer than `MAX_LINE_CHARS`: its first characters and its length."""

    head: str
    size: int

    def record_stream(self) -> str | None:
        """The stream of a RECORD line, when its first characters name both (else None)."""
        return top_level_stream(self.head) if _RECORD_TYPE.search(self.head) else None


def bounded_lines(source: t.IO[t.AnyStr], cap: int | None = None) -> t.Iterator[t.AnyStr | OversizedLine]:
    """The lines of `source` (text, or bytes for BATCH files); one longer than `cap` comes as an `OversizedLine`.

    `cap` is `MAX_LINE_CHARS` unless given. An oversized line is never held whole: its first
    `LINE_HEAD_CHARS` are kept, the rest is read past in `_SKIP_CHUNK` pieces.
    """
    cap = MAX_LINE_CHARS if cap is None else cap
    readline = source.readline
    line = readline(cap + 1)
    newline = b"\n" if isinstance(line, bytes) else "\n"
    while line:
        if len(line) <= cap or line.endswith(newline):  # type: ignore[arg-type]  # newline is of line's type
            yield line
        else:
            head, size = line[:LINE_HEAD_CHARS], len(line)
            del line  # not held while the rest is read past
            yield _read_past(head, size, readline)
        line = readline(cap + 1)


def _read_past(head: t.AnyStr, size: int, readline: t.Callable[[int], t.AnyStr]) -> OversizedLine:
    """The rest of a line too long to hold (its `head` and the `size` read so far), read past in pieces."""
    newline = b"\n" if isinstance(head, bytes) else "\n"
    while chunk := readline(_SKIP_CHUNK):
        size += len(chunk)
        if chunk.endswith(newline):  # type: ignore[arg-type]  # newline is of chunk's type
            break
    return OversizedLine(head.decode("utf-8", "replace") if isinstance(head, bytes) else head, size)


def fraction_read(source: t.IO[str]) -> t.Callable[[], float | None]:
    """How much of `source` has been read (0 to 1), when it is a regular file (`--input`, `< file`).

    For a pipe the size is unknown: the function returns None. The position is the file's (read
    ahead of the line being processed by at most a buffer), enough to estimate the time left.
    """
    try:
        fd = source.fileno()
        size = os.fstat(fd).st_size if stat.S_ISREG(os.fstat(fd).st_mode) else 0
    except (OSError, ValueError, AttributeError):  # no descriptor (a test's StringIO), closed
        size = 0
    if not size:
        return lambda: None

    def fraction() -> float | None:
        try:
            return min(os.lseek(fd, 0, os.SEEK_CUR) / size, 1.0)
        except OSError:
            return None

    return fraction


#: Nesting the fast path leaves to the standard library, whose recursion limit (about 1,000
#: levels) is what decides whether a line is too deep to read.
_FAST_DEPTH = 200
#: A line this short cannot nest deeper than `_FAST_DEPTH` (each level takes two characters, its
#: opening and closing bracket): its brackets need no counting.
_SHALLOW_CHARS = 2 * _FAST_DEPTH
#: msgspec hands each number that is not an integer to `float_hook` as its literal text: a Decimal
#: of exactly what the line says (the standard library's reading), in one pass. One whose exponent
#: no Decimal holds raises `decimal.InvalidOperation` (an ArithmeticError): the line is then read
#: by the standard library, with `_decimal`.
_FAST = msgspec.json.Decoder(float_hook=decimal.Decimal)
_fast_decode = _FAST.decode


def _too_deep(message: dict[str, t.Any]) -> bool:
    """Whether a message nests deeper than `_FAST_DEPTH`."""
    stack: list[tuple[t.Any, int]] = [(message, 1)]
    while stack:
        node, depth = stack.pop()
        for value in node.values() if type(node) is dict else node:
            kind = type(value)
            if kind is dict or kind is list:
                if depth >= _FAST_DEPTH:
                    return True
                stack.append((value, depth + 1))
    return False


def decode_line(line: str, number: int) -> dict[str, t.Any]:
    """Parse one input line into a message (a JSON object); numbers that are not integers are exact Decimals.

    msgspec reads most lines once, numbers that are not integers from their own text; a line it
    refuses (lone surrogates, an integer beyond 4,300 digits, NaN, too deep) or one nested deeper
    than `_FAST_DEPTH` is read again by the standard library, with its own error messages and limits.
    """
    message = _read_fast(line)
    return message if message is not None else _decode_exact(line, number)


class RecordLine(msgspec.Struct):
    """A RECORD's stream and the raw text of its record (nothing else parsed).

    Any other message, a line without a type, or a RECORD without a stream (a string) or a
    record, does not decode (`msgspec.ValidationError`, a ValueError): it is read as usual, with
    its errors. (Not a tagged struct: msgspec takes one without its tag field.)
    """

    type: t.Literal["RECORD"]
    stream: str
    record: msgspec.Raw


_read_envelope = msgspec.json.Decoder(RecordLine).decode


RawTaker = t.Callable[[msgspec.Raw, int], bool]  # a record's raw text, its input line
RecordTaker = t.Callable[[dict[str, t.Any]], None]
RECORDS_PER_CHECK = 1024  # RECORDs read between two `every_records` calls


def _nothing() -> None:
    return


def _no_taker(_stream: str) -> None:
    """No stream's records are taken: each goes through the SDK's callback."""


_Taker = t.TypeVar("_Taker")


class _Takers(dict[str, "_Taker | None"]):
    """Per stream, its taker (or None), asked of `choose` the first time the stream is looked up.

    The reader's loop finds a stream's taker with one dict look-up; a SCHEMA clears the dict
    (`forget_takers`), so each stream is asked again.
    """

    def __init__(self, choose: t.Callable[[str], _Taker | None]) -> None:
        super().__init__()
        self._choose = choose

    def __missing__(self, stream: str) -> _Taker | None:
        taker = self[stream] = self._choose(stream)
        return taker


def decode_raw_record(raw: msgspec.Raw, line: int) -> dict[str, t.Any]:
    """The record of a RECORD line read as raw text (`RecordLine`), parsed as `decode_line` parses a line."""
    text = bytes(raw).decode("utf-8")  # it came from text: valid UTF-8
    record = _read_fast(text)
    if record is None:
        # Not the line: a "stream" member here would be one of the record's fields.
        record = _decode_exact(text, line, whole_line=False)
    return record


def _read_fast(text: str) -> dict[str, t.Any] | None:
    """The JSON object `text` holds, read by msgspec; None when only the standard library may read it."""
    try:
        value = _fast_decode(text)
    except (ValueError, RecursionError, ArithmeticError):  # msgspec.DecodeError, lone surrogates, huge exponents
        return None
    if type(value) is not dict:
        return None
    # Fewer brackets than `_FAST_DEPTH` cannot nest deeper: the walk only for lines with many.
    if len(text) > _SHALLOW_CHARS and text.count("[") + text.count("{") > _FAST_DEPTH and _too_deep(value):
        return None
    return value


def _decode_exact(line: str, number: int, *, whole_line: bool = True) -> dict[str, t.Any]:
    """Read `line` (a whole input line; with `whole_line` False, a record's text) with the standard library."""
    try:
        try:
            message = _DECODER.decode(line)
        except json.JSONDecodeError:
            raise
        except ValueError:  # an integer too long for int(): read it as a Decimal instead
            message = _LENIENT.decode(line)
    except json.JSONDecodeError as exc:
        msg = (
            f"Input line {number} is not valid JSON ({exc.msg} at column {exc.colno}). "
            "The tap must write one Singer message per line."
        )
        raise InputError(msg) from None
    except RecursionError:
        msg = (
            f"Input line {number}{_stream_of(line) if whole_line else ''} nests objects or arrays too deeply to read "
            "(about 1,000 levels or more); flatten the record in the tap."
        )
        raise InputError(msg) from None
    if not isinstance(message, dict):
        msg = f"Input line {number} is not a Singer message (a JSON object)."
        raise InputError(msg)
    return message


def _stream_of(line: str) -> str:
    """` (stream 'x')` for a line too deep to parse, from its top-level "stream" member, if found."""
    name = top_level_stream(line)
    return "" if name is None else f" (stream {name[:100]!r})"


def top_level_stream(text: str) -> str | None:
    """The top-level "stream" member of a line that is not parsed (too deep, or cut short), if found."""
    depth = 0
    for match in _TOKEN.finditer(text):
        piece = match.group()
        if piece in "[{":
            depth += 1
        elif piece in "]}":
            depth -= 1
        elif depth == 1 and piece == '"stream"':
            value = _STREAM_KEY.match(text, match.end())
            if value is None:
                return None
            try:
                name = json.loads('"' + value.group(1) + '"')
            except ValueError:
                return None
            return name if isinstance(name, str) else None
    return None


def _is_text_list(value: t.Any) -> bool:  # noqa: ANN401 - any JSON value
    return isinstance(value, list) and all(isinstance(item, str) and item for item in value)


_REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")


def _remote_ref(schema: dict[str, t.Any]) -> str | None:
    """The first reference in `schema` to another document, if any (walked without recursion)."""
    stack: list[t.Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in _REF_KEYS:
                ref = node.get(key)
                if isinstance(ref, str) and not ref.startswith("#"):
                    return ref
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def _schema_problem(message: dict[str, t.Any]) -> str | None:
    schema = message.get("schema")
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return "its 'schema' must be a JSON schema object with 'properties'"
    if not all(isinstance(s, dict | bool) for s in schema["properties"].values()):
        return "each of its schema's 'properties' must be a JSON schema object"
    ref = _remote_ref(schema)
    if ref is not None:
        # Validators would fetch it: a message on stdin must not make the target reach another host.
        return f"its schema refers to another document ($ref {ref[:80]!r}); send the schema whole, with local refs only"
    key_properties = message.get("key_properties")
    if key_properties is not None and not _is_text_list(key_properties):
        return "its 'key_properties' must be a list of field names (non-empty strings)"
    return None


def _batch_problem(message: dict[str, t.Any]) -> str | None:
    encoding = message.get("encoding")
    if (
        not isinstance(encoding, dict)
        or not isinstance(encoding.get("format"), str)
        or not isinstance(encoding.get("compression"), str | None)
        or set(encoding) - {"format", "compression"}
    ):
        return "its 'encoding' must be an object with a 'format' and an optional 'compression'"
    if not _is_text_list(message.get("manifest")):
        return "its 'manifest' must be a list of file names (non-empty strings)"
    return None


def message_problem(message: dict[str, t.Any]) -> str | None:
    """What is wrong with the shape of a SCHEMA, STATE, ACTIVATE_VERSION or BATCH message, or None.

    RECORD messages are checked on their own path (the hot one).
    """
    kind = message.get("type")
    if kind == "STATE":
        return None if "value" in message else "a STATE message needs a 'value'"
    if kind not in ("SCHEMA", "ACTIVATE_VERSION", "BATCH"):
        return None
    stream = message.get("stream")
    if not isinstance(stream, str) or not stream:
        return f"the {kind} message needs a stream name"
    if kind == "SCHEMA":
        problem = _schema_problem(message)
    elif kind == "BATCH":
        problem = _batch_problem(message)
    else:
        problem = None if "version" in message else "its 'version' is missing"
    return None if problem is None else f"the {kind} message of stream {stream[:100]!r}: {problem}"


#: Why a BATCH file could not be read, by the error met; `{at}` names the line being read.
_FILE_PROBLEMS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (FileNotFoundError, "does not exist"),
    (IsADirectoryError, "is a directory, not a file"),
    (PermissionError, "cannot be read (permission denied)"),
    ((gzip.BadGzipFile, zlib.error), "is not gzip data, as its encoding's compression says"),
    (EOFError, "ends in the middle of its gzip data"),
    (UnicodeDecodeError, "holds text that is not UTF-8 ({at})"),
    (json.JSONDecodeError, "is not JSON Lines: {at} is not valid JSON"),
    (RecursionError, "nests objects or arrays too deeply to read ({at})"),
)


def _file_problem(exc: BaseException, number: int) -> str:
    """Why a BATCH file could not be read, in words (`number`: its line being read, 0 before any)."""
    at = f"its line {number}" if number else "its start"
    for kind, text in _FILE_PROBLEMS:
        if isinstance(exc, kind):
            return text.format(at=at)
    return f"cannot be read ({type(exc).__name__})"


def batch_records(
    raw: t.Callable[[], t.ContextManager[t.IO[bytes]]], compression: str | None, where: str,
) -> t.Iterator[dict | OversizedLine]:
    """The records of one BATCH file (JSON Lines, maybe gzip-compressed), opened by `raw()`.

    A line longer than `MAX_LINE_CHARS` bytes comes as an `OversizedLine` (a record to reject),
    read past with bounded memory. Any problem with the file is an input error naming `where` (the
    input line, the stream and the file); errors of whatever consumes the records are not caught here.
    """
    number = 0
    try:
        with raw() as opened:
            lines = gzip.open(opened) if compression == "gzip" else opened  # noqa: SIM115 - closed with `opened`
            for number, line in enumerate(bounded_lines(t.cast("t.IO[bytes]", lines)), 1):
                if isinstance(line, OversizedLine):
                    yield line
                    continue
                if not line.strip():
                    continue
                text = line.decode("utf-8")
                record = _read_fast(text)
                if record is None:
                    record = _LENIENT.decode(text)
                if not isinstance(record, dict):
                    msg = f"{where} is not JSON Lines of records: its line {number} is not a JSON object."
                    raise InputError(msg)
                yield record
    except (OSError, EOFError, ValueError, RecursionError, ImportError, zlib.error) as exc:
        raise InputError(f"{where} {_file_problem(exc, number)}.") from None


class LineCountingReader(AdaptedReader):
    """Singer reader that knows the input line number, for error messages."""

    def __init__(self) -> None:
        """Start at line 0."""
        super().__init__()
        self.line_number = 0
        self.on_oversized: t.Callable[[OversizedLine], None] = self._oversized
        # skip_unchanged: per stream, what takes a RECORD's raw record text or says no (False: the
        # line is read as usual), e.g. `AsReadSkip.offer_raw`; None for a stream read as usual.
        self.raw_taker: t.Callable[[str], RawTaker | None] | None = None
        # (Looked up when a stream is first seen: the target sets raw_taker after making the reader.)
        self._takers: _Takers[RawTaker] = _Takers(lambda stream: (self.raw_taker or _no_taker)(stream))  # noqa: PLW0108
        # Per stream, what takes a RECORD's parsed record straight to its sink (the lean path of a
        # stream read as it is), or None: the record goes through the SDK's callback.
        self.record_taker: t.Callable[[str], RecordTaker | None] | None = None
        self._record_takers: _Takers[RecordTaker] = _Takers(
            lambda stream: (self.record_taker or _no_taker)(stream),  # noqa: PLW0108 - as above
        )
        # After every RECORDS_PER_CHECK RECORDs read, whichever way they went (the target's record-age check).
        self.every_records: t.Callable[[], None] = _nothing

    def _oversized(self, line: OversizedLine) -> None:
        raise oversized_error(self.line_number, line)

    def process_lines(
        self, file_input: t.IO[str] | None, callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        """The SDK's reading loop, with the per-line checks done once per line, not twice.

        Lines are parsed here, not by the SDK's `deserialize_json`, which logs a bad line whole,
        with a traceback.
        """
        stats: dict[str, int] = {}
        self._read_lines(file_input or self.default_input, callbacks, stats)
        return Counter(stats)

    def _read_lines(  # noqa: C901, PLR0912, PLR0915 - the per-line loop, written out: a call less is a call less per record
        self, source: t.IO[str], callbacks: dict[str, t.Callable[[dict], None]], stats: dict[str, int],
    ) -> None:
        """Read `source` line by line: a RECORD goes to its stream's taker, any other line as `_one_line` sends it.

        With skip_unchanged (`raw_taker`) a line is read as a RECORD's stream and raw record only
        (`RecordLine`), else parsed as `_read_fast` parses it. `bounded_lines` is written out: lines
        are read by C code, and only those over `_SHALLOW_CHARS` are checked for size and depth.
        """
        raw, raw_takers, record_takers = self.raw_taker is not None, self._takers, self._record_takers
        read_envelope, decode, readline, usual = _read_envelope, _fast_decode, source.readline, self._as_usual
        cap, long = MAX_LINE_CHARS, min(MAX_LINE_CHARS, _SHALLOW_CHARS)  # up to `long`: not too long or deep
        count, number = stats.get("RECORD", 0), self.line_number  # RECORDs read (in `stats` while one is read as usual)
        try:
            for line in iter(functools.partial(readline, cap + 1), ""):  # counted here: enumerate would hold a line
                number += 1
                self.line_number = number
                if len(line) > long:
                    if len(line) > cap and not line.endswith("\n"):
                        head, size = line[:LINE_HEAD_CHARS], len(line)
                        del line  # not held while the rest is read past
                        count = usual(_read_past(head, size, readline), count, callbacks, stats)
                        continue
                    if line.count("[") + line.count("{") > _FAST_DEPTH:  # read as usual, near the top of the stack
                        count = usual(line, count, callbacks, stats)
                        continue
                if raw:
                    try:
                        envelope = read_envelope(line)
                    except (ValueError, RecursionError, ArithmeticError):  # not a RECORD of this shape
                        count = usual(line, count, callbacks, stats)
                        continue
                    take = raw_takers[envelope.stream]
                    if take is None or not take(envelope.record, number):
                        count = usual(line, count, callbacks, stats)
                        continue
                else:
                    try:
                        message = decode(line)
                    except (ValueError, RecursionError, ArithmeticError):  # read as usual, with its errors
                        count = usual(line, count, callbacks, stats)
                        continue
                    if type(message) is not dict:
                        count = usual(line, count, callbacks, stats)
                        continue
                    stream, record = message.get("stream"), message.get("record")
                    if message.get("type") != "RECORD" or type(stream) is not str or type(record) is not dict:
                        count = usual(message, count, callbacks, stats)  # handle_record says what is wrong
                        continue
                    take_record = record_takers[stream]
                    if take_record is None:
                        count = usual(message, count, callbacks, stats)
                        continue
                    take_record(record)
                count += 1
                if not count % RECORDS_PER_CHECK:
                    self.every_records()
        finally:
            if count > stats.get("RECORD", 0):
                stats["RECORD"] = count

    def _as_usual(
        self, item: str | OversizedLine | dict[str, t.Any], count: int, callbacks: dict[str, t.Callable[[dict], None]],
        stats: dict[str, int],
    ) -> int:
        """`_read_lines`: a line (or a message it parsed) no taker took, sent as `_one_line` sends it.

        `count` is the RECORDs read so far, which `stats` holds while it is sent; returns the new count.
        """
        if count:
            stats["RECORD"] = count
        if type(item) is dict:
            self._hand_over(item, item.get("type"), callbacks, stats)
        else:
            self._one_line(t.cast("str | OversizedLine", item), callbacks, stats)
        return stats.get("RECORD", 0)

    def _count_record(self, stats: dict[str, int]) -> None:
        count = stats["RECORD"] = stats.get("RECORD", 0) + 1
        if not count % RECORDS_PER_CHECK:
            self.every_records()

    def forget_takers(self) -> None:
        """A stream's sink changed (a SCHEMA): ask again which streams' records to take, and how."""
        self._takers.clear()
        self._record_takers.clear()

    def _one_line(
        self, line: str | OversizedLine, callbacks: dict[str, t.Callable[[dict], None]], stats: dict[str, int],
    ) -> None:
        """Read one input line (numbered `line_number`) and hand its message to its callback."""
        if type(line) is OversizedLine:
            self.on_oversized(line)
            self._count_record(stats)
            return
        text = t.cast("str", line)
        message: dict[str, t.Any] | None
        if text.isspace():  # blank (a line is never empty; `strip` would copy every line)
            message = {"type": "_BLANK"}
        else:  # `decode_line`, inlined: one call fewer per line
            message = _read_fast(text)
            if message is None:
                message = _decode_exact(text, self.line_number)
        kind = message.get("type")
        if kind == "RECORD" and self.record_taker is not None:
            # Straight to the stream's record taker, if it has one (inlined: once per line).
            stream, record = message.get("stream"), message.get("record")
            if type(stream) is str and type(record) is dict:  # else handle_record says what is wrong
                take = self._record_takers[stream]
                if take is not None:
                    take(record)
                    count = stats["RECORD"] = stats.get("RECORD", 0) + 1
                    if not count % RECORDS_PER_CHECK:
                        self.every_records()
                    return
        self._hand_over(message, kind, callbacks, stats)

    def _hand_over(
        self, message: dict[str, t.Any], kind: object, callbacks: dict[str, t.Callable[[dict], None]],
        stats: dict[str, int],
    ) -> None:
        """Check a message no record taker took, and hand it to its callback."""
        if not isinstance(kind, str):
            msg = f"Input line {self.line_number} has no message type (a string): it is not a Singer message."
            raise InputError(msg)
        problem = message_problem(message) if kind != "RECORD" else None  # RECORD: checked by handle_record
        if problem is not None:
            msg = f"Input line {self.line_number}: {problem}."
            raise InputError(msg)
        callback = callbacks.get(kind)
        if callback is not None:
            callback(message)
        else:
            self.on_unknown(message)
        count = stats[kind] = stats.get(kind, 0) + 1
        if not count % RECORDS_PER_CHECK and kind == "RECORD":
            self.every_records()

    @override
    def on_unknown(self, message_dict: dict) -> None:
        """Blank lines are skipped; any other unknown type is an input error."""
        if message_dict.get("type") == "_BLANK":
            return
        msg = (
            f"Input line {self.line_number}: unknown Singer message type "
            f"{message_dict.get('type')!r}."
        )
        raise InputError(msg)


def oversized_error(line_number: int, line: OversizedLine) -> InputError:
    """The error for a line over the cap that is not a RECORD of a stream with a SCHEMA."""
    return InputError(
        f"Input line {line_number} is {line.size:,} characters long, over the {MAX_LINE_CHARS:,} a line may hold, "
        "and is not a RECORD of a stream whose SCHEMA came before it."
    )
