/**
 * The Go text/template subset (SPEC §4, src/bootstrap/gotemplate/).
 *
 * Every expected output in the GOLDEN table and the Istio-style fragment below was produced by
 * Go's own text/template (go1.19, with Istio's `toJSON` and a sprig-style `toJson` registered,
 * data decoded from the same JSON) and pasted here, so these are goldens from the real
 * implementation, not from ours; the other "like Go" expectations were checked against it too.
 * Exceptions, each said at its test: NaN/±Inf/-0 formatting (from Go's fmt docs; JSON data
 * cannot carry them) and JSON's `\b`/`\f` (Go >= 1.22, which Istio is built with).
 * The error-message tests are ours: the subset deliberately words errors its own way.
 */
import { describe, expect, test } from '@jest/globals';
import { parseTemplate } from '../../src/bootstrap/gotemplate/index.js';
import { AgentError } from '../../src/errors.js';

const DATA = {
  a: 1,
  b: 'bee',
  s: 'x',
  l: ['p', 'q'],
  m: { b: 2, a: 1, Z: 0, é: 3 },
  e: [],
  em: {},
  n: 0,
  f: 1.5,
  z: '',
  t: true,
  nested: { x: { y: 'deep' } },
  str: 'plain',
  x1: 1234567.5,
  x2: 123456.5,
  x3: 1e20,
  x4: 0.0001,
  x5: 0.00001,
  x6: -2.5e-7,
  j: 'a\'b"c\\d<e>f&g=h\n\u0001 é \u00a0',
};

function render(text: string, data: unknown = DATA, name = 'test.json'): string {
  return parseTemplate(text, name).render(data);
}

/** The error thrown by `fn`; fails the test when nothing is thrown. */
function thrown(fn: () => unknown): AgentError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('BOOTSTRAP_TEMPLATE_INVALID');
    return err as AgentError;
  }
  throw new Error('expected an error, none was thrown');
}

