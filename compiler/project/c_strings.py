"""Text from a model (tensor names, the model's path) as C string literals.

Generated C never carries a model's own text in a comment or a directive: names become
identifiers (`compiler.plan.unique_identifiers`) and the original text, where the API
returns it (``<prefix>_input_name``...), is a string literal written by `c_string_literal`.
The literal is pure printable ASCII: ``"``, ``\\`` and ``?`` (trigraphs such as ``??/``)
are backslash-escaped and every other byte outside 0x20..0x7e, the UTF-8 bytes of
non-ASCII characters included, is a three-digit octal escape, so the C compiler stores
the exact UTF-8 bytes of the text whatever the source character set or trigraph mode.
"""

from __future__ import annotations

_SIMPLE = {ord('"'): '\\"', ord("\\"): "\\\\", ord("?"): "\\?"}


def c_string_literal(text: str) -> str:
    r"""`text` as a C string literal (with its quotes) holding its UTF-8 bytes.

    A path decoded by Python with ``surrogateescape`` (bytes that are not UTF-8) gets its
    original bytes back; other lone surrogates (which a protobuf string cannot hold) are
    kept as their ``surrogatepass`` bytes rather than failing.

    Example:
        >>> print(c_string_literal('say "hi"??/ \u00e9'))
        "say \"hi\"\?\?/ \303\251"
    """
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "surrogatepass")
    out = []
    for byte in data:
        if byte in _SIMPLE:
            out.append(_SIMPLE[byte])
        elif 0x20 <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'
