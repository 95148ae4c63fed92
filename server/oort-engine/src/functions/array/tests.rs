//! Cases from eKuiper's `funcs_array_test.go` (TestArrayCommonFunctions,
//! TestArrayNil, TestArraySort, TestArrayShuffle), with Oort's values.

use super::*;
use crate::functions::testing::{list, s, shorthands, validate};

shorthands!(super::functions);

fn i(n: i64) -> Value {
    Value::Int(n)
}

fn ints(ns: &[i64]) -> Value {
    list(ns.iter().copied().map(Value::Int).collect())
}

const NULL: Value = Value::Null;

fn message(name: &str, args: &[Value]) -> String {
    e(name, args).to_string()
}

#[test]
fn create_position_element_at_contains_remove() {
    assert_eq!(f("array_create", &[i(1), s("2"), i(3)]), list(vec![i(1), s("2"), i(3)]));
    assert_eq!(f("array_create", &[i(1), NULL, i(2)]), ints(&[1, 2]));
    assert_eq!(f("array_create", &[NULL]), NULL);
    assert!(message("array_position", &[i(1), i(2)]).contains("must be array"));
    assert_eq!(f("array_position", &[ints(&[3, 2, 1]), i(1)]), i(2));
    assert_eq!(f("array_position", &[ints(&[3, 2, 1]), i(4)]), i(-1));
    assert_eq!(f("array_position", &[NULL, i(4)]), i(-1));
    assert_eq!(f("array_position", &[list(vec![i(1), NULL, i(2)]), i(1)]), i(0));
    assert!(message("element_at", &[i(1), i(2)]).contains("array or struct"));
    assert!(message("element_at", &[ints(&[1, 2, 3]), i(4)]).contains("out of range"));
    assert!(message("element_at", &[ints(&[1, 2, 3]), i(-4)]).contains("out of range"));
    assert_eq!(f("element_at", &[ints(&[1, 2, 3]), i(1)]), i(2));
    assert_eq!(f("element_at", &[ints(&[1, 2, 3]), i(-1)]), i(3));
    let object = Value::map([(Arc::from("a"), i(1))].into_iter().collect());
    assert_eq!(f("element_at", &[object.clone(), s("a")]), i(1));
    assert_eq!(f("element_at", &[object, s("b")]), NULL);
    assert!(message("array_contains", &[i(1), i(2)]).contains("must be array"));
    assert_eq!(f("array_contains", &[ints(&[1, 2]), i(2)]), Value::Bool(true));
    assert_eq!(f("array_contains", &[ints(&[1, 2]), i(3)]), Value::Bool(false));
    assert_eq!(f("array_contains", &[list(vec![i(1), NULL, i(2)]), NULL]), Value::Bool(true));
    assert_eq!(f("array_contains", &[NULL, NULL]), Value::Bool(false));
    assert_eq!(f("array_remove", &[ints(&[3, 1, 2]), i(1)]), ints(&[3, 2]));
    assert_eq!(f("array_remove", &[list(vec![s("a"), s("b"), s("c")]), s("c")]), list(vec![s("a"), s("b")]));
    assert_eq!(f("array_remove", &[ints(&[1, 2, 3, 4, 3]), i(3)]), ints(&[1, 2, 4]));
    assert_eq!(f("array_remove", &[ints(&[3, 3, 3]), i(3)]), ints(&[]));
    assert_eq!(f("array_remove", &[list(vec![i(1), NULL, i(2)]), i(2)]), list(vec![i(1), NULL]));
}

#[test]
fn last_position_and_contains_any() {
    let fives = list(vec![i(5), NULL, i(5)]);
    assert_eq!(f("array_last_position", &[fives.clone(), i(5)]), i(2));
    assert_eq!(f("array_last_position", &[fives, s("hello")]), i(-1));
    assert_eq!(f("array_last_position", &[list(vec![i(5), NULL, i(7)]), i(5)]), i(0));
    assert!(message("array_last_position", &[i(1), i(2)]).contains("must be array"));
    assert_eq!(f("array_last_position", &[list(vec![i(5), s("hello"), NULL]), NULL]), i(2));
    assert_eq!(f("array_contains_any", &[ints(&[1, 2, 3]), ints(&[0, 2, 4])]), Value::Bool(true));
    assert_eq!(f("array_contains_any", &[ints(&[1, 2, 3]), list(vec![i(4), s("hello"), i(6)])]), Value::Bool(false));
    assert_eq!(f("array_contains_any", &[NULL, ints(&[4])]), Value::Bool(false));
    assert_eq!(f("array_contains_any", &[ints(&[1, 2, 3]), ints(&[])]), Value::Bool(false));
    assert!(message("array_contains_any", &[ints(&[1, 2, 3, 4]), i(1)]).contains("argument 2 must be array"));
}

