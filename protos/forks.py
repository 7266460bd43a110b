"""Fields that Caffe 1.0's schema lacks but real prototxt and .caffemodel files from forks use.

Caffe 1.0 (src/caffe/util/io.cpp, ReadProtoFromTextFile) rejects any unknown field. Files written for
forks (SSD, Faster R-CNN, SegNet, PSPNet, ShuffleNet, DenseNet...) carry some. Three kinds:

* fields of a fork recaffe runs, declared in the fork schemas (protos/forkschema/<family>.proto, with
  the fork's own field numbers): read strictly, kept in the message as fields protobuf does not know
  (unknown fields, under the fork's number), written back under that number by the .caffemodel writer
  and the prototxt printer; layers read them with ``layer_param(lp, "norm_param")``, decoded by the
  schema of the family of the layer's *type* (forks reuse numbers: PSPNet's seg_accuracy_param and
  ShuffleNet's shuffle_channel_param are both 164). A fork number that BVLC uses in the same message
  (SegNet's upsample_param is 137, BVLC's embed_param) is held in memory as ``SHADOW`` + number, so
  that BVLC's parser never reads it as the BVLC field; ``adopt`` moves such fields out of the BVLC
  field after a binary read, ``to_fork_wire`` writes them back under the fork's number;
* a *known* fork field that means a BVLC field (``pooling_param { ceil_mode: false }`` ->
  ``round_mode: FLOOR``, as in BVLC master's pooling_layer.cpp), rewritten with a warning;
* anything else: an error naming file:line:col, or dropped with a warning when ``lenient`` is set.

Fork fields are found with one pass of protobuf's own text tokenizer (no hand-written grammar: the
pass only tracks which message each ``name { ... }`` block belongs to and where it sits); the fork
field's text is parsed by ``text_format`` with the fork's message, the rest of the text strictly with
the BVLC one.
"""
import difflib
import re
import warnings

from google.protobuf import text_format

from .forkschema.fields import (SHADOW, ForkField, adopt, family_of, fork_field, fork_fields,  # noqa: F401
                                has_layer_param, layer_param, printable_fork_fields, set_layer_param,
                                to_fork_wire, _BY_NAME, _attach_value)


class ProtoWarning(UserWarning):
    """A prototxt was read with a change: a fork field mapped or an unknown field dropped."""


def _ceil_mode(value):
    v = value.strip("'\"").lower()
    if v in ("true", "t", "1"):
        return "round_mode: CEIL"
    if v in ("false", "f", "0"):
        return "round_mode: FLOOR"
    return None


#: (message full name, field name) -> function(value token) -> replacement text (None: bad value)
FORK_FIELDS = {
    ("caffe.PoolingParameter", "ceil_mode"): _ceil_mode,
}


# -- reading prototxt text -----------------------------------------------------------------------------
class Unknown:
    """One unknown field occurrence: where it is (1-based line/col, 0-based offsets), its value and the
    path of the message holding it ((field name, index or None), ...)."""

    def __init__(self, message, name, line, col, start, end, value, field_names, enum=None, path=()):
        self.message, self.name, self.line, self.col, self.enum = message, name, line, col, enum
        self.start, self.end, self.value, self.field_names, self.path = start, end, value, field_names, path


class _Scanner:
    def __init__(self, text):
        self.lines = text.split("\n")
        self.offsets = [0]
        for ln in self.lines[:-1]:
            self.offsets.append(self.offsets[-1] + len(ln) + 1)
        self.tok = text_format.Tokenizer(self.lines)
        self.end = 0  # offset just after the last consumed token

    def pos(self):
        return self.offsets[self.tok._line] + self.tok._column

    def next(self):
        self.end = self.pos() + len(self.tok.token)
        self.tok.NextToken()

    def skip_block(self, close):
        depth = 1
        while not self.tok.AtEnd():
            t = self.tok.token
            self.next()
            if t in ("{", "<"):
                depth += 1
            elif t in ("}", ">"):
                depth -= 1
                if depth == 0:
                    return

    def value(self, sub, out, path, name, counts):
        """Consume one field value (scalar, message block or [list]); return the scalar text. Message
        values of a known field are scanned with ``path`` + (name, index)."""
        t = self.tok.token
        if t in ("{", "<"):
            self.next()
            close = "}" if t == "{" else ">"
            if sub is not None:
                index = counts.get(name)
                if index is not None:
                    counts[name] = index + 1
                self.message(sub, out, close, path + ((name, index),))
            else:
                self.skip_block(close)
            return None
        if t == "[":
            self.next()
            while not self.tok.AtEnd() and self.tok.token != "]":
                if self.tok.token == ",":
                    self.next()
                else:
                    self.value(sub, out, path, name, counts)
            self.next()
            return None
        self.next()
        if t[:1] in ("'", '"'):  # adjacent string literals concatenate
            while self.tok.token[:1] in ("'", '"'):
                self.next()
        return t

    def message(self, desc, out, close=None, path=()):
        counts = {}   # repeated message field name -> occurrences so far
        while not self.tok.AtEnd():
            if close is not None and self.tok.token == close:
                self.next()
                return
            line, col, start = self.tok._line + 1, self.tok._column + 1, self.pos()
            name = self.tok.token
            self.next()
            if name == "[":  # extension / Any type URL: not used by Caffe; let the parser judge
                while not self.tok.AtEnd() and self.tok.token != "]":
                    self.next()
                self.next()
                field = None
                name = None
            else:
                field = desc.fields_by_name.get(name)
            if self.tok.token == ":":
                self.next()
            sub = field.message_type if field is not None else None
            if field is not None and field.is_repeated and sub is not None:
                counts.setdefault(name, 0)
            value = self.value(sub, out, path, name, counts)
            if self.tok.token in (";", ","):
                self.next()
            if field is None and name is not None:
                out.append(Unknown(desc.full_name, name, line, col, start, self.end, value,
                                   sorted(desc.fields_by_name), path=path))
            elif field is not None and field.enum_type is not None and value is not None and \
                    value not in field.enum_type.values_by_name and not value.lstrip("-").isdigit():
                out.append(Unknown(desc.full_name, name, line, col, start, self.end, value,
                                   [v.name for v in field.enum_type.values], enum=field.enum_type.full_name,
                                   path=path))