/** [group, template, Go's output] */
const GOLDEN: [string, string, string][] = [
  ["actions", "{{ .b }}|{{ .a }}|{{ .t }}|{{ .f }}|{{ .nested.x.y }}|{{ $.b }}|{{ (.nested).x.y }}", "bee|1|true|1.5|deep|bee|deep"],
  ["actions", "{{ \"dq\\t\\x41\\u00e9\\101\" }}|{{ `raw\\n` }}|{{ 42 }}|{{ -7 }}|{{ 0x1F }}|{{ 0o17 }}|{{ 017 }}|{{ 1_000 }}|{{ true }}|{{ 2.50 }}|{{ 1e6 }}|{{ .5 }}", "dq\tAéA|raw\\n|42|-7|31|15|15|1000|true|2.5|1e+06|0.5"],
  ["actions", "<{{ .s }}>&\"{{ .b }}\"", "<x>&\"bee\""],
  ["floats", "{{ .x1 }} {{ .x2 }} {{ .x3 }} {{ .x4 }} {{ .x5 }} {{ .x6 }}", "1.2345675e+06 123456.5 1e+20 0.0001 1e-05 -2.5e-07"],
  ["trim", "a  {{- .a -}}  b", "a1b"],
  ["trim", "a \n\t {{- .a }} \n b {{ .a -}}\n\n c", "a1 \n b 1c"],
  ["trim", "{{-3}}|{{- 3}}", "-3|3"],
  ["trim", "x {{-\t.a\t-}} y|x {{-\n.a\n-}} y|x {{- .a  -}}  y", "x1y|x1y|x1y"],
  ["trim", "x {{/* c */}} y|x {{- /* multi\nline */ -}} y|x {{- /* c */}} y", "x  y|xy|x y"],
  ["trim", "[\n  {{- range .l }}\n  \"{{ . }}\",\n  {{- end }}\n]", "[\n  \"p\",\n  \"q\",\n]"],
  ["conditionals", "{{ if .a }}A{{ end }}{{ if .n }}N{{ end }}{{ if .z }}Z{{ end }}{{ if .e }}E{{ end }}{{ if .em }}M{{ end }}{{ if .missing }}X{{ end }}{{ if .nested.nope.deeper }}D{{ end }}{{ if .f }}F{{ end }}", "AF"],
  ["conditionals", "{{ if .missing }}1{{ else if .n }}2{{ else if .b }}3{{ else }}4{{ end }}|{{ if .n }}1{{ else if .z }}2{{ else }}3{{ end }}|{{ if .n }}1{{ else if .z }}2{{ end }}", "3|3|"],
  ["range", "{{ range .l }}[{{ . }}]{{ end }}|{{ range $i, $v := .l }}{{ $i }}={{ $v }};{{ end }}|{{ range $v := .l }}{{ $v }}{{ end }}", "[p][q]|0=p;1=q;|pq"],
  ["range", "{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}|{{ range .m }}{{ . }}{{ end }}", "Z=0;a=1;b=2;é=3;|0123"],
  ["range", "{{ range .e }}x{{ else }}empty{{ end }}|{{ range .missing }}x{{ else }}none{{ end }}|{{ range .em }}x{{ else }}nomap{{ end }}|{{ range .missing }}x{{ end }}", "empty|none|nomap|"],
  ["range", "{{ range .l }}{{ $.b }}{{ . }}{{ end }}|{{ range $i, $x := .l }}{{ range $j, $y := $.l }}{{ $i }}{{ $j }}{{ $x }}{{ $y }} {{ end }}{{ end }}", "beepbeeq|00pp 01pq 10qp 11qq "],
  ["functions", "{{ and .a .b }}|{{ and .a .n .b }}|{{ or .n .z .b }}|{{ or .n .z }}|{{ and 1 }}|{{ or .missing \"dflt\" }}", "bee|0|bee||1|dflt"],
  ["functions", "{{ or 1 .str.x.y }}|{{ and 0 .str.x.y }}", "1|0"],
  ["functions", "{{ not .a }}|{{ not .n }}|{{ not .e }}|{{ not .missing }}", "false|true|true|true"],
  ["functions", "{{ eq .a 1 }}|{{ eq .b \"x\" \"bee\" }}|{{ eq .b \"x\" \"y\" }}|{{ eq .missing \"x\" }}|{{ eq .f 1.5 }}|{{ ne .a 2 }}|{{ ne .b \"bee\" }}|{{ eq .t true }}", "true|true|false|false|true|true|false|true"],
  ["functions", "{{ js .j }}|{{ js 1 2 }}|{{ js \"a\" 1 }}|{{ js 1 \"a\" 2 }}|{{ js }}", "a\\'b\\\"c\\\\d\\u003Ce\\u003Ef\\u0026g\\u003Dh\\u000A\\u0001 é \\u00A0|1 2|a1|1a2|"],
  ["functions", "{{ toJSON .m }}|{{ toJSON .l }}|{{ toJSON .j }}|{{ toJSON .missing }}|{{ toJSON .a }}|{{ toJSON .f }}|{{ toJSON .e }}|{{ toJSON .em }}|{{ toJSON \"<&>\" }}", "{\"Z\":0,\"a\":1,\"b\":2,\"é\":3}|[\"p\",\"q\"]|\"a'b\\\"c\\\\d\\u003ce\\u003ef\\u0026g=h\\n\\u0001 é \u00a0\"|{}|1|1.5|[]|{}|\"\\u003c\\u0026\\u003e\""],
  ["functions", "{{ toJson .m }}|{{ toJson .missing }}|{{ toJson .b }}", "{\"Z\":0,\"a\":1,\"b\":2,\"é\":3}|null|\"bee\""],
  ["functions", "{{ .b | toJSON }}|{{ .j | js | toJSON }}|{{ .a | and .b }}|{{ .n | or .z }}|{{ .n | not }}|{{ \"x\" | eq .s }}", "\"bee\"|\"a\\\\'b\\\\\\\"c\\\\\\\\d\\\\u003Ce\\\\u003Ef\\\\u0026g\\\\u003Dh\\\\u000A\\\\u0001 é \\\\u00A0\"|1|0|true|true"],
  ["functions", "{{ if and (eq .a 1) (not .n) }}yes{{ end }}|{{ if or (eq .b \"x\") (ne .s \"x\") }}no{{ else }}else{{ end }}", "yes|else"],
];

