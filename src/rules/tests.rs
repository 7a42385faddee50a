//! The language end to end, without a connection: source → parse →
//! compile → run, the results read back from the `data.*` store the rule
//! writes them to. (The HTTP functions are tested with real requests in
//! tests/it/rules.rs.)

use super::builtins::{data::Store, Shared, State};
use super::value::{float_text, Value};
use super::vm::{Budget, Outcome, Vm};
use std::rc::Rc;
use std::sync::Arc;

/// A value as the tests write it: strings bare, arrays `[a, b]`, hashes
/// `{k: v}` (keys sorted).
fn show(v: &Value) -> String {
    match v {
        Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => float_text(*f),
        Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(", ")),
        Value::Hash(h) => format!(
            "{{{}}}",
            h.iter()
                .map(|(k, v)| format!("{}: {}", String::from_utf8_lossy(k), show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

struct Ran {
    store: Arc<Store>,
    /// `Some((line, message))` when the rule failed.
    failed: Option<(u32, String)>,
    steps: u64,
}

impl Ran {
    fn get(&self, key: &str) -> String {
        self.store.get(key.as_bytes()).map(|v| show(&v)).unwrap_or_else(|| "<unset>".into())
    }
}

fn compile(src: &str) -> Result<super::program::Program, super::RuleError> {
    let ast = super::parser::parse(src.as_bytes())?;
    super::compile::compile("t", &ast, &|name| match name {
        "lib" => Some(super::parser::parse(b"sub twice($x) { return $x * 2; } sub hello() { return 'hi'; }")),
        _ => None,
    })
}

fn run_with(src: &str, budget: Budget) -> Ran {
    let prog = Rc::new(compile(src).unwrap_or_else(|e| panic!("{src}: {e}")));
    let store = Arc::new(Store::new(1 << 20, 1000));
    let shared = Shared::new(store.clone());
    let mut state = State::default();
    let mut vm = Vm::new(prog, budget);
    let failed = match super::vm::run_detached(&mut vm, &mut state, &shared) {
        Outcome::Failed { line, message } => Some((line, message)),
        Outcome::Done | Outcome::Stop(_) => None,
        other => panic!("{src}: {other:?}"),
    };
    Ran { store, failed, steps: vm.steps() }
}

fn run(src: &str) -> Ran {
    let r = run_with(src, Budget::default());
    if let Some((line, m)) = &r.failed {
        panic!("{src}: failed at line {line}: {m}");
    }
    r
}

/// The value of `expr`.
fn eval(expr: &str) -> String {
    run(&format!("data.set('r', {expr});")).get("r")
}

#[test]
fn operators_and_conversions() {
    for (expr, want) in [
        ("1 + 2 * 3", "7"),
        ("1 + 2 * 3 . 'x'", "7x"),
        ("(1 + 2) * 3", "9"),
        ("7 / 2", "3.5"),
        ("8 / 2", "4"),
        ("7 % 3", "1"),
        ("-3 + 1", "-2"),
        ("'14str' + 1", "15"),
        ("'abc' + 1", "1"),
        ("'2.5' * 2", "5"),
        ("1.5 + 1", "2.5"),
        ("10 == '10'", "1"),
        ("'abc' < 'abd'", "1"),
        ("'10' < '9'", "1"),
        ("10 < '9'", "0"),
        ("!0", "1"),
        ("!'x'", "0"),
        ("1 && 0", "0"),
        ("0 || 'a'", "1"),
        ("1 ? 'y' : 'n'", "y"),
        ("5 & 3 | 8", "9"),
        ("1 << 4", "16"),
        // An integer overflow goes on in doubles.
        ("9223372036854775807 + 1", "9223372036854776000"),
        ("'a' . 1 . 2.5", "a12.5"),
    ] {
        assert_eq!(eval(expr), want, "{expr}");
    }
}

#[test]
fn statements() {
    let r = run(r#"
        # if / else if / else
        $x = 5;
        if ($x > 10) { $a = "big"; } else if ($x > 3) { $a = "middle"; } else { $a = "small"; }
        data.set("if", $a);
        # while with break and continue
        $i = 0; $s = "";
        while (1) { $i++; if ($i % 2) continue; if ($i > 8) break; $s .= $i; }
        data.set("while", $s);
        # for, and nested loops breaking the inner one
        $s = "";
        for ($i = 0; $i < 3; $i++) { for ($j = 0; $j < 10; $j++) { if ($j == $i) break; $s .= $j; } $s .= "|"; }
        data.set("for", $s);
        # foreach over an array and over a hash's keys
        $s = "";
        foreach ($v in [3, 1, 2]) { $s .= $v; }
        foreach ($k in ["b" => 1, "a" => 2]) { $s .= $k; }
        data.set("foreach", $s);
        # do-while runs once
        $n = 0; do { $n++; } while (0);
        data.set("do", $n);
        # switch, with and without a comparison function
        $p = "/img/a.png";
        switch ($p, string.wildmatch) { case "/css/*": $t = "css"; break; case "/img/*", "/pic/*": $t = "img"; break; default: $t = "other"; }
        switch (3) { case 1: $u = "one"; break; case 3: $u = "three"; break; }
        data.set("switch", $t . $u);
        # compound assignment
        $c = 10; $c += 5; $c -= 1; $c *= 2; $c /= 4; $c .= "!";
        data.set("compound", $c);
    "#);
    assert_eq!(r.get("if"), "middle");
    assert_eq!(r.get("while"), "2468");
    assert_eq!(r.get("for"), "|0|01|");
    assert_eq!(r.get("foreach"), "312ab");
    assert_eq!(r.get("do"), "1");
    assert_eq!(r.get("switch"), "imgthree");
    assert_eq!(r.get("compound"), "7!");
}

#[test]
fn break_at_the_top_level_ends_the_rule() {
    let r = run("data.set('a', 1); if (1) break; data.set('b', 1);");
    assert_eq!((r.get("a").as_str(), r.get("b").as_str()), ("1", "<unset>"));
    let r = run("data.set('a', 1); rule.break(); data.set('b', 1);");
    assert_eq!(r.get("b"), "<unset>");
}

#[test]
fn subs_imports_and_scope() {
    let r = run(r#"
        import lib;
        import lib as l2;
        $x = "outer";
        sub fact($n) { if ($n <= 1) return 1; return $n * fact($n - 1); }
        sub local() { $x = "inner"; return $x; }
        sub none() { }
        data.set("fact", fact(10));
        data.set("scope", local() . "/" . $x);
        data.set("none", "[" . none() . "]");
        data.set("lib", lib.twice(21) . l2.hello() . LIB.TWICE(1));
        data.set("later", later(2));
        sub later($v) { return $v + 1; }
    "#);
    assert_eq!(r.get("fact"), "3628800");
    assert_eq!(r.get("scope"), "inner/outer");
    assert_eq!(r.get("none"), "[]");
    assert_eq!(r.get("lib"), "42hi2");
    assert_eq!(r.get("later"), "3");
    // Recursion is bounded: an error, not a crash.
    let r = run_with("sub f($n) { return f($n + 1); } f(0);", Budget::default());
    assert!(r.failed.unwrap().1.contains("deep"));
}

#[test]
fn arrays_and_hashes_are_values() {
    let r = run(r#"
        $a = [1, 2];
        $b = $a;
        $b[0] = 9;
        data.set("copy", $a[0] . $b[0]);
        $h["x"]["y"] = 1;
        $h["x"]["z"] = [5, 6];
        data.set("nested", $h);
        data.set("missing", "[" . $h["nope"]["deeper"] . "]");
        array.push($a, 3);
        $last = array.pop($a);
        array.unshift($a, 0);
        data.set("array", $a);
        data.set("last", $last);
        data.set("len", array.length($a) . hash.count($h));
        data.set("neg", $a[-1]);
        data.set("keys", hash.keys(["b" => 1, "a" => 2]));
        data.set("sorted", array.sort(["b", "c", "a"]));
        data.set("joined", string.join(string.split("a,b,,c", ","), "+"));
        $e[0] = "first";
        data.set("grown", $e);
    "#);
    assert_eq!(r.get("copy"), "19");
    assert_eq!(r.get("nested"), "{x: {y: 1, z: [5, 6]}}");
    assert_eq!(r.get("missing"), "[]");
    assert_eq!(r.get("array"), "[0, 1, 2]");
    assert_eq!(r.get("last"), "3");
    assert_eq!(r.get("len"), "31");
    assert_eq!(r.get("neg"), "2");
    assert_eq!(r.get("keys"), "[a, b]");
    assert_eq!(r.get("sorted"), "[a, b, c]");
    assert_eq!(r.get("joined"), "a+b++c");
    assert_eq!(r.get("grown"), "[first]");
}

#[test]
fn strings() {
    for (expr, want) in [
        ("string.len('hello')", "5"),
        ("string.LEN('hello')", "5"),
        ("string.substring('hello', 1, 3)", "ell"),
        ("string.left('hello', 2) . string.right('hello', 2)", "helo"),
        ("string.skip('hello', 2) . '|' . string.drop('hello', 2)", "llo|hel"),
        ("string.trim('  a b  ')", "a b"),
        ("string.uppercase('aB') . string.lowercase('aB')", "ABab"),
        ("string.startsWith('/media/x', '/media/')", "1"),
        ("string.endsWith('a.flv', '.flv')", "1"),
        ("string.contains('RealMedia Player', 'RealMedia')", "1"),
        ("string.find('abcabc', 'c')", "2"),
        ("string.find('abcabc', 'c', 3)", "5"),
        ("string.find('abc', 'z')", "-1"),
        ("string.count('a,b,c', ',')", "2"),
        ("string.replace('a.flv.flv', '.flv', '.f4v')", "a.f4v.flv"),
        ("string.replaceAll('a.flv.flv', '.flv', '.f4v')", "a.f4v.f4v"),
        ("string.wildmatch('/videos/a.flv', '/videos/*.flv')", "1"),
        ("string.wildmatch('/videos/a.mp4', '/videos/*.flv')", "0"),
        ("string.wildmatch('abc', 'a?c')", "1"),
        ("string.ipmaskMatch('10.1.2.3', '10.0.0.0/8')", "1"),
        ("string.ipmaskMatch('11.1.2.3', '10.0.0.0/8')", "0"),
        ("string.ipmaskMatch('31.44.1.7', '31.44.1.0/24')", "1"),
        ("string.ipmaskMatch('::1', '::1/128')", "1"),
        ("string.ipmaskMatch('10.0.0.1', '10.0.0.1')", "1"),
        ("string.regexsub('<BODY class=x>', '(<body[^>]*>)', '$1!', 'i')", "<BODY class=x>!"),
        ("string.urlencode('a b&c') . '|' . string.urldecode('a%20b%26c')", "a%20b%26c|a b&c"),
        ("\"tab\\there\\x41\\$\"", "tab\thereA$"),
    ] {
        assert_eq!(eval(expr), want, "{expr}");
    }
    let r = run(r#"
        if (string.regexmatch("/user/42/profile", "^/user/([0-9]+)/(.*)$")) { data.set("m", $1 . "," . $2); }
        if (!string.regexmatch("nope", "^x")) { data.set("no", "[" . $1 . "]"); }
        data.set("single", 'it\'s a \d');
    "#);
    assert_eq!(r.get("m"), "42,profile");
    assert_eq!(r.get("no"), "[42]", "a failed match leaves the captures as they were (as Perl does)");
    assert_eq!(r.get("single"), "it's a \\d");
}

#[test]
fn json_round_trip() {
    let r = run(r#"
        $r = json.deserialize('{"responseData": {"results": [{"titleNoFormatting": "A", "unescapedUrl": "http://a/"}, {"titleNoFormatting": "B", "unescapedUrl": "http://b/"}]}, "n": 1.5, "t": true}');
        $html = "";
        foreach ($e in $r['responseData']['results']) { $html .= $e['titleNoFormatting'] . "=" . $e['unescapedUrl'] . ";"; }
        data.set("html", $html);
        data.set("n", $r["n"] + 1);
        data.set("json", json.serialize(["a" => [1, "x"], "b" => 2]));
        data.set("bad", "[" . json.deserialize("{nope") . "]");
    "#);
    assert_eq!(r.get("html"), "A=http://a/;B=http://b/;");
    assert_eq!(r.get("n"), "2.5");
    assert_eq!(r.get("json"), r#"{"a":[1,"x"],"b":2}"#);
    assert_eq!(r.get("bad"), "[]");
}

#[test]
fn the_budget_ends_a_loop() {
    let budget = Budget { instructions: 100_000, memory: 1 << 20, yield_every: 1000 };
    let r = run_with("$x = 1;\nwhile (1) { $x++; }", budget);
    let (line, why) = r.failed.expect("cut off");
    assert_eq!(line, 2);
    assert!(why.contains("budget of 100000 instructions"), "{why}");
    assert_eq!(r.steps, 100_000);
    let r = run_with("$s = 'xxxxxxxx';\nwhile (1) {\n $s .= $s; }", budget);
    let (line, why) = r.failed.expect("cut off");
    assert!(why.contains("memory budget"), "{why}");
    assert_eq!(line, 3);
}

#[test]
fn runtime_errors_name_their_line() {
    let r = run_with("$a = 1;\n$b = $a / 0;\ndata.set('after', 1);", Budget::default());
    assert_eq!(r.failed, Some((2, "division by zero".into())));
    assert_eq!(r.get("after"), "<unset>");
    let r = run_with("$a = [1];\n\n$b = $a . 'x';", Budget::default());
    assert_eq!(r.failed.as_ref().map(|f| f.0), Some(3));
    // A function that needs a connection, run without one.
    let r = run_with("\nhttp.getPath();", Budget::default());
    assert_eq!(r.failed.as_ref().map(|f| f.0), Some(2));
}

#[test]
fn compile_errors_name_line_and_column() {
    let e = compile("$a = 1;\n  $b = nosuch.func(1);").unwrap_err();
    assert_eq!((e.line, e.col), (2, 8));
    assert!(e.message.contains("nosuch.func"), "{}", e.message);
    let e = compile("string.len();").unwrap_err();
    assert!(e.message.contains("argument"), "{}", e.message);
    let e = compile("\nrtsp.getPathname();").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.to_lowercase().contains("unknown function rtsp.getpathname"), "{}", e.message);
    let e = compile("sub f() { break; }").unwrap_err();
    assert!(e.message.contains("break"), "{}", e.message);
    let e = compile("import nope;").unwrap_err();
    assert!(e.message.contains("no rule named nope"), "{}", e.message);
    let e = compile("sub string.len($x) { }").map(|_| ()).unwrap_err();
    assert!(e.message.contains("built-in"), "{}", e.message);
}

#[test]
fn data_store_is_bounded() {
    let r = run(r#"
        $ok = data.set("a", "1");
        data.set("got", data.get("a") . data.get("none"));
        data.remove("a");
        data.set("gone", "[" . data.get("a") . "]");
    "#);
    assert_eq!(r.get("got"), "1");
    assert_eq!(r.get("gone"), "[]");
    let store = Store::new(100, 10);
    assert!(store.set(b"k", &Value::from("v".repeat(50))));
    assert!(!store.set(b"k2", &Value::from("v".repeat(60))), "over the byte limit");
    assert!(store.set(b"k", &Value::from("w".repeat(70))), "a replacement counts the old value out");
}

#[test]
fn sys_and_log_functions_run() {
    let r = run(
        "data.set('h', sys.hostname()); data.set('t', sys.time() > 1700000000); log.info('x'); event.emit('e', 'm');",
    );
    assert!(!r.get("h").is_empty());
    assert_eq!(r.get("t"), "1");
}
