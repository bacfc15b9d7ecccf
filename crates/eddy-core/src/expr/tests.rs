//! Expression tests: a table of (expression, event, expected) cases, compile
//! errors, and a property test of integer arithmetic against Rust's.

use proptest::prelude::*;

use super::*;
use crate::event::Fields;
use crate::json::JsonDecoder;

const EVENT: &str = r#"{
    "amount": 120, "price": 2.5, "name": "Alice Smith", "pad": "  x  ",
    "flag": true, "nothing": null, "big": 9223372036854775807,
    "tags": ["a", "b", "c"], "nums": [3, 1, 4, 1, 5], "empty": [],
    "user": {"id": 7, "country": "AR", "address": {"city": "Rosario"}},
    "items": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 0}],
    "when": "2024-05-01T12:00:00Z", "n_str": "42", "f_str": "2.5"
}"#;

/// Event time of the test event.
const TIME: i64 = 1_714_564_800_000;

fn event(json: &str) -> Event {
    let fields = JsonDecoder::new().decode(json.as_bytes()).unwrap();
    Event::new(TIME, fields)
}

fn json_value(json: &str) -> Value {
    let mut f = JsonDecoder::new()
        .decode(format!("{{\"v\": {json}}}").as_bytes())
        .unwrap();
    f.remove(Sym::intern("v")).unwrap()
}

