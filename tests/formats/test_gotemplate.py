"""Go templates (runtime.formats.gotemplate): every construct, Go's printing, functions and errors.

The expected outputs and error reasons of OUTPUTS, EXEC_ERRORS and PARSE_ERRORS were produced by Go's
text/template with sprig and eKuiper's ``json``/``base64`` registered as eKuiper does, run on the same data
(JSON integers as int64, other numbers as float64), and then checked against Oort. Oort's messages add the
column (1-based, in characters) where Go gives only the line (parse) or a 0-based byte offset (execution).
What Go only does since 1.22 (eKuiper builds with 1.25) is reasoned from Go's source in the tests below the
tables, as are Oort's few deliberate differences.
"""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import EncodeError, PlanError
from runtime.formats.gotemplate import (
    GoTemplate,
    PropertyTemplate,
    TemplateExecError,
    TemplateSyntaxError,
    has_template,
    render_property,
)

ROW: dict[str, Any] = {
    "ab": "hello",
    "n": 3,
    "f": 3.5,
    "whole": 3.0,
    "big": 1e21,
    "small": 0.00001,
    "million": 1000000.0,
    "t": True,
    "nil": None,
    "s": "a b",
    "empty": "",
    "zero": 0,
    "list": [1, 2.5, "x", None, {"k": "v"}],
    "m": {"b": 1, "a": [1, 2], "c": {"z": None}},
    "html": "<a href='x'>&</a>",
    "uni": "héllo ☃",
    "temps": [10.5, 20.3, 30.3],
}
ROWS: list[dict[str, Any]] = [{"id": 1, "t": 25.5}, {"id": 2, "t": 31.0}]
DATA: dict[str, Any] = {
    "row": ROW,
    "rows": ROWS,
    "rows0": ROWS[0],
    "device": {
        "device_id": "1",
        "values": [{"temperature": 10.5}, {"temperature": 20.3}, {"temperature": 30.3}],
    },
}

