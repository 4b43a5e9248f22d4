"""Word expansion: BuildKit's lexer behaviour (its envVarTest / wordsTest / matches tests),
re-expressed as our own tables, plus generated words that may only fail with our error."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from executor.dockerfile.errors import ExpansionError
from executor.dockerfile.shell import Lexer, expand, expand_heredoc, expand_with_matches, expand_words


@dataclass(frozen=True)
class Err:
    """An expansion that must fail with this message (after `failed to process "WORD": `)."""

    message: str


def _fails(err: ExpansionError, word: str, expected: Err) -> None:
    text = str(err)
    assert text.startswith("failed to process \"") and text.endswith(f"\": {expected.message}"), text


ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}

# (word, expected single-word result or Err(message))
SINGLE = [
    ("plain", "plain"),
    ("a'b'c", "abc"),
    ("a'bc", Err('unexpected end of statement while looking for matching single-quote')),
    ("a\\'bc", "a'bc"),
    ("a\\\\'bc", Err('unexpected end of statement while looking for matching single-quote')),
    ("x\\ty", "xty"),
    ('"x\\ty"', "x\\ty"),
    ('"x\\\\ty"', "x\\ty"),
    ("'x\\ty'", "x\\ty"),
    ("end\\", "end"),
    ("end\\\\", "end\\"),
    ('"open', Err('unexpected end of statement while looking for matching double-quote')),
    ('"open\\"', Err('unexpected end of statement while looking for matching double-quote')),
    ('"it\'s"', "it's"),
    ("'open", Err('unexpected end of statement while looking for matching single-quote')),
    ("'back\\'", "back\\"),
    ("'two\\\\back'", "two\\\\back"),
    ('"\'\'"', "''"),
    ("$.", "$."),
    ("a$1b", "ab"),
    ("a$.b", "a$.b"),
    ("a$pwd.", "a."),
    ("a$PWD", "a/home"),
    ("a\\$PWD", "a$PWD"),
    ("a\\\\$PWD", "a\\/home"),
    ('"a\\$PWD"', "a$PWD"),
    ('"a\\\\$PWD"', "a\\/home"),
    ("\\${}", "${}"),
    ("a\\${}b", "a${}b"),
    ("${}", Err('syntax error: bad substitution')),
    ("a${}b", Err('syntax error: bad substitution')),
    ("a${unset}b", "ab"),
    ("a${PWD}", "a/home"),
    ("a${.}", Err('unsupported modifier (.) in substitution')),
    ("${X:-dflt}", "dflt"),
    ("${PWD:-dflt}", "/home"),
    ("${X:-$PWD}", "/home"),
    ("${X:-${PWD:-no}}", "/home"),
    ("${X:-${Y:-deep}}", "deep"),
    ("${X:Y}", Err('unsupported modifier (:Y) in substitution')),
    ("${X?}", Err('X: is not allowed to be unset')),
    ("${X:?}", Err('X: is not allowed to be unset')),
    ("${PWD?}", "/home"),
    ("${PWD:?}", "/home"),
    ("${NULL?}", ""),
    ("${NULL:?}", Err('NULL: is not allowed to be empty')),
    ("${NULL-set}", ""),
    ("${NULL:-empty}", "empty"),
    ("${NULL+set}", "set"),
    ("${NULL:+set}", ""),
    ("${X:+${PWD}}", ""),
    ("${PWD:+${X}}", ""),
    ("${PWD:+${SHELL}}", "bash"),
    ("${PWD:+val}", "val"),
    ("'${X}'", "${X}"),
    ('"${PWD}"', "/home"),
    ('"\'$PWD\'"', "'/home'"),
    ("'\\$PWD'", "\\$PWD"),
    ("'\"q\"'", '"q"'),
    ("${PWD", Err("syntax error: missing '}'")),
    ("${PWD:=x}", Err('unsupported modifier (:=) in substitution')),
    ("${PWD:+${PWD}:}", "/home:"),
    ("${X:-\\$PWD:}", "$PWD:"),
    ("${X:-\\${PWD}z}", "${PWDz}"),
    ("안녕$KOREAN", "안녕한국어"),
    ("안'녕'하세요", "안녕하세요"),
    ("안녕\\t", "안녕t"),
    ("${{a}", Err('syntax error: bad substitution')),
    ("${a}}", "}"),
    ("${a:-b}}", "b}"),
    ("${a:-b", Err("syntax error: missing '}'")),
    ("${a:-b ${c}", Err("syntax error: missing '}'")),
    ("${a:-b {c}", "b {c"),
    ("${:}", Err('syntax error: bad substitution')),
    ("${:-b}", Err('syntax error: bad substitution')),
    # positional and special parameters are never set
    ("$1", ""), ("${9}", ""), ("${1:-d}", "d"), ("${2:+d}", ""), ("$999x", "x"), ("${001:-d}x", "dx"),
    ("$@", ""), ("$@@@", "@@"), ("${@:-d}", "d"), ("$*", ""), ("$#", ""), ("${?:-d}", "d"),
    ("$-", ""), ("$$", ""), ("$!", ""), ("$0", ""), ("${0:+x}", ""),
]


@pytest.mark.parametrize(("word", "expected"), SINGLE)
def test_single_word(word, expected):
    if isinstance(expected, Err):
        with pytest.raises(ExpansionError) as err:
            expand(word, ENV)
        _fails(err.value, word, expected)
    else:
        assert expand(word, ENV) == expected


# (env, word, expected words or Err(message))
WORDS = [
    ({}, "hello", ["hello"]),
    ({}, "hello${hi}bye", ["hellobye"]),
    ({"hi": "hi"}, "hello${hi}bye", ["hellohibye"]),
    ({"space": "abc  def"}, "hello${space}bye", ["helloabc", "defbye"]),
    ({"space": "abc  def"}, 'hello"${space}"bye', ["helloabc  defbye"]),
    ({"space": "abc  def"}, 'hello "${space}"bye', ["hello", "abc  defbye"]),
    ({"lead": "  ab c"}, "hello${lead}def", ["hello", "ab", "cdef"]),
    ({"lead": "  ab c"}, 'hello"${lead}" def', ["hello  ab c", "def"]),
    ({"lead": "  ab c"}, "hello${lead}", ["hello", "ab", "c"]),
    ({"trail": "ab c   "}, "hello${trail}", ["helloab", "c"]),
    ({"trail": "ab c   "}, "hello${trail}d", ["helloab", "c", "d"]),
    ({"trail": "ab c   "}, 'hello"${trail}"d', ["helloab c   d"]),
    ({"trail": "ab c   "}, 'hel"lo${trail}"', ["helloab c   "]),
    ({}, 'hello" there  "', ["hello there  "]),
    ({}, "hello there     ", ["hello", "there"]),
    ({}, "hello\\ there", ["hello there"]),
    ({}, 'hello" there', Err('unexpected end of statement while looking for matching double-quote')),
    ({}, 'hello\\" there', ['hello"', "there"]),
    ({}, 'hello"\\\\there"', ["hello\\there"]),
    ({}, 'hello"\\there"', ["hello\\there"]),
    ({}, "hello'\\\\there'", ["hello\\\\there"]),
    ({}, "hello'$there'", ["hello$there"]),
    ({}, '""', []),
    ({"p": "80 443/udp"}, "$p 22", ["80", "443/udp", "22"]),
]


@pytest.mark.parametrize(("env", "word", "expected"), WORDS)
def test_words(env, word, expected):
    if isinstance(expected, Err):
        with pytest.raises(ExpansionError) as err:
            expand_words(word, env)
        _fails(err.value, word, expected)
    else:
        assert expand_words(word, env) == expected


# (env, word, expected, matched, unmatched) -- None as expected means an error
MATCHES = [
    ({"D": "d"}, "x", "x", set(), set()),
    ({"D": "d"}, "x ${UNUSED}", "x ", set(), {"UNUSED"}),
    ({"FOO": "y"}, "x ${FOO}", "x y", {"FOO"}, set()),
    ({"FOO": "xxx", "BAR": ""}, "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", "xxx  ccc", {"FOO", "BAR"}, {"BAZ"}),
    ({"FOO": "xxx", "BAR": ""}, "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", "xxx bbb ccc", {"FOO", "BAR"}, {"BAZ"}),
    ({"FOO": "xxx", "BAR": ""}, "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", "aaa bbb ", {"FOO", "BAR"}, {"BAZ"}),
    ({"FOO": "xxx", "BAR": ""}, "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", "aaa  ", {"FOO", "BAR"}, {"BAZ"}),
    ({"FOO": "xxx"}, "${FOO?aaa}", "xxx", {"FOO"}, set()),
    ({"BAR": ""}, "${BAR?bbb}", "", {"BAR"}, set()),
    ({}, "${BAZ?ccc}", Err('BAZ: ccc'), set(), set()),
    ({"BAR": ""}, "${BAR:?bbb}", Err('BAR: bbb'), set(), set()),
    ({}, "${FOO=aaa}", Err('unsupported modifier (=) in substitution'), set(), set()),
    ({}, "${FOO=}", Err('unsupported modifier (=) in substitution'), set(), set()),
    ({"FOO": "()[]{}^$.*?|\\x"}, "${FOO#()[]{\\}^$.\\*\\?|\\\\}", "x", {"FOO"}, set()),
    ({"FOO": "xx**"}, "${FOO%%\\**}", "xx", {"FOO"}, set()),
    ({"FOO": "xxyy"}, "${FOO#*x*y}", "y", {"FOO"}, set()),
    ({"FOO": "xxyy"}, "${FOO#*}", "xxyy", {"FOO"}, set()),
    ({"FOO": "xxyy", "BAR": "x"}, "${FOO#$BAR}", "xyy", {"FOO", "BAR"}, set()),
    ({"FOO": "xxyy", "BAR": ""}, "${FOO#$BAR}", "xxyy", {"FOO", "BAR"}, set()),
    ({"FOO": "xxyy"}, "${FOO#}", "xxyy", {"FOO"}, set()),
    ({"FOO": "xxyy"}, "${FOO##*x}", "yy", {"FOO"}, set()),
    ({"FOO": "xxyy"}, "${FOO##}", "xxyy", {"FOO"}, set()),
    ({"FOO": "???y"}, "${FOO#?\\?}", "?y", {"FOO"}, set()),
    ({"FOO": "xxyy"}, "${ABC:-.}${FOO%x}${ABC:-.}", ".xxyy.", {"FOO"}, {"ABC"}),
    ({"FOO": "a***yy*"}, "${FOO%%\\**\\*}", "a", {"FOO"}, set()),
    ({"FOO": "xxyy"}, "${FOO%}", "xxyy", {"FOO"}, set()),
    ({"FOO": "xxyy"}, "${FOO%y}", "xxy", {"FOO"}, set()),
    ({"FOO": "xxyy"}, "${FOO%%y*}", "xx", {"FOO"}, set()),
    ({"FOO": "xxyy"}, "${FOO%y*}", "xxy", {"FOO"}, set()),
    ({"FOO": "x"}, "${FOO:#}", Err('unsupported modifier (:#) in substitution'), set(), set()),
    ({"FOO": "x"}, "${FOO:%%}", Err('unsupported modifier (:%) in substitution'), set(), set()),
    ({"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"}, "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
     "/foo.*/*.txt - /foo..*.txt", {"FOO", "NEEDLE"}, set()),
    ({"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"}, "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
     "/tmp/bar.txt - /bar.txt", {"FOO", "NEEDLE"}, set()),
    ({"FOO": "abc"}, "${FOO//x*/-}", "abc", {"FOO"}, set()),
    ({"FOO": "abc"}, "${FOO//b/$$}", "ac", {"FOO"}, {"$"}),  # $$ is the (never set) PID parameter
    ({"FOO": "a.b.c"}, "${FOO//./_}", "a_b_c", {"FOO"}, set()),
    ({"FOO": "x"}, "${FOO/x", Err("syntax error: missing '/' in ${}"), set(), set()),
    ({"FOO": "x"}, "${FOO#\\x}", Err("invalid pattern (\\x) in substitution: invalid escape '\\x'"), set(), set()),
]


@pytest.mark.parametrize(("env", "word", "expected", "matched", "unmatched"), MATCHES)
def test_matches(env, word, expected, matched, unmatched):
    if isinstance(expected, Err):
        with pytest.raises(ExpansionError) as err:
            expand_with_matches(word, env)
        _fails(err.value, word, expected)
        return
    res = expand_with_matches(word, env)
    assert res.result == expected
    assert res.matched == matched
    assert res.unmatched == unmatched


def test_required_variable_messages():
    word = "${VAR:?message here$ARG}"
    assert expand(word, {"VAR": "plain", "ARG": "x"}) == "plain"
    for env in ({"VAR": "", "ARG": "x"}, {"ARG": "x"}):
        with pytest.raises(ExpansionError, match="message herex"):
            expand(word, env)
    unset = "${VAR?message here$ARG}"
    assert expand(unset, {"VAR": "", "ARG": "x"}) == ""
    with pytest.raises(ExpansionError, match="VAR: message herex"):
        expand(unset, {"ARG": "x"})


def test_backtick_escape():
    assert expand("a`$b", {"b": "x"}, escape="`") == "a$b"
    assert expand("C:\\path", {}, escape="`") == "C:\\path"
    assert expand('"a`"b"', {}, escape="`") == 'a"b'
    assert expand_words("a` b c", {}, escape="`") == ["a b", "c"]


def test_skip_unset_and_raw_modes():
    lex = Lexer(skip_unset_env=True)
    assert lex.process_word("$A ${B} ${C:-x} ${D/a/b}", {}) == "$A ${B} ${C:-x} ${D/a/b}"
    raw = Lexer(raw_quotes=True, raw_escapes=True)
    assert raw.process_words("'a b' \"c\\d\" e\\ f", {}) == ["'a b'", '"c\\\\d"', "e\\ f"]


def test_heredoc_marker_kept_as_one_word():
    assert expand_words("cat <<  EOF > x", {}) == ["cat", "<<  EOF", ">", "x"]


def test_deep_nesting_is_our_error_or_works():
    assert expand("${a:-" * 50 + "x" + "}" * 50, {}) == "x"
    with pytest.raises(ExpansionError, match="nested too deeply"):
        expand("${a:-" * 5000 + "x" + "}" * 5000, {})


def test_error_names_the_word():
    with pytest.raises(ExpansionError, match=r'failed to process "\$\{x": syntax error: missing'):
        expand("${x", {})


_ALPHABET = st.sampled_from(list("ab$ {}:-+?#%/*\\'\"`x1@!.") + ["${", "${a", "$a", "\t", "é"])


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@example(word="${a?a}", escape="\\", env={})
@given(st.lists(_ALPHABET, max_size=25).map("".join), st.sampled_from(["\\", "`"]),
       st.dictionaries(st.sampled_from(["a", "b", "x"]), st.text(alphabet="ab */?\\", max_size=5), max_size=3))
def test_generated_words_fail_only_with_our_error(word, escape, env):
    try:
        single = expand(word, env, escape)
        words = expand_words(word, env, escape)
    except ExpansionError as err:      # a message naming the word and what is wrong with it
        # what is wrong: a reason, or for ${VAR?message} the variable and the Dockerfile's own message
        # (BuildKit's "a: a" for ${a?a})
        assert str(err).startswith('failed to process "') and str(err).split('": ', 1)[1].strip(), str(err)
        return
    assert isinstance(single, str)
    assert all(isinstance(w, str) and w for w in words)


def test_heredoc_bodies_keep_quotes_and_expand_variables():
    res = expand_heredoc("echo \"$A\" '${B:-b}' \\$C\nline2 $UNSET\n", {"A": "a"})
    assert res.result == "echo \"a\" 'b' $C\nline2 \n"
    assert res.matched == {"A"} and res.unmatched == {"B", "UNSET"}