/**
 * An Istio-style bootstrap fragment using every construct Istio's envoy_bootstrap.json uses
 * (locality commas via nested if / `if or`, `range $a, $x :=`, `js`, `toJson`, `toJSON`, an
 * `else if` chain for tracing, `if and`, trim markers, a comment). Written for this test.
 */
const FRAGMENT = String.raw`{
  "node": {
    "id": "{{ .nodeID }}",
    "cluster": "{{ .cluster }}",
    "locality": {
      {{- if .region }}
      "region": "{{ .region }}"
      {{- end }}
      {{- if .zone }}
      {{- if .region }}
      ,
      {{- end }}
      "zone": "{{ .zone }}"
      {{- end }}
      {{- if .sub_zone }}
      {{- if or .region .zone }}
      ,
      {{- end }}
      "sub_zone": "{{ .sub_zone }}"
      {{- end }}
    },
    "metadata": {{ .meta_json_str }}
  },
  {{- /* stats: one extractor per extra tag, as Istio does */}}
  "stats_config": {
    "use_all_default_tags": false,
    "stats_tags": [
      {{- range $a, $tag := .extraStatTags }}
      {
        "regex": "({{ $tag }}=\\.=(.*?);\\.;)",
        "tag_name": "{{ $tag }}"
      },
      {{- end }}
      { "tag_name": "cache", "regex": "(cache\\.(.+?)\\.)" }
    ],
    {{- if .histogram_buckets }}
    "histogram_bucket_settings": {{ toJson .histogram_buckets }},
    {{- end }}
    "stats_matcher": {
      "inclusion_list": {
        "patterns": [
          {{- range $a, $s := .inclusionPrefix }}
          { "prefix": "{{$s}}" },
          {{- end }}
          {{- range $a, $s := .inclusionRegexps }}
          { "safe_regex": {"regex":"{{js $s}}"} },
          {{- end }}
          { "prefix": "istio" }
        ]
      }
    }
  },
  "admin": {
    "address": { "socket_address": { "address": "{{ .localhost }}", "port_value": {{ .config.ProxyAdminPort }} } }
  }
  {{- if .zipkin }}
  ,
  "tracing": { "http": { "name": "envoy.tracers.zipkin", "collector_cluster": "zipkin" } }
  {{- else if .datadog }}
  ,
  "tracing": { "http": { "name": "envoy.tracers.datadog", "service_name": "{{ .cluster }}" } }
  {{- end }}
  {{ if or .outlier_log_path .load_stats_config_json_str }}
  ,
  "cluster_manager": {
    {{- if .outlier_log_path }}
    "outlier_detection": { "event_log_path": {{ toJSON .outlier_log_path }} }
    {{- end }}
    {{- if and .outlier_log_path .load_stats_config_json_str }}
    ,
    {{- end }}
    {{- if .load_stats_config_json_str }}
    "load_stats_config": {{- .load_stats_config_json_str }}
    {{- end }}
  }
  {{ end }}
}
`;

const FRAGMENT_ON = {
  "nodeID": "sidecar~10.1.1.1~app-7d4.default~default.svc.cluster.local",
  "cluster": "app.default",
  "region": "us-east1",
  "sub_zone": "rack-1",
  "meta_json_str": "{\"NAME\":\"app-7d4\",\"NAMESPACE\":\"default\"}",
  "extraStatTags": [
    "request_host",
    "destination_port"
  ],
  "histogram_buckets": [
    {
      "match": {
        "prefix": "istio"
      },
      "buckets": [
        1,
        5.5,
        10
      ]
    }
  ],
  "inclusionPrefix": [
    "cluster_manager",
    "listener_manager"
  ],
  "inclusionRegexps": [
    "vhost\\..*\\.route\\..*",
    "http\\.10\\.1\\.1\\.1_8080<x>&y"
  ],
  "localhost": "127.0.0.1",
  "config": {
    "ProxyAdminPort": 15000
  },
  "datadog": "{\"address\":\"dd\"}",
  "outlier_log_path": "/dev/stdout",
  "load_stats_config_json_str": "{\"api_type\":\"GRPC\"}"
};

