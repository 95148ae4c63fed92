//! Cases from eKuiper's `funcs_obj_test.go` (TestObjectFunctions,
//! TestToMap, TestToMapVal, TestObjectFunctionsNil), with Oort's values.

use super::*;
use crate::functions::testing::{list, s, shorthands, validate};

shorthands!(super::functions);

fn i(n: i64) -> Value {
    Value::Int(n)
}

fn obj(entries: &[(&str, Value)]) -> Value {
    Value::map(entries.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect())
}

const NULL: Value = Value::Null;

fn message(name: &str, args: &[Value]) -> String {
    e(name, args).to_string()
}

#[test]
fn keys_values_items_in_key_order() {
    let ab = obj(&[("b", i(2)), ("a", i(1))]);
    assert_eq!(f("keys", std::slice::from_ref(&ab)), list(vec![s("a"), s("b")]));
    assert!(message("keys", &[i(1)]).contains("must be struct"));
    assert_eq!(f("values", &[obj(&[("a", s("c")), ("b", s("d"))])]), list(vec![s("c"), s("d")]));
    assert!(message("values", &[i(1)]).contains("must be struct"));
    assert_eq!(f("items", &[ab]), list(vec![list(vec![s("a"), i(1)]), list(vec![s("b"), i(2)])]));
    assert!(message("items", &[i(1)]).contains("must be struct"));
    assert_eq!(f("items", &[obj(&[])]), NULL);
    for name in ["keys", "values", "items", "erase", "obj_to_kvpair_array"] {
        let args = vec![NULL; if name == "erase" { 2 } else { 1 }];
        assert_eq!(f(name, &args), NULL, "{name}");
    }
}

#[test]
fn object_and_zip_build_objects() {
    assert_eq!(f("object", &[list(vec![s("a"), s("b")]), list(vec![i(1), i(2)])]), obj(&[("a", i(1)), ("b", i(2))]));
    assert!(message("object", &[i(1), list(vec![i(1), i(2)])]).contains("argument 1 must be array"));
    assert!(message("object", &[list(vec![i(1), i(2)]), list(vec![i(1), i(2)])]).contains("array of strings"));
    assert!(message("object", &[list(vec![i(1), i(2)]), i(1)]).contains("argument 2 must be array"));
    assert!(message("object", &[list(vec![s("a"), s("b")]), list(vec![i(1), i(2), i(3)])]).contains("as many"));
    assert_eq!(f("object", &[list(vec![]), list(vec![])]), NULL);
    let pairs = list(vec![list(vec![s("a"), i(1)]), list(vec![s("b"), i(2)])]);
    assert_eq!(f("zip", &[pairs]), obj(&[("a", i(1)), ("b", i(2))]));
    assert!(message("zip", &[i(1)]).contains("must be array"));
    assert!(message("zip", &[list(vec![i(1), i(2)])]).contains("[key, value]"));
    let triples = list(vec![list(vec![s("a"), i(1), i(3)]), list(vec![s("b"), i(2), i(4)])]);
    assert!(message("zip", &[triples]).contains("[key, value]"));
    assert!(message("zip", &[list(vec![list(vec![i(1), i(3)])])]).contains("a key must be a string"));
    assert_eq!(f("zip", &[list(vec![NULL, list(vec![s("a"), i(1)])])]), obj(&[("a", i(1))]));
}