OUTPUTS = [
    ("text", "plain {text} stays", "row", "plain {text} stays"),
    ("field", "{{.ab}}", "row", "hello"),
    ("trim-both", "a  {{- .ab -}}  b", "row", "ahellob"),
    ("trim-newlines", "x\n  {{- .ab}}\n  y {{.n -}}\n\n  z", "row", "xhello\n  y 3z"),
    ("minus-number-no-trim", "{{-3}} {{ 3 -}} 4", "row", "-3 34"),
    ("comment", "a{{/* a\nmulti-line comment */}}b {{- /* trimmed */ -}} c", "row", "abc"),
    ("spaces-and-newlines-in-action", "{{ .n }}|{{\t.n\n}}", "row", "3|3"),
    (
        "numbers",
        "{{.n}}|{{.f}}|{{.whole}}|{{.big}}|{{.small}}|{{.million}}",
        "row",
        "3|3.5|3|1e+21|1e-05|1e+06",
    ),
    (
        "scalars",
        "{{.t}}|{{.nil}}|{{.missing}}|{{.s}}|{{.empty}}|{{.zero}}",
        "row",
        "true|<no value>|<no value>|a b||0",
    ),
    ("slice", "{{.list}}", "row", "[1 2.5 x <nil> map[k:v]]"),
    ("map-sorted", "{{.m}}", "row", "map[a:[1 2] b:1 c:map[z:<nil>]]"),
    ("whole-row", "{{.}}", "rows", "[map[id:1 t:25.5] map[id:2 t:31]]"),
    ("nested-nil", "{{.m.c}}|{{.m.c.z}}|{{.missing.deeper}}", "row", "map[z:<nil>]|<no value>|<no value>"),
    (
        "literals",
        "{{1.0}} {{1e3}} {{0x1F}} {{'a'}} {{-7}} {{1e100}} {{123456.789}} {{1234567.0}} {{0.0001}} {{.5}} {{-0.0}}",
        "row",
        "1 1000 31 97 -7 1e+100 123456.789 1.234567e+06 0.0001 0.5 -0",
    ),
    (
        "literal-exponents",
        "{{1e21}} {{1e20}} {{100000.0}} {{1e-7}} {{0x1.8p1}} {{1_000}} {{0o17}} {{017}} {{0b101}}",
        "row",
        "1e+21 1e+20 100000 1e-07 3 1000 15 15 5",
    ),
    (
        "strings",
        "{{\"q\\\"t\\u00e9\\x41\\101\"}} {{`raw\\n`}} {{true}} {{false}} {{'\\n'}} {{'é'}}",
        "row",
        'q"téAA raw\\n true false 10 233',
    ),
    ("declare", "{{$x := .n}}{{$x}}", "row", "3"),
    ("assign", "{{$x := 1}}{{$x = 2}}{{$x}}", "row", "2"),
    ("dollar", "{{with .m}}{{$.n}}/{{.b}}{{end}}", "row", "3/1"),
    ("var-fields", "{{$x := .m}}{{$x.a}} {{$n := .nil}}{{$n.x}}", "row", "[1 2] <no value>"),
    ("if-declares", "{{if $v := .n}}{{$v}}{{end}}", "row", "3"),
    ("assign-in-range", "{{$x := 0}}{{range .temps}}{{$x = .}}{{end}}{{$x}}", "row", "30.3"),
    ("redeclare", "{{$x := 1}}{{$x := 2}}{{$x}}", "row", "2"),
    (
        "range-index-value",
        "{{range $i, $v := .list}}{{$i}}:{{$v}} {{end}}",
        "row",
        "0:1 1:2.5 2:x 3:<no value> 4:map[k:v] ",
    ),
    ("range-one-var", "{{range $v := .temps}}{{$v}},{{end}}", "row", "10.5,20.3,30.3,"),
    ("range-map-sorted", "{{range $k, $v := .m}}{{$k}}={{$v}};{{end}}", "row", "a=[1 2];b=1;c=map[z:<nil>];"),
    (
        "range-else",
        "{{range .nothing}}x{{else}}empty{{end}}|{{range .missing}}x{{else}}none{{end}}",
        "row",
        "empty|none",
    ),
    ("range-rows", "{{range .}}{{.id}}/{{end}}", "rows", "1/2/"),
    ("range-comma", "[{{range $i, $r := .}}{{if $i}},{{end}}{{$r.id}}{{end}}]", "rows", "[1,2]"),
    ("break", "{{range .temps}}{{if gt . 20.0}}{{break}}{{end}}{{.}} {{end}}", "row", "10.5 "),
    (
        "continue",
        "{{range .list}}{{if not .}}{{continue}}{{end}}[{{.}}]{{end}}",
        "row",
        "[1][2.5][x][map[k:v]]",
    ),
    (
        "nested-break",
        "{{range .temps}}{{range $.temps}}{{if gt . 20.0}}{{break}}{{end}}{{.}}{{end}};{{end}}",
        "row",
        "10.5;10.5;10.5;",
    ),
    ("if-else", "{{if .t}}yes{{else}}no{{end}}", "row", "yes"),
    (
        "else-if-chain",
        "{{if .empty}}a{{else if .zero}}b{{else if .nil}}c{{else if .missing}}d{{else}}e{{end}}",
        "row",
        "e",
    ),
    ("with", "{{with .s}}[{{.}}]{{end}}{{with .empty}}x{{else}}none{{end}}", "row", "[a b]none"),
    (
        "and-or-not",
        '{{and .n .s}}|{{or .zero .empty}}|{{and .zero .x}}|{{not .t}}|{{or .missing "d"}}|{{and 1 2 3}}|{{or 0 5}}',
        "row",
        "a b||0|false|d|3|5",
    ),
    ("short-circuit", "{{or .s (index .list 9)}}", "row", "a b"),
    (
        "pipe-final-arg",
        '{{.n | printf "%03d"}}|{{"abc" | len}}|{{.s | printf "%s-%s" "a"}}',
        "row",
        "003|3|a-a b",
    ),
    ("parenthesized", '{{(.m).b}}|{{len (print .s .s)}}|{{(index .m "a")}}', "row", "1|6|[1 2]"),
    ("len", "{{len .list}} {{len .m}} {{len .uni}} {{len .empty}}", "row", "5 3 10 0"),
    (
        "index",
        '{{index .list 2}} {{index .m "b"}} {{index .m "a" 1}} {{index .m "zz"}} {{index .ab 1}}',
        "row",
        "x 1 2 <no value> 101",
    ),
    ("index-rows", '{{index . 1 "id"}}', "rows", "2"),
    (
        "print",
        '{{print 1 2 "a" "b" 3 .nil}}|{{println 1 "a"}}|{{print}}|{{print 1.0 2 "x" 3.5 nil}}',
        "row",
        "1 2ab3 <nil>|1 a\n||1 2x3.5 <nil>",
    ),
    (
        "printf-ints",
        '{{printf "%d %5d %-5d| %05d %x %X %o %b %c %q %U %+d %.3d" 42 42 42 42 255 255 8 5 65 65 65 5 7}}',
        "row",
        "42    42 42   | 00042 ff FF 10 101 A 'A' U+0041 +5 007",
    ),
    (
        "printf-floats",
        '{{printf "%f %.2f %e %g %G %8.3f %-8.2f| %+.1f % d %5.1f %07.2f %+08.3f" 3.14159 3.14159 1234.5678 0.000012345 1e21 3.14159 2.5 2.5 7 3.14159 -3.14159 2.5}}',
        "row",
        "3.141590 3.14 1.234568e+03 1.2345e-05 1E+21    3.142 2.50    | +2.5  7   3.1 -003.14 +002.500",
    ),
    (
        "printf-strings",
        '{{printf "%s %q %v %10s|%-10s|%.2s %x % X %05s" "hi" "hi\\n" "hi" "hi" "hi" "hello" "hi" "hi" "ab"}}',
        "row",
        'hi "hi\\n" hi         hi|hi        |he 6869 68 69 000ab',
    ),
    (
        "printf-values",
        '{{printf "%t %v %s %d" true .m .list .list}}',
        "row",
        "true map[a:[1 2] b:1 c:map[z:<nil>]] [%!s(int64=1) %!s(float64=2.5) x <nil> map[k:v]] [1 %!d(float64=2.5) %!d(string=x) <nil> map[%!d(string=k):%!d(string=v)]]",
    ),
    (
        "printf-mistakes",
        '{{printf "%d" "x"}} {{printf "%s" 3}} {{printf "%d %d" 1}} {{printf "%d" 1 2}} {{printf "%z" 1}} {{printf "%"}}',
        "row",
        "%!d(string=x) %!s(int=3) 1 %!d(MISSING) 1%!(EXTRA int=2) %!z(int=1) %!(NOVERB)",
    ),
    (
        "printf-nil-type",
        '{{printf "%s %d %v" .nil .nil .nil}} {{printf "%T %T %T %T %T" 1 .n .f .s .m}}',
        "row",
        "%!s(<nil>) %!d(<nil>) <nil> int int64 float64 string map[string]interface {}",
    ),
    (
        "printf-star-index",
        '{{printf "%*d|%-*d|%.*f|%[2]d %[1]d" 5 1 4 2 2 3.14159}}',
        "row",
        "    1|2   |3.14|1 5",
    ),
    (
        "printf-go-syntax",
        '{{printf "%#v %#v %#v %#x %#o" .list .m .s 255 8}}',
        "row",
        '[]interface {}{1, 2.5, "x", interface {}(nil), map[string]interface {}{"k":"v"}} map[string]interface {}{"a":[]interface {}{1, 2}, "b":1, "c":map[string]interface {}{"z":interface {}(nil)}} "a b" 0xff 010',
    ),
    (
        "printf-rounding",
        '{{printf "%.0f %.0f %.0f %.1f %.2g %.3g" 0.5 1.5 2.5 0.25 123.0 1234567.0}}',
        "row",
        "0 2 2 0.2 1.2e+02 1.23e+06",
    ),
    (
        "html-js-urlquery",
        "{{html .html}} {{js .html}} {{urlquery .html .s}}",
        "row",
        "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt; \\u003Ca href\\u003D\\'x\\'\\u003E\\u0026\\u003C/a\\u003E %3Ca+href%3D%27x%27%3E%26%3C%2Fa%3Ea+b",
    ),
    (
        "comparisons",
        '{{eq .n 3}} {{eq .n 1 2 3}} {{ne .s "x"}} {{lt .n 4}} {{le .n 3}} {{gt .f 3.0}} {{ge .s "a"}} {{eq .nil .missing}} {{eq .missing 1}}',
        "row",
        "true true true true true true true true false",
    ),
    (
        "json",
        '{"content":{{json .}}}',
        "row",
        '{"content":{"ab":"hello","big":1e+21,"empty":"","f":3.5,"html":"\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e","list":[1,2.5,"x",null,{"k":"v"}],"m":{"a":[1,2],"b":1,"c":{"z":null}},"million":1000000,"n":3,"nil":null,"s":"a b","small":0.00001,"t":true,"temps":[10.5,20.3,30.3],"uni":"héllo ☃","whole":3,"zero":0}}',
    ),
    (
        "toJson-floats",
        "{{toJson 1e-6}}|{{toJson 1e-7}}|{{toJson 1e20}}|{{toJson 1e21}}|{{toJson 123456789.125}}|{{toJson -0.0}}|{{toJson .whole}}",
        "row",
        "0.000001|1e-7|100000000000000000000|1e+21|123456789.125|-0|3",
    ),
    (
        "toJson-html-escape",
        "{{toJson .html}}|{{toRawJson .html}}|{{toJson .nil}}|{{toJson .missing}}",
        "row",
        "\"\\u003ca href='x'\\u003e\\u0026\\u003c/a\\u003e\"|\"<a href='x'>&</a>\"|null|null",
    ),
    (
        "toPrettyJson",
        "{{toPrettyJson .m}}",
        "row",
        '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1,\n  "c": {\n    "z": null\n  }\n}',
    ),
    (
        "base64",
        '{{base64 .ab}}|{{base64 .n}}|{{base64 .f}}|{{base64 .t}}|{{base64 .m}}|{{b64enc .ab}}|{{b64dec "aGVsbG8="}}',
        "row",
        "aGVsbG8=|Mw==|My41|dHJ1ZQ==|eyJhIjpbMSwyXSwiYiI6MSwiYyI6eyJ6IjpudWxsfX0=|aGVsbG8=|hello",
    ),
    (
        "strings",
        '{{upper .uni}}|{{lower "ÀB"}}|{{title "hello wORLD-x_y"}}|{{trim "  x  "}}|{{trimAll "$" "$5$"}}|{{trimPrefix "he" .ab}}|{{trimSuffix "lo" .ab}}',
        "row",
        "HÉLLO ☃|àb|Hello WORLD-X_y|x|5|llo|hel",
    ),
    (
        "replace-contains",
        '{{replace "l" "L" .ab}}|{{contains "ell" .ab}}|{{hasPrefix "he" .ab}}|{{hasSuffix "x" .ab}}|{{.ab | upper | repeat 2}}',
        "row",
        "heLLo|true|true|false|HELLOHELLO",
    ),
    (
        "substr-trunc",
        "{{substr 1 3 .ab}}|{{substr 2 -1 .ab}}|{{trunc 3 .ab}}|{{trunc -2 .ab}}|{{trunc 99 .ab}}",
        "row",
        "el|llo|hel|lo|hello",
    ),
    (
        "quote-cat",
        "{{quote .ab .n .nil .f}}|{{squote .ab .n}}|{{cat .ab .n .nil .f}}|{{quote .uni}}",
        "row",
        '"hello" "3" "3.5"|\'hello\' \'3\'|hello 3 3.5|"héllo ☃"',
    ),
    (
        "toString-indent",
        '{{toString .n}}|{{toString .f}}|{{toString .nil}}|{{toString .m}}|{{indent 2 "a\\nb"}}|{{nindent 2 "a"}}',
        "row",
        "3|3.5|<nil>|map[a:[1 2] b:1 c:map[z:<nil>]]|  a\n  b|\n  a",
    ),
    (
        "lists-strings",
        '{{splitList "," "a,b,,c"}}|{{split "/" "a/b"}}|{{join "-" .list}}|{{sortAlpha (list "b" "a" "c")}}',
        "row",
        "[a b  c]|map[_0:a _1:b]|1-2.5-x-map[k:v]|[a b c]",
    ),
    (
        "conversions",
        '{{atoi "42"}}|{{atoi "4x"}}|{{int "3.0"}}|{{int64 "42"}}|{{float64 "3.0"}}|{{int .f}}|{{int -2.7}}|{{float64 "x"}}|{{int .t}}',
        "row",
        "42|0|3|42|3|3|-2|0|1",
    ),
    (
        "default",
        '{{default "d" .missing}}|{{default "d" .empty}}|{{default "d" .zero}}|{{default "d" .ab}}|{{.missing | default 7}}|{{default "d" .nil}}',
        "row",
        "d|d|d|hello|7|d",
    ),
    (
        "empty-coalesce-ternary",
        '{{empty .zero}}|{{empty .n}}|{{coalesce .empty .zero .ab}}|{{all .n .ab}}|{{any .zero .ab}}|{{ternary "y" "n" .t}}',
        "row",
        "true|false|hello|true|true|y",
    ),
    (
        "int-math",
        '{{add 1 2 3}}|{{add .n .f}}|{{add "4" 1}}|{{add1 .n}}|{{sub 10 .n}}|{{mul 2 3 .n}}|{{div 7 2}}|{{div -7 2}}|{{mod -7 3}}|{{max 1 .n 2}}|{{min 1 .n -2}}',
        "row",
        "6|6|5|4|7|18|3|-3|-1|3|-2",
    ),
    ("int-overflow-wraps", "{{add 9223372036854775807 1}}", "row", "-9223372036854775808"),
    (
        "float-math",
        "{{maxf 1.5 .f}}|{{minf 1.5 .f}}|{{floor .f}}|{{ceil .f}}|{{round 3.14159 2}}|{{round 2.5 0}}|{{round -2.5 0}}|{{round 1.234 1 0.3}}",
        "row",
        "3.5|1.5|3|4|3.14|3|-3|1.3",
    ),
    (
        "decimal-math",
        "{{addf 1.1 2.2}}|{{add1f 1.1}}|{{subf 5.5 1.1 1.1}}|{{mulf 1.1 3}}|{{divf 10 3}}|{{divf 1 3 3}}",
        "row",
        "3.3|2.1|3.3|3.3|3.3333333333333335|0.1111111111111111",
    ),
    (
        "sequences",
        "{{until 5}}|{{until -3}}|{{untilStep 0 10 3}}|{{seq 3}}|{{seq 5 2}}|{{seq 0 2 7}}",
        "row",
        "[0 1 2 3 4]|[0 -1 -2]|[0 3 6 9]|1 2 3|5 4 3 2|0 2 4 6",
    ),
    (
        "list-functions",
        '{{list 1 "a" .nil}}|{{first .temps}}|{{last .temps}}|{{rest .temps}}|{{initial .temps}}|{{append .temps 9}}|{{prepend .temps 0}}|{{reverse .temps}}',
        "row",
        "[1 a <nil>]|10.5|30.3|[20.3 30.3]|[10.5 20.3]|[10.5 20.3 30.3 9]|[0 10.5 20.3 30.3]|[30.3 20.3 10.5]",
    ),
    (
        "more-list-functions",
        '{{uniq (list 1 1 "a" "a")}}|{{compact (list 0 1 "" "a" .nil)}}|{{has "x" .list}}|{{slice .temps 1 3}}|{{slice .temps 2}}|{{concat .temps (list 1)}}|{{first (list)}}',
        "row",
        "[1 a]|[1 a]|true|[20.3 30.3]|[30.3]|[10.5 20.3 30.3 1]|<no value>",
    ),
    (
        "dict-functions",
        '{{dict "a" 1 "b" .ab}}|{{dict "x"}}|{{get .m "b"}}|{{get .m "zz"}}|{{hasKey .m "b"}}|{{keys .m | sortAlpha}}|{{pick .m "b"}}|{{omit .m "a" "c"}}|{{dig "c" "z" "none" .m}}|{{dig "q" "none" .m}}',
        "row",
        "map[a:1 b:hello]|map[x:]|1||true|[a b c]|map[b:1]|map[b:1]|<no value>|none",
    ),
    (
        "reflection",
        '{{typeOf .n}}|{{typeOf .f}}|{{typeOf .ab}}|{{typeOf .m}}|{{typeOf .list}}|{{typeOf .nil}}|{{typeOf 1}}|{{kindOf .n}}|{{kindOf .m}}|{{kindIs "slice" .list}}',
        "row",
        "int64|float64|string|map[string]interface {}|[]interface {}|<nil>|int|int64|map|true",
    ),
    (
        "fromJson",
        '{{(fromJson "{\\"a\\":1}").a}}|{{fromJson "[1,2]"}}|{{fromJson "nope"}}',
        "row",
        "1|[1 2]|<no value>",
    ),
    ("doc-first-record", '{"content":{{json (index . 0)}}}', "rows", '{"content":{"id":1,"t":25.5}}'),
    ("doc-field-of-first", '{"content":{{index . 0 "id"}}}', "rows", '{"content":1}'),
    ("doc-html-list", "<ul>{{range .}}<li>{{.id}}</li>{{end}}</ul>", "rows", "<ul><li>1</li><li>2</li></ul>"),
    (
        "doc-conversion",
        '{"device_id": {{.id}}, "description": "{{if lt .t 30.0}}Current temperature is {{.t}}, it\'s normal."{{else if ge .t 30.0}}Current temperature is {{.t}}, it\'s high."{{end}}}',
        "rows0",
        '{"device_id": 1, "description": "Current temperature is 25.5, it\'s normal."}',
    ),
    (
        "doc-traversal",
        '{{$len := len .values}} {{$loopsize := add $len -1}} {"device_id": "{{.device_id}}", "description": [{{range $index, $ele := .values}} {{if le .temperature 25.0}}"fine"{{else if gt .temperature 25.0}}"high"{{end}} {{if eq $loopsize $index}}]{{else}},{{end}}{{end}}}',
        "device",
        '  {"device_id": "1", "description": [ "fine" , "fine" , "high" ]}',
    ),
]