const FRAGMENT_OFF = {
  "nodeID": "sidecar~10.1.1.1~app-7d4.default~default.svc.cluster.local",
  "cluster": "app.default",
  "zone": "z1",
  "meta_json_str": "{}",
  "extraStatTags": [],
  "inclusionPrefix": [
    "cluster_manager"
  ],
  "inclusionRegexps": [],
  "localhost": "::1",
  "config": {
    "ProxyAdminPort": 15000
  }
};

/** Go's output for FRAGMENT_ON. */
const FRAGMENT_ON_OUT = String.raw`{
  "node": {
    "id": "sidecar~10.1.1.1~app-7d4.default~default.svc.cluster.local",
    "cluster": "app.default",
    "locality": {
      "region": "us-east1"
      ,
      "sub_zone": "rack-1"
    },
    "metadata": {"NAME":"app-7d4","NAMESPACE":"default"}
  },
  "stats_config": {
    "use_all_default_tags": false,
    "stats_tags": [
      {
        "regex": "(request_host=\\.=(.*?);\\.;)",
        "tag_name": "request_host"
      },
      {
        "regex": "(destination_port=\\.=(.*?);\\.;)",
        "tag_name": "destination_port"
      },
      { "tag_name": "cache", "regex": "(cache\\.(.+?)\\.)" }
    ],
    "histogram_bucket_settings": [{"buckets":[1,5.5,10],"match":{"prefix":"istio"}}],
    "stats_matcher": {
      "inclusion_list": {
        "patterns": [
          { "prefix": "cluster_manager" },
          { "prefix": "listener_manager" },
          { "safe_regex": {"regex":"vhost\\..*\\.route\\..*"} },
          { "safe_regex": {"regex":"http\\.10\\.1\\.1\\.1_8080\u003Cx\u003E\u0026y"} },
          { "prefix": "istio" }
        ]
      }
    }
  },
  "admin": {
    "address": { "socket_address": { "address": "127.0.0.1", "port_value": 15000 } }
  }
  ,
  "tracing": { "http": { "name": "envoy.tracers.datadog", "service_name": "app.default" } }
  
  ,
  "cluster_manager": {
    "outlier_detection": { "event_log_path": "/dev/stdout" }
    ,
    "load_stats_config":{"api_type":"GRPC"}
  }
  
}
`;

/** Go's output for FRAGMENT_OFF. */
const FRAGMENT_OFF_OUT = String.raw`{
  "node": {
    "id": "sidecar~10.1.1.1~app-7d4.default~default.svc.cluster.local",
    "cluster": "app.default",
    "locality": {
      "zone": "z1"
    },
    "metadata": {}
  },
  "stats_config": {
    "use_all_default_tags": false,
    "stats_tags": [
      { "tag_name": "cache", "regex": "(cache\\.(.+?)\\.)" }
    ],
    "stats_matcher": {
      "inclusion_list": {
        "patterns": [
          { "prefix": "cluster_manager" },
          { "prefix": "istio" }
        ]
      }
    }
  },
  "admin": {
    "address": { "socket_address": { "address": "::1", "port_value": 15000 } }
  }
  
}
`;

describe('renders exactly like Go text/template', () => {
  test.each(GOLDEN)('%s: %j', (_group, text, expected) => {
    expect(render(text)).toBe(expected);
  });

  test("Istio-style bootstrap fragment, features on (Go's output, valid JSON)", () => {
    const out = render(FRAGMENT, FRAGMENT_ON, 'envoy_bootstrap.json');
    expect(out).toBe(FRAGMENT_ON_OUT);
    const json = JSON.parse(out) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(json.node.locality).toEqual({ region: 'us-east1', sub_zone: 'rack-1' });
    expect(json.stats_config.stats_matcher.inclusion_list.patterns[3]).toEqual({ safe_regex: { regex: 'http\\.10\\.1\\.1\\.1_8080<x>&y' } });
    expect(json.tracing.http.name).toBe('envoy.tracers.datadog');
  });

  test("Istio-style bootstrap fragment, features off: missing variables are false / empty (Go's output)", () => {
    const out = render(FRAGMENT, FRAGMENT_OFF, 'envoy_bootstrap.json');
    expect(out).toBe(FRAGMENT_OFF_OUT);
    const json = JSON.parse(out) as Record<string, unknown>;
    expect(json.tracing).toBeUndefined();
    expect(json.cluster_manager).toBeUndefined();
  });

  test('parse once, render many: one Template, alternating data, frozen inputs', () => {
    const tmpl = parseTemplate(FRAGMENT, 'envoy_bootstrap.json');
    const on = deepFreeze(structuredClone(FRAGMENT_ON));
    const off = deepFreeze(structuredClone(FRAGMENT_OFF));
    for (let i = 0; i < 50; i++) {
      expect(tmpl.render(i % 2 ? off : on)).toBe(i % 2 ? FRAGMENT_OFF_OUT : FRAGMENT_ON_OUT);
    }
  });

  test("js escapes a quote as \\' exactly like Go (which is not valid inside JSON)", () => {
    expect(render(`{{ js "it's" }}`)).toBe("it\\'s");
  });

  test('no HTML escaping of text or printed values', () => {
    expect(render('<a href="{{ .u }}">&</a>', { u: '/x?a=1&b=<2>' })).toBe('<a href="/x?a=1&b=<2>">&</a>');
  });

});