#[test]
fn set_operations() {
    assert_eq!(f("array_intersect", &[ints(&[1, 1, 2, 3]), ints(&[1, 3, 4])]), ints(&[1, 3]));
    let words = list(vec![s("hello"), s("ekuiper"), i(2), i(3)]);
    assert_eq!(
        f("array_intersect", &[words.clone(), list(vec![s("ekuiper"), i(3), i(4)])]),
        list(vec![s("ekuiper"), i(3)])
    );
    assert!(message("array_intersect", &[words.clone(), s("ekuiper")]).contains("argument 2 must be array"));
    assert!(message("array_intersect", &[s("1"), ints(&[1, 2, 3])]).contains("argument 1 must be array"));
    let with_null = list(vec![i(1), NULL, i(2)]);
    assert_eq!(f("array_intersect", &[with_null.clone(), list(vec![i(1), NULL, i(3)])]), list(vec![i(1), NULL]));
    assert_eq!(f("array_union", &[ints(&[1, 1, 2, 3]), ints(&[1, 3, 4])]), ints(&[1, 2, 3, 4]));
    assert_eq!(
        f("array_union", &[words, list(vec![s("ekuiper"), i(3), i(4)])]),
        list(vec![s("hello"), s("ekuiper"), i(2), i(3), i(4)])
    );
    assert_eq!(
        f("array_union", &[with_null.clone(), list(vec![i(1), NULL, i(3)])]),
        list(vec![i(1), NULL, i(2), i(3)])
    );
    assert_eq!(f("array_union", &[ints(&[1, 2]), NULL]), ints(&[1, 2]));
    assert!(message("array_union", &[ints(&[1]), s("ekuiper")]).contains("argument 2 must be array"));
    assert_eq!(f("array_except", &[ints(&[1, 2, 3]), ints(&[1, 3, 4])]), ints(&[2]));
    assert_eq!(f("array_except", &[ints(&[1, 2, 3]), ints(&[4, 5, 6])]), ints(&[1, 2, 3]));
    assert_eq!(f("array_except", &[ints(&[1, 2, 1, 2, 3]), ints(&[1, 2, 1, 1, 2, 2, 4])]), ints(&[3]));
    assert_eq!(f("array_except", &[ints(&[1, 1, 1, 1, 3]), ints(&[4])]), ints(&[1, 3]));
    assert_eq!(f("array_except", &[with_null, list(vec![i(1), NULL])]), ints(&[2]));
    assert_eq!(f("array_except", &[NULL, ints(&[1])]), NULL);
}

#[test]
fn max_and_min_take_the_type_of_the_first_item() {
    assert_eq!(f("array_max", &[ints(&[1])]), i(1));
    assert_eq!(f("array_max", &[list(vec![i(1), NULL, i(3)])]), i(3));
    assert!(message("array_max", &[list(vec![i(1), s("4"), i(3)])]).contains("requires bigint but found string"));
    assert_eq!(
        f("array_max", &[list(vec![Value::Float(1.2), Value::Float(4.2), Value::Float(3.0)])]),
        Value::Float(4.2)
    );
    assert_eq!(f("array_max", &[list(vec![i(1), Value::Float(3.2), Value::Float(4.1), i(2)])]), i(4));
    assert_eq!(f("array_min", &[list(vec![i(1), NULL, i(3)])]), i(1));
    assert!(message("array_min", &[list(vec![i(1), s("0"), i(3)])]).contains("requires bigint"));
    assert_eq!(
        f("array_min", &[list(vec![Value::Float(1.2), Value::Float(4.2), Value::Float(3.0)])]),
        Value::Float(1.2)
    );
    assert_eq!(f("array_min", &[list(vec![i(1), Value::Float(3.2), Value::Float(4.1), i(2)])]), i(1));
    assert_eq!(f("array_max", &[list(vec![s("b"), s("c"), s("a")])]), s("c"));
    assert_eq!(f("array_min", &[list(vec![NULL])]), NULL);
    assert_eq!(f("array_max", &[NULL]), NULL);
}