EXEC_ERRORS = [
    (
        "field-of-nil",
        "{{.m.c.z.q}}",
        "row",
        'template: sink:1:3: executing "sink" at <.m.c.z.q>: nil pointer evaluating interface {}.q',
    ),
    (
        "field-of-string",
        "{{.s.x}}",
        "row",
        'template: sink:1:3: executing "sink" at <.s.x>: can\'t evaluate field x in type interface {}',
    ),
    (
        "field-with-args",
        "{{.n 1}}",
        "row",
        'template: sink:1:3: executing "sink" at <.n>: n is not a method but has arguments',
    ),
    (
        "index-out-of-range",
        "{{index .list 9}}",
        "row",
        'template: sink:1:3: executing "sink" at <index .list 9>: error calling index: index out of range: 9',
    ),
    (
        "index-at-len",
        "{{index .list 5}}",
        "row",
        'template: sink:1:3: executing "sink" at <index .list 5>: error calling index: reflect: slice index out of range',
    ),
    (
        "index-negative",
        "{{index .list -1}}",
        "row",
        'template: sink:1:3: executing "sink" at <index .list -1>: error calling index: index out of range: -1',
    ),
    (
        "index-map-with-int",
        "{{index .m 1}}",
        "row",
        'template: sink:1:3: executing "sink" at <index .m 1>: error calling index: value has type int; should be string',
    ),
    (
        "index-scalar",
        "{{index .n 1}}",
        "row",
        'template: sink:1:3: executing "sink" at <index .n 1>: error calling index: can\'t index item of type int64',
    ),
    (
        "index-missing",
        "{{index .missing 0}}",
        "row",
        'template: sink:1:3: executing "sink" at <index .missing 0>: error calling index: index of untyped nil',
    ),
    (
        "index-with-float",
        "{{index .list .f}}",
        "row",
        'template: sink:1:3: executing "sink" at <index .list .f>: error calling index: cannot index slice/array with type float64',
    ),
    (
        "len-of-number",
        "{{len .n}}",
        "row",
        'template: sink:1:3: executing "sink" at <len .n>: error calling len: len of type int64',
    ),
    (
        "len-missing",
        "{{len .missing}}",
        "row",
        'template: sink:1:3: executing "sink" at <len .missing>: error calling len: reflect: call of reflect.Value.Type on zero Value',
    ),
    (
        "len-nil",
        "{{len .nil}}",
        "row",
        'template: sink:1:3: executing "sink" at <len .nil>: error calling len: len of nil pointer',
    ),
    (
        "eq-incompatible",
        '{{eq .n "3"}}',
        "row",
        'template: sink:1:3: executing "sink" at <eq .n "3">: error calling eq: incompatible types for comparison',
    ),
    (
        "lt-bool",
        "{{lt .t true}}",
        "row",
        'template: sink:1:3: executing "sink" at <lt .t true>: error calling lt: invalid type for comparison',
    ),
    (
        "lt-nil",
        "{{lt .nil 1}}",
        "row",
        'template: sink:1:3: executing "sink" at <lt .nil 1>: error calling lt: invalid type for comparison',
    ),
    (
        "eq-maps",
        "{{eq .m .m}}",
        "row",
        'template: sink:1:3: executing "sink" at <eq .m .m>: error calling eq: non-comparable type map[a:[%!s(int64=1) %!s(int64=2)] b:%!s(int64=1) c:map[z:<nil>]]: map[string]interface {}',
    ),
    (
        "wrong-type",
        "{{upper .n}}",
        "row",
        'template: sink:1:9: executing "sink" at <.n>: wrong type for value; expected string; got int64',
    ),
    (
        "wrong-type-nil",
        "{{upper .nil}}",
        "row",
        'template: sink:1:9: executing "sink" at <.nil>: wrong type for value; expected string; got interface {}',
    ),
    (
        "invalid-value",
        "{{upper .missing}}",
        "row",
        'template: sink:1:9: executing "sink" at <.missing>: invalid value; expected string',
    ),
    (
        "literal-type",
        '{{repeat "x" "y"}}',
        "row",
        'template: sink:1:10: executing "sink" at <"x">: expected integer; found "x"',
    ),
    (
        "arg-count",
        "{{len 1 2}}",
        "row",
        'template: sink:1:3: executing "sink" at <len>: wrong number of args for len: want 1 got 2',
    ),
    (
        "arg-count-variadic",
        "{{printf}}",
        "row",
        'template: sink:1:3: executing "sink" at <printf>: wrong number of args for printf: want at least 1 got 0',
    ),
    (
        "pipe-into-literal-param",
        "{{3 | printf}}",
        "row",
        'template: sink:1:7: executing "sink" at <printf>: wrong type for value; expected string; got int',
    ),
    (
        "non-function",
        "{{(1).x}}",
        "row",
        'template: sink:1:3: executing "sink" at <(1).x>: can\'t evaluate field x in type int',
    ),
    ("nil-command", "{{nil}}", "row", 'template: sink:1:3: executing "sink" at <nil>: nil is not a command'),
    (
        "range-string",
        "{{range .s}}{{.}}{{end}}",
        "row",
        'template: sink:1:9: executing "sink" at <.s>: range can\'t iterate over a b',
    ),
    (
        "div-by-zero",
        "{{div 1 0}}",
        "row",
        'template: sink:1:3: executing "sink" at <div 1 0>: error calling div: runtime error: integer divide by zero',
    ),
    (
        "substr-bounds",
        "{{substr 4 2 .ab}}",
        "row",
        'template: sink:1:3: executing "sink" at <substr 4 2 .ab>: error calling substr: runtime error: slice bounds out of range [4:2]',
    ),
    (
        "first-of-string",
        "{{first .ab}}",
        "row",
        'template: sink:1:3: executing "sink" at <first .ab>: error calling first: Cannot find first on type string',
    ),
    (
        "fail",
        '{{fail "boom"}}',
        "row",
        'template: sink:1:3: executing "sink" at <fail "boom">: error calling fail: boom',
    ),
    (
        "second-line",
        "ok\n{{.m.c.z.q}}",
        "row",
        'template: sink:2:3: executing "sink" at <.m.c.z.q>: nil pointer evaluating interface {}.q',
    ),
]