describe('toJSON (Istio) and toJson (sprig)', () => {
  test('json.Marshal escaping: HTML-safe, U+2028/9, control characters; \\b and \\f as Go >= 1.22 writes them', () => {
    // go1.19 writes \u0008 / \u000c here; Go 1.22 changed json.Marshal to \b / \f (Istio builds with >= 1.22).
    expect(render('{{ toJSON .s }}', { s: '<a&b>\u2028\u2029\u0000\u001f\u007f\b\f\n\r\t"\\' })).toBe(
      '"\\u003ca\\u0026b\\u003e\\u2028\\u2029\\u0000\\u001f\u007f\\b\\f\\n\\r\\t\\"\\\\"',
    );
  });

  test('maps have sorted keys at every depth; lists keep order; numbers as Go writes them', () => {
    const v = { z: [3, { y: 1, b: null }], a: { d: 1e21, c: 1e-7, e: 0.5 } };
    expect(render('{{ toJSON . }}', v)).toBe('{"a":{"c":1e-7,"d":1e+21,"e":0.5},"z":[3,{"b":null,"y":1}]}');
  });

  test('nil / no value: toJSON gives {} (Istio), toJson gives null (json.Marshal(nil))', () => {
    expect(render('{{ toJSON .missing }}|{{ toJSON .n }}|{{ toJson .missing }}|{{ toJson .n }}', { n: null })).toBe('{}|{}|null|null');
  });

  test('marshal errors: toJSON gives {} (Istio), toJson gives "" (sprig)', () => {
    expect(render('[{{ toJSON .x }}][{{ toJson .x }}][{{ toJson .l }}]', { x: NaN, l: [1, Infinity] })).toBe('[{}][][]');
  });
});

describe('missing variables (Istio behaviour when a feature is off)', () => {
  test('false in if, empty in range (else branch taken), never an error there', () => {
    expect(render('{{ if .tracing_zipkin }}Z{{ else }}no{{ end }}|{{ range .statsd }}x{{ else }}none{{ end }}|{{ if .a.b.c }}x{{ end }}', {})).toBe(
      'no|none|',
    );
  });

  test('printing one is an error naming it and its line', () => {
    const text = `{\n${'  "x": 1,\n'.repeat(10)}  "tracing": {{ .tracing_zipkin }}\n}`;
    const err = thrown(() => render(text, {}, 'bootstrap.json'));
    expect(err.message).toBe('template "bootstrap.json" line 12: .tracing_zipkin is not provided');
  });

  test('a missing field of a variable, and a pipeline with no value, are named too', () => {
    expect(thrown(() => render('{{ range $i, $v := .l }}\n{{ $v.port }}{{ end }}', { l: [{}] })).message).toBe(
      'template "test.json" line 2: $v.port is not provided',
    );
    expect(thrown(() => render('{{ or .a .b }}', {})).message).toMatch(/line 1: \{\{ or \.a \.b \}\} has no value/);
    expect(thrown(() => render('{{ js .missing }}', {})).message).toMatch(/line 1: \.missing is not provided/);
  });

  test('or supplies a default the Go way', () => {
    expect(render('{{ or .port 15090 }}', {})).toBe('15090');
  });
});