#[test]
fn concat_construct_erase_size() {
    let ab = obj(&[("a", i(1)), ("b", i(2))]);
    let bc = obj(&[("b", i(3)), ("c", i(4))]);
    let ad = obj(&[("a", i(2)), ("d", i(1))]);
    let merged = f("object_concat", &[ab.clone(), bc.clone(), ad]);
    assert_eq!(merged, obj(&[("a", i(2)), ("b", i(3)), ("c", i(4)), ("d", i(1))]));
    assert!(
        message("object_concat", &[ab.clone(), bc.clone(), list(vec![i(1)])]).contains("argument 3 must be struct")
    );
    assert_eq!(f("object_concat", &[ab, bc, NULL]), obj(&[("a", i(1)), ("b", i(3)), ("c", i(4))]));

    assert!(message("object_construct", &[Value::Bool(true), s("bar")]).contains("argument 1 must be string"));
    let built = f("object_construct", &[s("key1"), s("bar"), s("key2"), s("foo")]);
    assert_eq!(built, obj(&[("key1", s("bar")), ("key2", s("foo"))]));
    let with_nulls = f("object_construct", &[s("key1"), NULL, s("key2"), s("foo"), s("key3"), NULL]);
    assert_eq!(with_nulls, obj(&[("key1", NULL), ("key2", s("foo")), ("key3", NULL)]));
    assert_eq!(f("object_construct", &[NULL, i(1)]), obj(&[]));
    let functions = functions();
    assert!(validate(&functions, "object_construct", &[Some(s("foo")), Some(s("bar"))]).is_ok());
    let odd = validate(&functions, "object_construct", &[Some(s("foo")), Some(s("bar")), Some(s("baz"))]);
    assert!(odd.unwrap_err().contains("key-value pairs"));
    let bool_key = validate(&functions, "object_construct", &[Some(Value::Bool(true)), Some(s("baz"))]);
    assert!(bool_key.unwrap_err().contains("argument 1 (a key) must be a string"));

    let abc = obj(&[("a", i(1)), ("b", i(2)), ("c", i(3))]);
    assert_eq!(f("erase", &[abc.clone(), s("a")]), obj(&[("b", i(2)), ("c", i(3))]));
    assert_eq!(f("erase", &[abc.clone(), list(vec![s("a"), s("b")])]), obj(&[("c", i(3))]));
    assert!(validate(&functions, "erase", &[None, None, None]).is_err(), "two arguments");
    assert!(message("erase", &[abc, i(1)]).contains("string or array"));

    assert_eq!(f("object_size", &[obj(&[("a", i(1)), ("b", list(vec![s("foo"), s("bar")]))])]), i(2));
    assert_eq!(f("object_size", &[NULL]), i(0));
    assert!(validate(&functions, "object_size", &[None, None]).is_err(), "one argument");
}

#[test]
fn pick_keys_paths_and_kvpairs() {
    let abc = obj(&[("a", i(1)), ("b", i(2)), ("c", i(3))]);
    assert_eq!(f("object_pick", &[abc.clone(), list(vec![s("a"), s("c")])]), obj(&[("a", i(1)), ("c", i(3))]));
    assert_eq!(f("object_pick", &[abc.clone(), s("a")]), obj(&[("a", i(1))]));
    assert_eq!(f("object_pick", &[abc.clone(), s("a"), s("b")]), obj(&[("a", i(1)), ("b", i(2))]));
    assert_eq!(f("object_pick", &[abc, s("d")]), obj(&[]));
    assert_eq!(f("object_pick", &[NULL, s("a")]), NULL);
    let nested = obj(&[("x", obj(&[("y", i(1)), ("z", i(2))])), ("w", i(0))]);
    assert_eq!(f("object_pick", &[nested.clone(), s("x.y")]), obj(&[("x", obj(&[("y", i(1))]))]));
    assert_eq!(
        f("object_pick", &[nested.clone(), s("x.y"), s("x.z")]),
        obj(&[("x", obj(&[("y", i(1)), ("z", i(2))]))])
    );
    assert_eq!(f("object_pick", &[nested, s("w.q")]), obj(&[]));

    let pair = |k: &str, v: Value| obj(&[("key", s(k)), ("value", v)]);
    assert_eq!(f("obj_to_kvpair_array", &[obj(&[("a", i(1))])]), list(vec![pair("a", i(1))]));
    let two = obj(&[("a", i(1)), ("b", list(vec![s("foo"), s("bar")]))]);
    assert_eq!(
        f("obj_to_kvpair_array", &[two]),
        list(vec![pair("a", i(1)), pair("b", list(vec![s("foo"), s("bar")]))])
    );
    assert!(message("obj_to_kvpair_array", &[i(1)]).contains("must be struct"));
}