PARSE_ERRORS = [
    ("unknown-function", "{{nofunc .}}", 'template: sink:1:3: function "nofunc" not defined'),
    ("undefined-variable", "{{$u}}", 'template: sink:1:3: undefined variable "$u"'),
    ("missing-if-value", "{{if}}{{end}}", "template: sink:1:5: missing value for if"),
    ("unclosed-if", "{{if .t}}x", "template: sink:1:11: unexpected EOF"),
    ("stray-end", "a{{end}}", "template: sink:1:2: unexpected {{end}}"),
    ("stray-else", "{{else}}", "template: sink:1:1: unexpected {{else}}"),
    ("unclosed-action", "{{.x", "template: sink:1:5: unclosed action"),
    ("unterminated-string", '{{"abc}}', "template: sink:1:3: unterminated quoted string"),
    ("unterminated-raw", "{{`abc}}", "template: sink:1:3: unterminated raw quoted string"),
    ("break-outside-range", "{{break}}", "template: sink:1:3: {{break}} outside {{range}}"),
    ("literal-stage", "{{.n | 3}}", "template: sink:1:8: non executable command in pipeline stage 2"),
    ("bad-number", "{{3x}}", 'template: sink:1:3: bad number syntax: "3x"'),
    ("unclosed-comment", "{{/* x }}", "template: sink:1:1: unclosed comment"),
    ("comment-not-alone", "{{/* x */ .n}}", "template: sink:1:1: comment ends before closing delimiter"),
    ("unclosed-paren", "{{(.n}}", "template: sink:1:6: unclosed left paren"),
    ("too-many-decls", "{{$x, $y := 1}}", "template: sink:1:5: too many declarations in command"),
    (
        "range-three-vars",
        "{{range $a, $b, $c := .list}}{{end}}",
        "template: sink:1:15: too many declarations in range",
    ),
    ("dot-after-literal", '{{"x".y}}', 'template: sink:1:3: unexpected . after term "\\"x\\""'),
    (
        "integer-overflow",
        "{{99999999999999999999}}",
        'template: sink:1:3: integer overflow: "99999999999999999999"',
    ),
    ("bad-escape", '{{"\\q"}}', "template: sink:1:3: invalid syntax"),
    ("bad-char-constant", "{{'ab'}}", "template: sink:1:3: malformed character constant: 'ab'"),
    ("bad-character", "{{.a-b}}", "template: sink:1:5: bad character U+002D '-'"),
    ("unexpected-token", "{{.a := 1}}", 'template: sink:1:6: unexpected ":=" in operand'),
    ("empty-action", "{{}}", "template: sink:1:3: missing value for command"),
    ("second-line", "line one\nline two {{.x | nope}}", 'template: sink:2:17: function "nope" not defined'),
]