describe('everything outside the subset fails at parse time, naming the construct and line', () => {
  const SUBSET_HINT = '(supported: if, else if, else, range, end,';

  test('the example from the docs: "with" on line 7', () => {
    const text = `{\n${'\n'.repeat(5)}{{ with .tracing }}{{ . }}{{ end }}\n}`;
    const err = thrown(() => parseTemplate(text, 'bootstrap.json'));
    expect(err.message.startsWith(`template "bootstrap.json" line 7: "with" is not supported ${SUBSET_HINT}`)).toBe(true);
    expect(err.message).toContain('functions and, or, not, eq, ne, js, toJSON, toJson');
  });

  const UNSUPPORTED: [string, string][] = [
    ['{{ define "x" }}y{{ end }}', '"define" is not supported'],
    ['{{ template "x" . }}', '"template" is not supported'],
    ['{{ block "x" . }}y{{ end }}', '"block" is not supported'],
    ['{{ range .l }}{{ break }}{{ end }}', '"break" is not supported'],
    ['{{ range .l }}{{ continue }}{{ end }}', '"continue" is not supported'],
    ['{{ if .a }}{{ else with .b }}{{ end }}', '"else with" is not supported'],
    ['{{ printf "%d" .a }}', 'function "printf" is not supported'],
    ['{{ .a | default "x" }}', 'function "default" is not supported'],
    ['{{ len .l }}', 'function "len" is not supported'],
    ['{{ $x := .a }}', 'variable declaration "$x :=" outside range is not supported'],
    ['{{ if $x := .a }}{{ end }}', 'variable declaration "$x :=" outside range is not supported'],
    ['{{ range .l }}{{ $y := . }}{{ end }}', 'variable declaration "$y :=" outside range is not supported'],
    ['{{ $x = .a }}', 'variable assignment "$x =" is not supported'],
    ['{{ eq .a nil }}', '"nil" is not supported'],
    ["{{ eq .a 'x' }}", "character constant 'x' is not supported"],
    ['{{ 1+2i }}', 'complex number 1+2i is not supported'],
    ['{{ .a | .b }}', 'piping into .b (pipeline stage 2 must be a function) is not supported'],
  ];

  test.each(UNSUPPORTED)('%s', (construct, message) => {
    const err = thrown(() => parseTemplate(`line 1\nline 2\n  ${construct}\n`, 'custom.json'));
    expect(err.message.startsWith(`template "custom.json" line 3: ${message} ${SUBSET_HINT}`)).toBe(true);
  });

  test('method-call syntax (a field with arguments) is rejected', () => {
    expect(thrown(() => parseTemplate('\n{{ .a 1 }}', 't')).message).toMatch(/^template "t" line 2: \.a is not a function and cannot take arguments/);
  });

  const SYNTAX: [string, string][] = [
    ['{\n  {{ if .a }}\n  x\n', 'line 4: unexpected EOF: {{if}} at line 2 has no {{end}}'],
    ['{{ range .l }}\n{{ if .a }}\n{{ end }}', 'line 3: unexpected EOF: {{range}} at line 1 has no {{end}}'],
    ['a\n{{ end }}', 'line 2: unexpected {{end}}'],
    ['a\n\n{{ else }}', 'line 3: unexpected {{else}}'],
    ['{{ if .a }}{{ else }}{{ else }}{{ end }}', 'line 1: expected end; found {{else}}'],
    ['{{ range .l }}{{ else if .a }}{{ end }}', 'line 1: unexpected <if> in input'],
    ['a\n\n{{ .a.b ', 'line 3: unclosed action'],
    ['{{ $v }}', 'line 1: undefined variable "$v"'],
    ['{{ range $i, $v := .l }}{{ end }}{{ $v }}', 'line 1: undefined variable "$v"'],
    ['{{ range $i, $v, $w := .l }}{{ end }}', 'line 1: too many declarations in range'],
    ['{{ }}', 'line 1: missing value for command'],
    ['{{ if }}{{ end }}', 'line 1: missing value for if'],
    ['{{ ne 1 }}', 'line 1: wrong number of args for ne: want 2 got 1'],
    ['{{ 1 | not 2 }}', 'line 1: wrong number of args for not: want 1 got 2'],
    ['{{ eq 1 }}', 'line 1: wrong number of args for eq: want at least 2 got 1'],
    ['{{ and }}', 'line 1: wrong number of args for and: want at least 1 got 0'],
    ['{{ 1 | 2 }}', 'line 1: non executable command in pipeline stage 2'],
    ['x {{/* c */ }} y', 'line 1: comment ends before closing delimiter'],
    ['x {{/* c ', 'line 1: unclosed comment'],
    ['{{ .a! }}', "line 1: bad character U+0021 '!'"],
    ['{{ .a-}}', "line 1: bad character U+002D '-'"],
    ['{{-.a }}', 'line 1: bad number syntax: "-.a"'],
    ['{{ "abc }}', 'line 1: unterminated quoted string'],
    ['{{ (.a }}', 'line 1: unclosed left paren'],
    ['{{ 089 }}', 'line 1: integer overflow: "089"'],
    ['{{ "\\q" }}', 'line 1: invalid syntax in string literal "\\q"'],
  ];

  test.each(SYNTAX)('Go syntax error %j', (text, message) => {
    expect(thrown(() => parseTemplate(text, 'x.json')).message).toBe(`template "x.json" ${message}`);
  });
});