def find_unknown(text, descriptor):
    """Unknown field occurrences of ``text`` read as ``descriptor`` (best effort on malformed text: the
    strict parse that follows reports syntax errors)."""
    out = []
    try:
        _Scanner(text).message(descriptor, out)
    except (text_format.ParseError, IndexError, ValueError):
        pass
    return out


def suggestion(name, field_names):
    """'did you mean x?' for a near miss, else the list of valid field names."""
    close = difflib.get_close_matches(name, field_names, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "valid fields: " + ", ".join(field_names)


def _parse_fork_value(text, u, f, path, error_cls):
    """The serialized fork message value of occurrence ``u`` of fork field ``f``: its text parsed with
    the fork's message (padded so that errors keep the file's line and column)."""
    snippet = "\n" * (u.line - 1) + " " * (u.col - 1) + text[u.start:u.end]
    holder = f.container()
    try:
        text_format.Parse(snippet, holder)
    except text_format.ParseError as e:
        msg = re.sub(r"^\d+:\d+ : ", "", str(e))
        msg = re.sub(r"^'.*?': ", "", msg, count=1) if msg.startswith("'") else msg
        raise error_cls(f"{path}:{e.GetLine()}:{e.GetColumn()}: {msg.rstrip('.')} (in fork field "
                        f"'{u.name}' of {u.message}, {f.family} fork)") from None
    return holder.SerializeToString()


def clean(text, descriptor, path, lenient, error_cls):
    """Return (``text`` with fork fields taken out, known fork fields rewritten and (when lenient)
    unknown ones removed, the fork fields to ``attach`` to the parsed message).

    Raises ``error_cls`` (one line, path:line:col) at the first unknown field when not lenient, or at a
    fork field whose value cannot be read."""
    edits, dropped, attachments, seen = [], {}, [], set()
    for u in find_unknown(text, descriptor):
        where = f"{path}:{u.line}:{u.col}"
        fork = FORK_FIELDS.get((u.message, u.name))
        ff = _BY_NAME.get((u.message, u.name)) if u.enum is None else None
        if fork is not None:
            repl = fork(u.value or "")
            if repl is None:
                raise error_cls(f"{where}: fork field '{u.name}' in {u.message} has value {u.value!r}; "
                                "expected true or false")
            warnings.warn(f"{where}: fork field '{u.name}: {u.value}' in {u.message} read as '{repl}'",
                          ProtoWarning, stacklevel=4)
            edits.append((u.start, u.end, repl))
        elif ff is not None:
            if not ff.fd.is_repeated:
                if (u.path, u.name) in seen:
                    raise error_cls(f"{where}: fork field '{u.name}' given twice in one {u.message}; "
                                    "expected it once (the field is not repeated)")
                seen.add((u.path, u.name))
            attachments.append((u.path, ff, _parse_fork_value(text, u, ff, path, error_cls)))
            edits.append((u.start, u.end, ""))
        elif u.enum is not None and not lenient:
            raise error_cls(f"{where}: invalid value {u.value} for enum {u.enum} (field '{u.name}'); "
                            f"expected one of {', '.join(u.field_names)}")
        elif lenient:
            dropped.setdefault((u.message, u.name), []).append(u)
            edits.append((u.start, u.end, ""))
        else:
            raise error_cls(f"{where}: unknown field '{u.name}' in {u.message}; "
                            f"{suggestion(u.name, u.field_names)} (lenient=True or --lenient drops unknown fields)")
    for (message, name), occ in dropped.items():
        lines = ", ".join(str(u.line) for u in occ[:5]) + (", ..." if len(occ) > 5 else "")
        what = f"field '{name}' with unknown enum value(s) {sorted({u.value for u in occ})}" if occ[0].enum \
            else f"unknown field '{name}'"
        warnings.warn(f"{path}:{occ[0].line}:{occ[0].col}: dropped {what} of {message} "
                      f"({len(occ)} occurrence(s), line(s) {lines})", ProtoWarning, stacklevel=4)
    for start, end, repl in sorted(edits, reverse=True):
        text = text[:start] + repl + text[end:]
    return text, attachments


def attach(msg, attachments):
    """Put the fork fields ``clean`` took out of the text into the parsed message ``msg``."""
    for path, f, payload in attachments:
        target = msg
        for name, index in path:
            target = getattr(target, name)[index] if index is not None else getattr(target, name)
        _attach_value(target, f, getattr(f.container.FromString(payload), f.fd.name))
    return msg