/// `Ok(json)` is the expected value written as JSON; `Err(text)` a fragment
/// of the expected evaluation error.
const CASES: &[(&str, Result<&str, &str>)] = &[
    // Literals and fields.
    ("1", Ok("1")),
    ("-7", Ok("-7")),
    ("1.5", Ok("1.5")),
    ("'x'", Ok(r#""x""#)),
    ("true", Ok("true")),
    ("null", Ok("null")),
    ("5u", Ok("5")),
    ("amount", Ok("120")),
    ("user.address.city", Ok(r#""Rosario""#)),
    ("user['country']", Ok(r#""AR""#)),
    ("missing", Ok("null")),
    ("user.missing.deeper", Ok("null")),
    ("amount.x", Ok("null")),
    ("_time", Ok("1714564800000")),
    ("[1, amount, 'x']", Ok(r#"[1,120,"x"]"#)),
    (
        "{'a': amount, 'b': {'c': true}}",
        Ok(r#"{"a":120,"b":{"c":true}}"#),
    ),
    ("{'a': 1}.a", Ok("1")),
    ("items[0].sku", Ok(r#""x""#)),
    ("items[1]['qty']", Ok("0")),
    ("tags[2]", Ok(r#""c""#)),
    (
        "tags[3]",
        Err("index 3 out of range for a list of 3 elements"),
    ),
    ("tags[-1]", Err("index -1 out of range")),
    ("tags['a']", Ok("null")),
    ("[1, 2][0]['a']", Ok("null")),
    ("user[0]", Err("cannot index a map with a int")),
    (
        "amount[0]",
        Err("only lists and maps can be indexed, found int"),
    ),
    ("missing[0]", Ok("null")),
    // Arithmetic.
    ("amount + 5", Ok("125")),
    ("amount - 200", Ok("-80")),
    ("amount * 3", Ok("360")),
    ("amount / 7", Ok("17")),
    ("-amount / 7", Ok("-17")),
    ("amount % 7", Ok("1")),
    ("-amount % 7", Ok("-1")),
    ("amount / 0", Err("division by zero")),
    ("amount % 0", Err("modulus by zero")),
    ("big + 1", Err("integer overflow: 9223372036854775807 + 1")),
    ("big * 2", Err("integer overflow")),
    ("-big - 2", Err("integer overflow")),
    ("-(-big - 1)", Err("integer overflow")),
    ("amount * price", Ok("300.0")),
    ("price / 2", Ok("1.25")),
    ("amount / 0.0", Err("division by zero: 120.0 / 0.0")),
    ("-amount / 0.0", Err("division by zero: -120.0 / 0.0")),
    ("price % 0", Err("modulus by zero: 2.5 % 0.0")),
    ("price * 1e308", Err("double overflow: 2.5 * 1e308")),
    ("-price * 1e308", Err("double overflow: -2.5 * 1e308")),
    (
        "1e308 + price / 2.5 * 1e308",
        Err("double overflow: 1e308 + 1e308"),
    ),
    ("double(amount) / (price - 2.5)", Err("division by zero")),
    ("string(price / 0.0)", Err("division by zero")),
    ("price / 0.0 == price / 0.0", Err("division by zero")),
    (
        "double(flag ? 'inf' : '1')",
        Err("double(\"inf\") is not a finite number"),
    ),
    (
        "double(flag ? '-Infinity' : '1')",
        Err("is not a finite number"),
    ),
    (
        "double(flag ? 'nan' : '1')",
        Err("double(\"nan\") is not a finite number"),
    ),
    ("double(n_str + '9e999')", Err("is not a finite number")),
    ("double('1e308')", Ok("1e308")),
    ("max(price, price * 1e308)", Err("double overflow")),
    ("price % 2", Ok("0.5")),
    ("-price", Ok("-2.5")),
    ("name + '!'", Ok(r#""Alice Smith!""#)),
    ("tags + ['d']", Ok(r#"["a","b","c","d"]"#)),
    ("name + 1", Err("no `+` for string and int")),
    ("missing + 1", Err("field `missing` is missing or null")),
    ("1 + user.nope", Err("field `user.nope` is missing or null")),
    ("nothing * 2", Err("field `nothing` is missing or null")),
    ("-name", Err("`-` needs a number, found string")),
    ("_time + 1000", Ok("1714564801000")),
    // Comparisons.
    ("amount > 100", Ok("true")),
    ("100 < amount", Ok("true")),
    ("amount >= 120", Ok("true")),
    ("amount <= 119", Ok("false")),
    ("amount == 120.0", Ok("true")),
    ("price < 3", Ok("true")),
    ("3 > price", Ok("true")),
    ("big < 9223372036854775807.0", Ok("true")),
    ("big == big", Ok("true")),
    ("name == 'Alice Smith'", Ok("true")),
    ("name != 'Bob'", Ok("true")),
    ("name < 'Bob'", Ok("true")),
    ("flag == true", Ok("true")),
    ("false < true", Ok("true")),
    ("missing == null", Ok("true")),
    ("nothing == null", Ok("true")),
    ("amount == null", Ok("false")),
    ("amount == 'x'", Ok("false")),
    ("tags == ['a', 'b', 'c']", Ok("true")),
    ("user.country != 'AR'", Ok("false")),
    (
        "amount < 'x'",
        Err("cannot compare int with string using `<`"),
    ),
    ("missing > 3", Err("field `missing` is missing or null")),
    ("3 > missing", Err("field `missing` is missing or null")),
    ("tags < tags", Err("cannot compare list with list")),
    // Logic.
    ("amount > 100 && flag", Ok("true")),
    ("amount > 500 || !flag", Ok("false")),
    ("false && missing > 1", Ok("false")),
    ("missing > 1 && false", Ok("false")),
    ("true || missing > 1", Ok("true")),
    ("missing > 1 || true", Ok("true")),
    (
        "missing > 1 && true",
        Err("field `missing` is missing or null"),
    ),
    (
        "false || missing > 1",
        Err("field `missing` is missing or null"),
    ),
    ("amount && true", Err("a bool is required, found int")),
    ("!flag", Ok("false")),
    ("!amount", Err("a bool is required, found int")),
    ("flag ? 'yes' : 'no'", Ok(r#""yes""#)),
    ("amount > 500 ? 1 : 2.5", Ok("2.5")),
    ("name ? 1 : 2", Err("a bool is required, found string")),
    // Membership, presence.
    ("'b' in tags", Ok("true")),
    ("'z' in tags", Ok("false")),
    ("amount in [1, 120]", Ok("true")),
    ("'country' in user", Ok("true")),
    ("'zip' in user", Ok("false")),
    ("1 in amount", Err("`in` needs a list or a map, found int")),
    ("1 in missing", Err("field `missing` is missing or null")),
    ("has(user.id)", Ok("true")),
    ("has(user.zip)", Ok("false")),
    ("has(user.address.city)", Ok("true")),
    ("has(missing.x)", Ok("false")),
    ("has(items[0].sku)", Ok("true")),
    ("has(items[0].nope)", Ok("false")),
    // Functions.
    ("size(name)", Ok("11")),
    ("size('né')", Ok("2")),
    ("tags.size()", Ok("3")),
    ("size(user)", Ok("3")),
    (
        "size(amount)",
        Err("size() needs a string, list or map, found int"),
    ),
    ("size(missing)", Err("field `missing` is missing or null")),
    ("name.contains('ice')", Ok("true")),
    ("name.startsWith('Al')", Ok("true")),
    ("name.endsWith('Al')", Ok("false")),
    (
        "amount.contains('1')",
        Err("contains() needs a string, found int"),
    ),
    (
        "name.contains(1)",
        Err("contains() needs a string argument, found int"),
    ),
    ("name.lowerAscii()", Ok(r#""alice smith""#)),
    ("name.upperAscii()", Ok(r#""ALICE SMITH""#)),
    ("'abc'.lowerAscii()", Ok(r#""abc""#)),
    ("pad.trim()", Ok(r#""x""#)),
    ("int(price)", Ok("2")),
    ("int(-2.9)", Ok("-2")),
    ("int(n_str)", Ok("42")),
    ("int(amount)", Ok("120")),
    ("int('x1')", Err("cannot convert string \"x1\" to int")),
    (
        "int(1e19)",
        Err("int(10000000000000000000) is out of range"),
    ),
    ("double(amount)", Ok("120.0")),
    ("double(f_str)", Ok("2.5")),
    (
        "double(flag)",
        Err("double() needs a number or a string, found bool"),
    ),
    ("string(amount)", Ok(r#""120""#)),
    ("string(price)", Ok(r#""2.5""#)),
    ("string(flag)", Ok(r#""true""#)),
    ("string(name)", Ok(r#""Alice Smith""#)),
    ("string(missing)", Err("field `missing` is missing or null")),
    ("bool('true')", Ok("true")),
    ("bool('f')", Ok("false")),
    (
        "bool('maybe')",
        Err("cannot convert string \"maybe\" to bool"),
    ),
    ("type(amount)", Ok(r#""int""#)),
    ("type(price) == double", Ok("true")),
    ("int == type(name)", Ok("false")),
    ("type(missing)", Ok(r#""null_type""#)),
    ("type(tags) == 'list'", Ok("true")),
    ("abs(-amount)", Ok("120")),
    ("abs(-price)", Ok("2.5")),
    (
        "abs(-big - 1)",
        Err("integer overflow: abs(-9223372036854775808)"),
    ),
    ("max(amount, 3, 500)", Ok("500")),
    ("min(amount, price)", Ok("2.5")),
    ("max(nums)", Ok("5")),
    ("min(nums)", Ok("1")),
    ("max(empty)", Err("max() of an empty list")),
    ("max(amount, 'x')", Err("cannot compare string with int")),
    ("timestamp('2024-05-01T12:00:00Z')", Ok("1714564800000")),
    ("timestamp(when) == _time", Ok("true")),
    ("timestamp(name)", Err("invalid timestamp \"Alice Smith\"")),
    ("duration('1m30s')", Ok("90000")),
    ("_time - duration('1h') < timestamp(when)", Ok("true")),
    ("duration(name)", Err("invalid duration \"Alice Smith\"")),
    // Macros.
    ("nums.all(n, n > 0)", Ok("true")),
    ("nums.all(n, n > 1)", Ok("false")),
    ("nums.exists(n, n == 4)", Ok("true")),
    ("nums.exists(n, n > 9)", Ok("false")),
    ("nums.exists_one(n, n == 1)", Ok("false")),
    ("nums.exists_one(n, n == 3)", Ok("true")),
    ("nums.map(n, n * 2)", Ok("[6,2,8,2,10]")),
    ("nums.filter(n, n > 2)", Ok("[3,4,5]")),
    ("nums.map(n, n > 2, n * 10)", Ok("[30,40,50]")),
    ("items.exists(i, i.sku == 'y' && i.qty == 0)", Ok("true")),
    ("items.map(i, i.qty).filter(q, q > 0)", Ok("[2]")),
    ("empty.all(x, x > 0)", Ok("true")),
    ("empty.exists(x, x > 0)", Ok("false")),
    ("tags.map(t, tags.filter(u, u >= t).size())", Ok("[3,2,1]")),
    ("nums.exists(n, n == amount / 40)", Ok("true")),
    ("user.exists(k, k == 'country')", Ok("true")),
    ("[1, 2].all(x, [3, 4].exists(y, y == x + 2))", Ok("true")),
    ("nums.exists(n, n == 3 || n.size() > 0)", Ok("true")),
    (
        "nums.all(n, n.size() > 0)",
        Err("size() needs a string, list or map, found int"),
    ),
    (
        "missing.all(x, x)",
        Err("field `missing` is missing or null"),
    ),
    (
        "amount.exists(x, x)",
        Err("a list or a map is required, found int"),
    ),
];

#[test]
fn table_of_expressions() {
    let ev = event(EVENT);
    let mut failures = Vec::new();
    for (src, expected) in CASES {
        let expr = match Expression::compile(src) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{src}: compile error {e}"));
                continue;
            }
        };
        let got = expr.eval(&ev);
        let ok = match (&got, expected) {
            (Ok(v), Ok(want)) => {
                let want = json_value(want);
                // Doubles must stay doubles: `1 == 1.0` is not enough here.
                v == &want && v.type_name() == want.type_name()
            }
            (Err(e), Err(want)) => e.message.contains(want),
            _ => false,
        };
        if !ok {
            failures.push(format!("{src}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn non_finite_constants_are_compile_errors_with_their_column() {
    let cases = [
        ("x > 1.0 / 0.0", "division by zero: 1.0 / 0.0 at column 9"),
        (
            "0.0 / 0.0 == 0.0 / 0.0",
            "division by zero: 0.0 / 0.0 at column 5",
        ),
        (
            "x + 1e308 * 10.0",
            "double overflow: 1e308 * 10.0 at column 11",
        ),
        ("x == 1.0 % 0", "modulus by zero: 1.0 % 0.0 at column 10"),
        (
            "x == double('inf')",
            "double(\"inf\") is not a finite number at column 6",
        ),
        (
            "string(double('nan'))",
            "is not a finite number at column 8",
        ),
        ("x < -(1e308 * -10.0)", "double overflow"),
        ("x < 1e999", "invalid double literal"),
        // Even where it would never be evaluated: it is a mistake as written.
        ("false && 1.0 / 0.0 > 2.0", "division by zero"),
    ];
    for (src, want) in cases {
        let err = Expression::compile(src).expect_err(src);
        assert!(err.message.contains(want), "{src}: {}", err.message);
    }
    // Finite results of the same operations still fold.
    let e = Expression::compile("x < 1e308 * 1.0 + double('2.5')").unwrap();
    assert!(matches!(e.node(), Node::FieldCmp(fc) if fc.value == Value::Float(1e308)));
}

proptest! {
    /// No operation yields NaN or an infinity: a double result is finite or
    /// the evaluation fails naming the operation.
    #[test]
    fn double_results_are_finite_or_errors(
        x in prop_oneof![any::<f64>().prop_filter("finite", |f| f.is_finite()), Just(0.0), Just(1e308), Just(-1e308)],
        y in prop_oneof![any::<f64>().prop_filter("finite", |f| f.is_finite()), Just(0.0), Just(-0.0), Just(1e-308)],
    ) {
        let mut fields = Fields::default();
        fields.push(Sym::intern("x"), Value::Float(x));
        fields.push(Sym::intern("y"), Value::Float(y));
        fields.push(Sym::intern("s"), Value::str(&format!("{y:e}")));
        let ev = Event::new(0, fields);
        for src in ["x + y", "x - y", "x * y", "x / y", "x % y", "-x", "abs(y)", "double(s) * x",
                    "max(x, y) * 2.0", "x / y == x / y", "string(x / y)"] {
            match Expression::compile(src).unwrap().eval(&ev) {
                Ok(Value::Float(f)) => prop_assert!(f.is_finite(), "{} gave {}", src, f),
                Ok(_) => {}
                Err(e) => prop_assert!(!e.message.is_empty()),
            }
        }
    }
}

#[test]
fn eval_bool_and_borrowed_results() {
    let ev = event(EVENT);
    let e = Expression::compile("user.country == 'AR' && amount > 100").unwrap();
    assert_eq!(e.eval_bool(&ev), Ok(true));
    let err = Expression::compile("amount + 1").unwrap().eval_bool(&ev);
    assert_eq!(
        err.unwrap_err().message,
        "condition `amount + 1` produced int (121), not a bool"
    );
    // Field reads and constants are borrowed, not copied.
    let field = Expression::compile("name").unwrap();
    assert!(matches!(
        field.eval_ref(&ev),
        Ok(Cow::Borrowed(Value::Str(_)))
    ));
    let k = Expression::compile("'abc'.upperAscii()").unwrap();
    assert_eq!(k.constant(), Some(&Value::str("ABC")));
}

#[test]
fn lowering_resolves_paths_and_specialises_comparisons() {
    let e = Expression::compile("user['address'].city").unwrap();
    let path: Vec<&str> = e.as_path().unwrap().iter().map(|s| s.as_str()).collect();
    assert_eq!(path, ["user", "address", "city"]);
    let e = Expression::compile("10 < amount").unwrap();
    match e.node() {
        Node::FieldCmp(fc) => {
            assert_eq!(fc.op, CmpOp::Gt);
            assert_eq!(fc.value, Value::Int(10));
        }
        other => panic!("expected FieldCmp, got {other:?}"),
    }
    // Constant subtrees are computed once.
    let e = Expression::compile("amount > 2 * 60 + duration('1s')").unwrap();
    assert!(matches!(e.node(), Node::FieldCmp(fc) if fc.value == Value::Int(1120)));
    // A failing constant subtree is kept for evaluation: it may never run.
    let e = Expression::compile("false && 1 / 0 > 2").unwrap();
    assert_eq!(e.eval_bool(&Event::default()), Ok(false));
}

/// `now()` reads the clock at every evaluation, never at compile time.
#[test]
fn now_is_processing_time_and_never_folded() {
    let e = Expression::compile("now() - _time").unwrap();
    assert_eq!(e.constant(), None);
    let before = crate::time::now_ms();
    let age = e
        .eval(&Event::new(before - 5_000, Fields::default()))
        .unwrap();
    let after = crate::time::now_ms();
    let age = age.as_i64().unwrap();
    assert!((5_000..=5_000 + after - before).contains(&age), "{age}");
    let err = Expression::compile("now(1)").unwrap_err();
    assert!(
        err.message.contains("`now` takes 0 arguments, 1 given"),
        "{}",
        err.message
    );
}

#[test]
fn compile_errors_name_the_construct_and_its_column() {
    let cases = [
        ("amount > foo(1)", "unknown function `foo` at column 10"),
        ("name.frob()", "unknown method `.frob()` at column 6"),
        (
            "name.matches('a+')",
            "function `matches` (regular expressions) is not supported",
        ),
        ("size(a, b)", "`size` takes 1 argument, 2 given at column 1"),
        ("name.trim(1)", "`trim` takes no arguments, 1 given"),
        ("max()", "`max` takes at least 1 argument, 0 given"),
        ("timestamp('yesterday')", "invalid timestamp \"yesterday\""),
        (
            "x == duration('5 parsecs')",
            "invalid duration \"5 parsecs\"",
        ),
        ("b'abc'", "bytes literals are not supported at column 1"),
        (
            "{amount: 1}",
            "map literal keys must be string constants at column 2",
        ),
        ("_time.x", "`_time` is an int and has no fields"),
        (
            "18446744073709551615u",
            "unsigned literals above 2^63-1 are not supported",
        ),
        ("amount >", "column 9: Syntax error"),
        ("a ++ b", "column 4: Syntax error"),
        ("x == 'a' &&\n  )", "line 2, column 3: Syntax error"),
        (
            "'é' == x &&\n  foo()",
            "unknown function `foo` at line 2, column 3",
        ),
    ];
    for (src, want) in cases {
        let err = Expression::compile(src).expect_err(src);
        assert!(err.message.contains(want), "{src}: {}", err.message);
    }
}

#[test]
fn macro_variables_shadow_fields_only_inside_the_macro() {
    let ev = event(r#"{"n": 100, "nums": [1, 2]}"#);
    let e = Expression::compile("nums.map(n, n + 1) == [2, 3] && n == 100").unwrap();
    assert_eq!(e.eval_bool(&ev), Ok(true));
}

#[test]
fn parse_call_compiles_arguments_with_positions() {
    let call = parse_call("quantile(amount, 0.99)").unwrap();
    assert_eq!(call.function, "quantile");
    assert_eq!(call.args.len(), 2);
    assert_eq!(call.args[1].constant(), Some(&Value::Float(0.99)));
    let err = parse_call("sum(nope(x))").unwrap_err();
    assert_eq!(err.message, "unknown function `nope` at column 5");
}

#[test]
fn deserialises_from_config_text() {
    #[derive(Deserialize)]
    struct C {
        #[allow(dead_code)]
        condition: Expression,
    }
    let ok: C = toml::from_str("condition = \"amount > 1\"").unwrap();
    assert_eq!(ok.condition.source(), "amount > 1");
    let err = toml::from_str::<C>("condition = \"amount > foo()\"")
        .err()
        .unwrap();
    assert!(
        err.message()
            .contains("bad expression `amount > foo()`: unknown function `foo` at column 10"),
        "{}",
        err.message()
    );
}

fn int_event(a: i64, b: i64) -> Event {
    let mut f = Fields::default();
    f.push(Sym::intern("a"), Value::Int(a));
    f.push(Sym::intern("b"), Value::Int(b));
    Event::new(0, f)
}

proptest! {
    #[test]
    fn integer_arithmetic_matches_rust(a in any::<i64>(), b in prop_oneof![any::<i64>(), -3i64..3]) {
        let ev = int_event(a, b);
        let ops: [(&str, Option<i64>); 5] = [
            ("a + b", a.checked_add(b)),
            ("a - b", a.checked_sub(b)),
            ("a * b", a.checked_mul(b)),
            ("a / b", a.checked_div(b)),
            ("a % b", a.checked_rem(b)),
        ];
        for (src, want) in ops {
            let got = Expression::compile(src).unwrap().eval(&ev);
            match want {
                Some(v) => prop_assert_eq!(got, Ok(Value::Int(v)), "{}", src),
                None => prop_assert!(got.is_err(), "{} should fail", src),
            }
        }
        let cmps: [(&str, bool); 6] = [
            ("a < b", a < b),
            ("a <= b", a <= b),
            ("a > b", a > b),
            ("a >= b", a >= b),
            ("a == b", a == b),
            ("a != b", a != b),
        ];
        for (src, want) in cmps {
            prop_assert_eq!(Expression::compile(src).unwrap().eval_bool(&ev), Ok(want), "{}", src);
        }
        // A constant on one side takes the specialised path.
        let k = Expression::compile(&format!("a < {b}")).unwrap();
        prop_assert_eq!(k.eval_bool(&ev), Ok(a < b));
    }

    #[test]
    fn int_double_ordering_is_exact(a in any::<i64>(), f in any::<f64>()) {
        let mut fields = Fields::default();
        fields.push(Sym::intern("a"), Value::Int(a));
        fields.push(Sym::intern("f"), Value::Float(f));
        let ev = Event::new(0, fields);
        let want = if f.is_nan() {
            false
        } else {
            // i128 holds every i64 exactly; the cast saturates beyond that,
            // which keeps the ordering.
            let fi = f.trunc();
            let t = fi as i128;
            (a as i128) < t || ((a as i128) == t && f > fi)
        };
        prop_assert_eq!(Expression::compile("a < f").unwrap().eval_bool(&ev), Ok(want));
    }
}

/// A config error about a huge expression quotes only its start.
#[test]
fn messages_quote_an_excerpt_of_long_expressions() {
    let text = vec!["a"; 5_000].join(" + ");
    let err = toml::from_str::<std::collections::BTreeMap<String, Expression>>(&format!(
        "e = \"{text}\""
    ))
    .unwrap_err();
    // The message, as diagnostics show it (without the TOML source line).
    let err = err.message();
    assert!(err.contains("nests too deeply"), "{err}");
    assert!(err.len() < 600, "{} bytes: {err}", err.len());
    assert_eq!(super::excerpt("short"), "short");
    assert_eq!(super::excerpt(&"é".repeat(100)).chars().count(), 81);
}

#[test]
fn fields_read_lists_each_top_level_field_once() {
    let names = |text: &str| -> Vec<String> {
        Expression::compile(text)
            .unwrap()
            .fields_read()
            .iter()
            .map(|s| s.as_str().to_string())
            .collect()
    };
    assert_eq!(
        names(r#"a.b > 1 && has(c.d) && e == "x" && [f, g[0]].exists(v, v > h) && a.z < 2"#),
        ["a", "c", "e", "f", "g", "h"]
    );
    assert_eq!(names("_time > 0 && 1 + 2 == 3"), Vec::<String>::new());
    assert_eq!(names(r#"{"k": m}.k.size() > 0 ? n : o"#), ["m", "n", "o"]);
}