@pytest.mark.parametrize(
    ("template", "data", "expected"), [pytest.param(t, DATA[k], e, id=name) for name, t, k, e in OUTPUTS]
)
def test_output_is_what_go_prints(template: str, data: Any, expected: str) -> None:
    assert GoTemplate(template).execute(data) == expected


@pytest.mark.parametrize(
    ("template", "data", "expected"), [pytest.param(t, DATA[k], e, id=name) for name, t, k, e in EXEC_ERRORS]
)
def test_execution_errors_name_the_action_and_go_s_reason(template: str, data: Any, expected: str) -> None:
    with pytest.raises(TemplateExecError) as info:
        GoTemplate(template).execute(data)
    assert str(info.value) == expected
    assert isinstance(info.value, EncodeError)  # the message alone is lost, the rule goes on


@pytest.mark.parametrize(
    ("template", "expected"), [pytest.param(t, e, id=name) for name, t, e in PARSE_ERRORS]
)
def test_parse_errors_have_line_column_and_go_s_reason(template: str, expected: str) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        GoTemplate(template)
    assert str(info.value) == expected
    assert isinstance(info.value, PlanError)  # a bad template refuses the rule
    assert expected.startswith(f"template: sink:{info.value.line}:{info.value.column}: ")


FLOATS = [
    0.1,
    0.30000000000000004,
    1e-5,
    1e-4,
    123456.0,
    1234567.0,
    1e15,
    1e16,
    2.5e-8,
    -1e21,
    100.0,
    2.0**53,
    -0.0,
]