describe('render-time errors', () => {
  const CASES: [string, unknown, string][] = [
    ['\n{{ .m }}', { m: { a: 1 } }, 'line 2: can\'t print .m: it is a map[string]interface {} (use toJSON)'],
    ['{{ .l }}', { l: [1] }, "line 1: can't print .l: it is a []interface {} (use toJSON)"],
    ['{{ js .l }}', { l: [1] }, "line 1: can't print .l: it is a []interface {} (use toJSON)"],
    ['{{ range .s }}{{ end }}', { s: 'abc' }, "line 1: range can't iterate over .s (type string)"],
    ['{{ range .n }}{{ end }}', { n: 3 }, "line 1: range can't iterate over .n (type int)"],
    ['{{ eq .a "1" }}', { a: 1 }, 'line 1: error calling eq: incompatible types for comparison'],
    ['{{ eq .l .l }}', { l: [1] }, 'line 1: error calling eq: non-comparable type []interface {}'],
    ['{{ .s.x }}', { s: 'str' }, "line 1: .s.x: can't evaluate field x in type string"],
    ['{{ .a.b }}', { a: null }, "line 1: can't evaluate .a.b: nil pointer evaluating field b (element 2 of the chain)"],
  ];
  test.each(CASES)('%j with %j', (text, data, message) => {
    const tmpl = parseTemplate(text, 'r.json'); // parses fine
    expect(thrown(() => tmpl.render(data)).message).toBe(`template "r.json" ${message}`);
  });
});

describe('JavaScript data as Go data', () => {
  test('a Map is a map (sorted iteration, field access)', () => {
    const m = new Map<string, unknown>([
      ['b', 2],
      ['a', 1],
    ]);
    expect(render('{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}{{ .m.b }}{{ toJSON .m }}', { m })).toBe('a=1;b=2;2{"a":1,"b":2}');
  });

  test('bigint is an int64; integral numbers are ints; others float64', () => {
    expect(render('{{ .big }} {{ eq .big .big2 }} {{ .i }} {{ .fl }} {{ toJSON .big }}', { big: 2n ** 62n, big2: 2n ** 62n, i: 15090, fl: 0.25 })).toBe(
      '4611686018427387904 true 15090 0.25 4611686018427387904',
    );
  });

  test('undefined and null leaves are "no value"; keys sort by code point like Go', () => {
    expect(render('{{ if .u }}u{{ end }}{{ if .n }}n{{ end }}{{ range $k, $v := .m }}{{ $k }}{{ end }}', { u: undefined, n: null, m: { b: 1, B: 1, é: 1, a: 1, '😀': 1, 'ｚ': 1 } })).toBe(
      'Bab\u00e9\uff5a\u{1f600}',
    );
  });

  test('dot and $ are the whole data, which may be a scalar', () => {
    expect(render('{{ . }}/{{ $ }}', 'root')).toBe('root/root');
  });
});

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}