#[test]
fn repeat_and_sequence() {
    assert_eq!(f("repeat", &[i(1), i(5)]), ints(&[1, 1, 1, 1, 1]));
    assert!(message("repeat", &[i(1), s("hellow")]).contains("argument 2 must be bigint"));
    assert_eq!(f("repeat", &[s("hello"), i(3)]), list(vec![s("hello"); 3]));
    assert_eq!(f("repeat", &[s("rockset"), i(0)]), ints(&[]));
    assert!(message("repeat", &[i(1), i(1 << 30)]).contains("at most"));
    assert_eq!(f("sequence", &[i(1), i(5)]), ints(&[1, 2, 3, 4, 5]));
    assert!(message("sequence", &[s("1"), i(10), i(2)]).contains("argument 1 must be bigint"));
    assert!(message("sequence", &[i(1), s("6"), i(2)]).contains("argument 2 must be bigint"));
    assert!(message("sequence", &[i(1), i(7), s("1")]).contains("argument 3 must be bigint"));
    assert_eq!(f("sequence", &[i(1), i(10), i(2)]), ints(&[1, 3, 5, 7, 9]));
    assert_eq!(f("sequence", &[i(10), i(1), i(-3)]), ints(&[10, 7, 4, 1]));
    assert_eq!(f("sequence", &[i(5), i(1)]), ints(&[5, 4, 3, 2, 1]));
    assert!(message("sequence", &[i(1), i(5), i(0)]).contains("zero"));
    assert!(message("sequence", &[i(1), i(5), i(-1)]).contains("never goes"));
    assert!(validate(&functions(), "sequence", &[Some(s("1")), None]).is_err(), "refused when created");
}

#[test]
fn cardinality_flatten_distinct() {
    assert_eq!(f("array_cardinality", &[ints(&[1, 2, 3])]), i(3));
    assert_eq!(f("array_cardinality", &[list(vec![i(1), NULL, i(2)])]), i(2));
    assert_eq!(f("array_cardinality", &[NULL]), i(0));
    assert!(message("array_cardinality", &[i(1)]).contains("must be array"));
    assert_eq!(f("cardinality", &[list(vec![i(1), NULL])]), i(2));
    assert_eq!(f("cardinality", &[s("abc")]), i(0));
    assert_eq!(f("cardinality", &[NULL]), i(0));
    assert_eq!(f("array_flatten", &[list(vec![ints(&[1, 2, 3])])]), ints(&[1, 2, 3]));
    assert!(message("array_flatten", &[i(1)]).contains("must be array"));
    assert_eq!(f("array_flatten", &[ints(&[1, 2, 3])]), ints(&[1, 2, 3]));
    assert_eq!(f("array_flatten", &[list(vec![ints(&[1, 2, 3]), ints(&[4, 5, 6])])]), ints(&[1, 2, 3, 4, 5, 6]));
    assert_eq!(f("array_flatten", &[list(vec![ints(&[1, 2, 3]), i(4)])]), ints(&[1, 2, 3, 4]));
    assert_eq!(
        f("array_flatten", &[list(vec![list(vec![i(1), NULL]), ints(&[2, 3])])]),
        list(vec![i(1), NULL, i(2), i(3)])
    );
    assert_eq!(f("array_distinct", &[ints(&[1, 2, 3])]), ints(&[1, 2, 3]));
    assert_eq!(f("array_distinct", &[ints(&[1, 1, 1])]), ints(&[1]));
    assert_eq!(f("array_distinct", &[ints(&[1, 2, 2, 1])]), ints(&[1, 2]));
    let mixed = list(vec![i(1), i(1), Value::Bool(true), Value::Bool(true), NULL, NULL]);
    assert_eq!(f("array_distinct", &[mixed]), list(vec![i(1), Value::Bool(true), NULL]));
    let object = |n| Value::map([(Arc::from("a"), i(n))].into_iter().collect());
    let objects = list(vec![object(1), object(1), object(2)]);
    assert_eq!(f("array_distinct", std::slice::from_ref(&objects)), objects, "objects are not merged");
}

#[test]
fn map_applies_a_scalar_builtin_of_one_argument() {
    let round = f("array_map", &[s("round"), list(vec![i(0), Value::Float(0.4), Value::Float(1.2)])]);
    assert_eq!(round, list(vec![i(0), Value::Float(0.0), Value::Float(1.0)]));
    assert!(message("array_map", &[i(123), ints(&[1, 2, 3])]).contains("argument 1 must be string"));
    assert!(message("array_map", &[s("round"), i(1)]).contains("argument 2 must be array"));
    let abs = f("array_map", &[s("abs"), list(vec![i(0), Value::Float(-0.4), Value::Float(1.2)])]);
    assert_eq!(abs, list(vec![i(0), Value::Float(0.4), Value::Float(1.2)]));
    assert!(message("array_map", &[s("pow"), ints(&[1])]).contains("does not take one argument"));
    assert!(message("array_map", &[s("avg"), ints(&[1])]).contains("not a built-in scalar function"));
    let ceil = f("array_map", &[s("ceil"), list(vec![i(0), i(-1), Value::Float(1.2)])]);
    assert_eq!(ceil, list(vec![i(0), i(-1), i(2)]));
    assert!(validate(&functions(), "array_map", &[Some(s("power")), None]).is_err(), "refused when created");
    assert!(validate(&functions(), "array_map", &[Some(s("upper")), None]).is_ok());
}