def test_float_verbs_and_json_floats_are_go_s() -> None:
    printed = GoTemplate('{{range .}}{{printf "%v|%e|%.3f|%.3g|%G" . . . . .}}\n{{end}}').execute(FLOATS)
    assert printed.splitlines() == [
        "0.1|1.000000e-01|0.100|0.1|0.1",
        "0.30000000000000004|3.000000e-01|0.300|0.3|0.30000000000000004",
        "1e-05|1.000000e-05|0.000|1e-05|1E-05",
        "0.0001|1.000000e-04|0.000|0.0001|0.0001",
        "123456|1.234560e+05|123456.000|1.23e+05|123456",
        "1.234567e+06|1.234567e+06|1234567.000|1.23e+06|1.234567E+06",
        "1e+15|1.000000e+15|1000000000000000.000|1e+15|1E+15",
        "1e+16|1.000000e+16|10000000000000000.000|1e+16|1E+16",
        "2.5e-08|2.500000e-08|0.000|2.5e-08|2.5E-08",
        "-1e+21|-1.000000e+21|-1000000000000000000000.000|-1e+21|-1E+21",
        "100|1.000000e+02|100.000|100|100",
        "9.007199254740992e+15|9.007199e+15|9007199254740992.000|9.01e+15|9.007199254740992E+15",
        "-0|-0.000000e+00|-0.000|-0|-0",
    ]
    as_json = GoTemplate("{{range .}}{{toJson .}} {{end}}").execute(FLOATS)
    assert as_json.split() == [
        "0.1", "0.30000000000000004", "0.00001", "0.0001", "123456", "1234567", "1000000000000000",
        "10000000000000000", "2.5e-8", "-1e+21", "100", "9007199254740992", "-0",
    ]  # fmt: skip
    assert (
        GoTemplate("{{toJson .}}").execute(float("nan")) == ""
    )  # json.Marshal fails; sprig's toJson gives ""


