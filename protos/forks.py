"""Fields that Caffe 1.0's schema lacks but real prototxt files from forks use.

Caffe 1.0 (src/caffe/util/io.cpp, ReadProtoFromTextFile) rejects any unknown field. Files written for
forks (DenseNet, ResNeXt, SSD, Faster R-CNN...) carry a few; this module finds them with one pass of
protobuf's own text tokenizer (no hand-written grammar: the pass only tracks which message each
``name { ... }`` block belongs to, so that it can tell known from unknown names), then either

* rewrites a *known* fork field into the field that means the same thing in our schema
  (``pooling_param { ceil_mode: false }`` -> ``round_mode: FLOOR``, as in BVLC master's
  pooling_layer.cpp where round_mode selects floor or ceil of the output size), with a warning, or
* drops an unknown field with a warning naming file:line:col when ``lenient`` is set.

The cleaned text is then parsed strictly by ``text_format`` as usual.
"""
import difflib
import warnings

from google.protobuf import text_format


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


class Unknown:
    """One unknown field occurrence: where it is (1-based line/col, 0-based offsets) and its value."""

    def __init__(self, message, name, line, col, start, end, value, field_names, enum=None):
        self.message, self.name, self.line, self.col, self.enum = message, name, line, col, enum
        self.start, self.end, self.value, self.field_names = start, end, value, field_names


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

    def value(self, sub, out):
        """Consume one field value (scalar, message block or [list]); return the scalar text."""
        t = self.tok.token
        if t in ("{", "<"):
            self.next()
            close = "}" if t == "{" else ">"
            if sub is not None:
                self.message(sub, out, close)
            else:
                self.skip_block(close)
            return None
        if t == "[":
            self.next()
            while not self.tok.AtEnd() and self.tok.token != "]":
                if self.tok.token == ",":
                    self.next()
                else:
                    self.value(sub, out)
            self.next()
            return None
        self.next()
        if t[:1] in ("'", '"'):  # adjacent string literals concatenate
            while self.tok.token[:1] in ("'", '"'):
                self.next()
        return t

    def message(self, desc, out, close=None):
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
            value = self.value(sub, out)
            if self.tok.token in (";", ","):
                self.next()
            if field is None and name is not None:
                out.append(Unknown(desc.full_name, name, line, col, start, self.end, value,
                                   sorted(desc.fields_by_name)))
            elif field is not None and field.enum_type is not None and value is not None and \
                    value not in field.enum_type.values_by_name and not value.lstrip("-").isdigit():
                out.append(Unknown(desc.full_name, name, line, col, start, self.end, value,
                                   [v.name for v in field.enum_type.values], enum=field.enum_type.full_name))


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


def clean(text, descriptor, path, lenient, error_cls):
    """Return ``text`` with known fork fields rewritten and (when lenient) unknown ones removed.

    Raises ``error_cls`` (one line, path:line:col) at the first unknown field when not lenient, or at a
    fork field whose value cannot be mapped."""
    edits, dropped = [], {}
    for u in find_unknown(text, descriptor):
        where = f"{path}:{u.line}:{u.col}"
        fork = FORK_FIELDS.get((u.message, u.name))
        if fork is not None:
            repl = fork(u.value or "")
            if repl is None:
                raise error_cls(f"{where}: fork field '{u.name}' in {u.message} has value {u.value!r}; "
                                "expected true or false")
            warnings.warn(f"{where}: fork field '{u.name}: {u.value}' in {u.message} read as '{repl}'",
                          ProtoWarning, stacklevel=4)
            edits.append((u.start, u.end, repl))
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
    return text