#[test]
fn join_with_and_without_a_null_replacement() {
    let abc = list(vec![s("a"), s("b"), s("c")]);
    assert!(message("array_join", &[s("a"), s("")]).contains("must be array"));
    assert!(message("array_join", &[abc.clone(), i(123), s("a")]).contains("argument 2 must be string"));
    assert!(message("array_join", &[abc.clone(), s(":"), i(123)]).contains("argument 3 must be string"));
    assert_eq!(f("array_join", &[list(vec![i(123), s("b"), s("c")]), s(":"), s("a")]), s("123:b:c"));
    assert_eq!(f("array_join", &[abc.clone(), s("")]), s("abc"));
    assert_eq!(f("array_join", &[list(vec![s("a"), NULL, s("b")]), s(":")]), s("a:b"));
    assert_eq!(f("array_join", &[abc.clone(), s(":,%")]), s("a:,%b:,%c"));
    assert_eq!(f("array_join", &[list(vec![s("a"), NULL, s("c")]), s(":"), s("null")]), s("a:null:c"));
    assert_eq!(f("array_join", &[abc, s(":"), s("a")]), s("a:b:c"));
    assert_eq!(f("array_join", &[list(vec![NULL, NULL]), s(","), s("x")]), s("x,x"));
    assert_eq!(f("array_join", &[list(vec![NULL, NULL]), s(",")]), s(""));
}

#[test]
fn shuffle_sort_concat_kvpairs() {
    let shuffled = f("array_shuffle", &[ints(&[1, 2, 3])]);
    let Value::List(items) = &shuffled else { panic!("{shuffled:?}") };
    let mut sorted: Vec<i64> = items.iter().filter_map(Value::as_i64).collect();
    sorted.sort();
    assert_eq!(sorted, [1, 2, 3]);
    assert!(message("array_shuffle", &[i(1)]).contains("must be array"));
    assert_eq!(f("array_sort", &[ints(&[3, 2, 1])]), ints(&[1, 2, 3]));
    let numbers = list(vec![i(3), Value::Float(1.6), Value::Float(-0.83)]);
    assert_eq!(f("array_sort", &[numbers]), list(vec![Value::Float(-0.83), Value::Float(1.6), i(3)]));
    let mixed = list(vec![s("abc"), i(3), s("def"), Value::Float(1.6), Value::Float(-0.83)]);
    let expected = list(vec![Value::Float(-0.83), Value::Float(1.6), i(3), s("abc"), s("def")]);
    assert_eq!(f("array_sort", &[mixed]), expected);
    assert_eq!(f("array_sort", &[ints(&[10, 9])]), ints(&[9, 10]), "numbers by value (eKuiper: by text)");
    let parts = [ints(&[1]), ints(&[2]), list(vec![s("3")]), list(vec![NULL])];
    assert_eq!(f("array_concat", &parts), list(vec![i(1), i(2), s("3"), NULL]));
    assert_eq!(f("array_concat", &[ints(&[1]), NULL, ints(&[2])]), ints(&[1, 2]));
    assert!(message("array_concat", &[ints(&[1]), i(2)]).contains("argument 2 must be array"));

    let pair =
        |k: &str, v: Value| Value::map([(Arc::from(PAIR_KEY), s(k)), (Arc::from(PAIR_VALUE), v)].into_iter().collect());
    let object = f("kvpair_array_to_obj", &[list(vec![pair("a", i(1)), pair("b", list(vec![s("foo"), s("bar")]))])]);
    let expected: Map =
        [(Arc::from("a"), i(1)), (Arc::from("b"), list(vec![s("foo"), s("bar")]))].into_iter().collect();
    assert_eq!(object, Value::map(expected));
    let wrong = Value::map([(Arc::from("wrongKey"), s("a")), (Arc::from(PAIR_VALUE), i(1))].into_iter().collect());
    assert!(message("kvpair_array_to_obj", &[list(vec![wrong])]).contains("key"));
    let alone = Value::map([(Arc::from(PAIR_KEY), s("a"))].into_iter().collect());
    assert!(message("kvpair_array_to_obj", &[list(vec![alone])]).contains("key"));
}

#[test]
fn null_arguments_as_ekuiper() {
    for name in ["element_at", "array_intersect", "array_max", "array_min", "repeat", "sequence", "array_flatten"] {
        let args = vec![NULL; if name.starts_with("array_m") || name == "array_flatten" { 1 } else { 2 }];
        assert_eq!(f(name, &args), NULL, "{name}");
    }
    assert_eq!(f("array_union", &[ints(&[1]), NULL]), ints(&[1]));
}