def test_what_go_does_since_1_22() -> None:
    # range over an integer (Go 1.22), {{else with}} (Go 1.23), \b and \f escaped short in JSON (Go 1.22).
    assert (
        GoTemplate(
            "{{range 3}}{{.}}{{end}}|{{range $i := 2}}{{$i}}{{end}}|{{range 0}}x{{else}}none{{end}}"
        ).execute({})
        == "012|01|none"
    )
    with pytest.raises(TemplateExecError, match="can't use 2 to iterate over more than one variable"):
        GoTemplate("{{range $i, $v := 2}}{{end}}").execute({})
    assert GoTemplate("{{with .a}}A{{else with .b}}B{{.}}{{else}}C{{end}}").execute({"b": 2}) == "B2"
    assert GoTemplate("{{toJson .}}").execute("\b\f\u0001") == '"\\b\\f\\u0001"'


def test_numbers_compare_by_value_where_ekuiper_rows_hold_float64() -> None:
    # Deliberate: Oort keeps JSON integers as integers while eKuiper's rows hold float64, so eKuiper's own
    # advice (`lt .t_av 30.0`) must work on {"t_av": 25}. Go would say "incompatible types for comparison".
    row = {"t_av": 25, "list": [1, 2]}
    assert (
        GoTemplate('{{printf "%.1f|%5.2f" .t_av .t_av}}|{{printf "%.1f" 3}}').execute(row)
        == "25.0|25.00|%!f(int=3)"
    )
    assert GoTemplate("{{lt .t_av 30.0}} {{eq .t_av 25.0}} {{ge 30 .t_av}}").execute(row) == "true true true"
    assert GoTemplate("{{has 2 .list}} {{without .list 1}}").execute(row) == "true [2]"


@pytest.mark.parametrize("keyword", ["define", "template", "block"])
def test_several_templates_in_one_text_are_refused(keyword: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=r"\{\{" + keyword + r"\}\} is not supported"):
        GoTemplate(f'{{{{{keyword} "x"}}}}{{{{end}}}}')


def test_a_template_runs_again_and_again_without_leaking_state() -> None:
    template = GoTemplate("{{$x := .n}}{{range .l}}{{$x = .}}{{end}}{{$x}}")
    assert template.execute({"n": 1, "l": [7, 8]}) == "8"
    assert template.execute({"n": 2, "l": []}) == "2"


def test_very_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(TemplateSyntaxError, match="nests too deeply"):
        GoTemplate("{{" + "(" * 5000 + "1" + ")" * 5000 + "}}")


def test_property_templates() -> None:
    # eKuiper renders a property per message when it matches {{(.*?)}}: one line between the braces.
    assert has_template("devices/{{.id}}/data")
    assert not has_template("devices/plain")
    assert not has_template("{{\n}}")
    plain = PropertyTemplate("devices/plain")
    assert not plain.is_template
    assert plain.render({"id": 1}) == "devices/plain"
    topic = PropertyTemplate("devices/{{.id}}/{{lower .kind}}")
    assert topic.is_template
    assert topic.render({"id": 7, "kind": "TEMP"}) == "devices/7/temp"
    assert render_property("http://h/{{.id}}?v={{urlquery .v}}", {"id": 3, "v": "a b"}) == "http://h/3?v=a+b"
    with pytest.raises(TemplateSyntaxError, match='function "nope" not defined'):
        PropertyTemplate("x/{{nope}}")
    with pytest.raises(
        TemplateExecError, match="at <.kind>: wrong type for value; expected string; got interface"
    ):
        topic.render({"id": 7, "kind": None})


def test_less_common_sprig_functions() -> None:
    data = {"s": "a/b/c", "l": [1, 2]}
    splits = '{{splitn "/" 2 .s}}|{{splitn "/" 0 .s}}|{{splitn "/" -1 .s}}|{{splitn "" 2 "abc"}}|{{splitn "/" 9 .s}}'
    assert GoTemplate(splits).execute(data) == (
        "map[_0:a _1:b/c]|map[]|map[_0:a _1:b _2:c]|map[_0:a _1:bc]|map[_0:a _1:b _2:c]"
    )
    codecs = (
        '{{adler32sum .s}}|{{b32enc .s}}|{{b32dec "MEXWELZPMM======"}}|{{b32dec "!!"}}|{{toDecimal "777"}}'
    )
    assert (
        GoTemplate(codecs).execute(data) == "76349829|MEXWEL3D|a/b//c|illegal base32 data at input byte 0|511"
    )
    assert GoTemplate('{{mustFirst .l}}|{{mustRest .l}}|{{mustHas 2 .l}}|{{trimall "/" "/x/"}}').execute(
        data
    ) == ("1|[2]|true|x")
    with pytest.raises(TemplateExecError, match="error calling mustFirst: Cannot find first on type string"):
        GoTemplate("{{mustFirst .s}}").execute(data)
